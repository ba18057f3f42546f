"""The cache keeps state that is never wrong: answers served only to the API identity that
fetched them, files that are not enricher's left alone, damaged ones moved aside, a release
0.1.0 cache migrated, rows that expire (a clock ahead included), a size that is bounded, and a
daily budget that is exact across concurrent runs."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from helpers import (
    cached_lines,
    damage,
    emulator_process,
    emulator_stats,
    enricher,
    line_of,
    read_ndjson,
)

from enricher.api.identity import EMBEDDED_EMULATOR, ApiIdentity, identity_of
from enricher.config.settings import VERDICTS, load_settings
from enricher.errors import BudgetSpent, SettingsError
from enricher.ioc import Endpoint, IocType
from enricher.output.records import CACHED_TAIL, FRESH_TAIL
from enricher.state import answers
from enricher.state.answers import APPLICATION_ID, LAYOUT, Cache
from enricher.state.budget import Budget

API = ApiIdentity("https://gti.example/rest/classification_v1")
STAGING = ApiIdentity("https://staging.gti.example/rest/classification_v1")
FIXTURES = Path(__file__).parents[1] / "fixtures" / "cache"
LINE = b'{"ioc":"a.com","type":"domain","response":{"ttl":1},"cached":false}\n'


def new_cache(path: Path, identity: ApiIdentity = API, **kw: Any) -> Cache:
    kw.setdefault("max_ttl", 3600)
    kw.setdefault("default_ttl", 3600)
    return Cache(path, identity=identity, **kw)


def settings(url: str, **auth: str) -> Any:
    overrides: dict[str, dict[str, Any]] = {"api": {"base_url": url}}
    if auth:
        overrides["auth"] = auth
    return load_settings(environ={}, overrides=overrides)


# -- identity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ("https://GTI.example/rest/x", "https://gti.example/rest/x/"),
        ("https://gti.example:443/rest/x", "https://gti.example/rest/x"),
        ("http://gti.example:80/rest/x", "http://gti.example/rest/x"),
        ("https://gti.example./rest/x", "https://gti.example/rest/x"),
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
    ],
)
def test_one_api_written_two_ways_is_one_identity(a: str, b: str) -> None:
    assert identity_of(settings(a)) == identity_of(settings(b))


@pytest.mark.parametrize(
    "a, b",
    [
        ("https://gti.example/rest/x", "http://gti.example/rest/x"),  # scheme
        ("https://gti.example/rest/x", "https://gti.example:8443/rest/x"),  # port
        ("https://gti.example/rest/x", "https://staging.gti.example/rest/x"),  # host
        ("https://gti.example/rest/x", "https://gti.example/rest/y"),  # path
        ("https://u@gti.example/x", "https://v@gti.example/x"),  # user
        ("https://u:pass-word-1@gti.example/x", "https://u:pass-word-2@gti.example/x"),
    ],
)
def test_other_servers_and_accounts_are_other_identities(a: str, b: str) -> None:
    key = os.urandom(32)
    assert identity_of(settings(a)).name(key) != identity_of(settings(b)).name(key)


def test_an_identity_shows_the_account_but_never_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    url = "https://analyst:Pa55-w0rd-URL@gti.example:443/rest/x/"
    name = identity_of(settings(url)).name(key)
    assert name.startswith("https://gti.example/rest/x user analyst #")
    assert "Pa55-w0rd-URL" not in name
    monkeypatch.setenv("ENRICHER_AUTH_HEADER", "Bearer tok-1-secret")
    token = identity_of(settings("https://gti.example/x", mode="header"))
    assert token.name(key).startswith("https://gti.example/x header authorization #")
    assert "tok-1-secret" not in token.name(key) + repr(token)
    monkeypatch.setenv("ENRICHER_AUTH_HEADER", "Bearer tok-2-secret")
    other = identity_of(settings("https://gti.example/x", mode="header"))
    assert other.name(key) != token.name(key)
    # the hash is keyed by the cache file: the same token leaves nothing to match elsewhere
    assert token.name(os.urandom(32)) != token.name(key)
    monkeypatch.setenv("ENRICHER_USERNAME", "analyst-7")
    session = settings(
        "https://t.example/x", mode="session", login_url="https://T.example/login.html"
    )
    assert identity_of(session).name(key) == (
        "https://t.example/x user analyst-7 at https://t.example/login.html"
    )


def test_a_base_url_without_a_host_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"api\.base_url: has no host") as info:
        settings("http://u:pw@")
    assert "pw" not in str(info.value)


def test_lookups_map_only_what_the_file_held_as_the_run_began(tmp_path: Path) -> None:
    # mapped pages count in the RSS: a new cache's rows are the run's own, never looked up
    path = tmp_path / "c.sqlite3"
    first = new_cache(path)
    assert first._db.execute("PRAGMA mmap_size").fetchone()[0] == path.stat().st_size
    names = [f"h{i}.com" for i in range(3000)]
    first.store(
        Endpoint.DOMAIN, [(n, "benign", LINE.replace(b"a.com", n.encode()), None) for n in names]
    )
    first.close()
    size = path.stat().st_size
    again = new_cache(path)
    assert again._db.execute("PRAGMA mmap_size").fetchone()[0] == size > 16384 * 8
    assert again.lookup(Endpoint.DOMAIN, ["h7.com"])["h7.com"][0] == "benign"
    again.close()


def test_a_store_keeps_what_it_was_given_when_the_caller_reuses_its_list(
    tmp_path: Path,
) -> None:
    # the writer thread makes the rows later (perfwarm): it wrote what the list held by then
    cache = new_cache(tmp_path / "c.sqlite3")
    items = [("a.com", "malicious", LINE, None)]
    cache.store(Endpoint.DOMAIN, items)
    items[0] = ("b.com", "benign", LINE.replace(b"a.com", b"b.com"), None)
    cache.flush()
    assert cache.lookup(Endpoint.DOMAIN, ["a.com", "b.com"]).keys() == {"a.com"}
    cache.close()


@pytest.mark.parametrize(
    "lines",
    [
        [LINE, LINE.replace(b"a.com", b"b.com")],  # record lines: joined, tails replaced once
        [LINE, b"x" + FRESH_TAIL + b"y" + FRESH_TAIL],  # a tail inside a line: one at a time
        [LINE, b'{"ioc":"c.com","cached":true}\n'],  # a line served already
        [LINE, bytearray(LINE)],  # bytes-like
        [b"", LINE],  # an empty line
        [b"", b""],
    ],
)
def test_record_lines_are_compressed_as_a_hit_writes_them_alone_or_joined(
    lines: list[bytes],
) -> None:
    # the writer joins a store's record lines with the cached tail in place of the fresh one
    # where every line ends with the fresh tail (one may hold it elsewhere too, which stays):
    # what it compresses is what `_as_served` makes of each line
    from enricher.state.answers import _as_served, _as_served_all

    pack = zstandard.ZstdCompressor(level=3)
    served = _as_served_all(lines)
    try:
        compressed = pack.multi_compress_to_buffer(served)
        frames = [compressed[i].tobytes() for i in range(len(compressed))]
    except ValueError:  # empty lines: compressed one at a time
        frames = [pack.compress(line) for line in served]  # type: ignore[union-attr]
    unpack = zstandard.ZstdDecompressor()
    made = [unpack.decompress(f) if f else b"" for f in frames]
    assert made == [_as_served(bytes(line)) for line in lines]


def test_the_writer_compresses_rows_as_the_dictionary_at_its_level_does(tmp_path: Path) -> None:
    # the writer's dictionary is made ready for its level once: the frames are the ones a
    # compressor given the plain dictionary makes, and read back as they were
    from enricher.state.answers import _DICTIONARY, _LEVEL, _as_served

    cache = new_cache(tmp_path / "c.sqlite3")
    keys = [f"d{i}.example" for i in range(50)]
    cache.store(
        Endpoint.DOMAIN, [(k, "benign", line_of(k, b"%d" % i), None) for i, k in enumerate(keys)]
    )
    cache.flush()
    with contextlib.closing(sqlite3.connect(tmp_path / "c.sqlite3")) as db:
        stored = dict(db.execute("SELECT key, record FROM answers"))
    plain = zstandard.ZstdCompressionDict(_DICTIONARY.read_bytes())
    pack = zstandard.ZstdCompressor(level=_LEVEL, dict_data=plain, write_checksum=True)
    assert stored == {
        k: pack.compress(_as_served(line_of(k, b"%d" % i))) for i, k in enumerate(keys)
    }
    assert len(cache.lookup(Endpoint.DOMAIN, keys)) == 50
    cache.close()


@pytest.mark.parametrize("kept", [True, False])
def test_answers_stored_as_the_pipeline_holds_them_are_its_lists_then(
    tmp_path: Path, kept: bool
) -> None:
    # `store_lines_soon` copies the pipeline's two lists, not a tuple an answer: what the
    # lists hold after (an outcome merged into) is not stored
    cache = new_cache(tmp_path / "c.sqlite3")
    if not kept:
        cache.keep_no_answers("told so")
    answered = [("a.com", "malicious", None), ("b.com", "benign", 90_000)]
    lines = [LINE, LINE.replace(b"a.com", b"b.com")]
    with pytest.raises(ValueError, match="one record line an answer"):
        asyncio.run(cache.store_lines_soon(Endpoint.DOMAIN, answered, lines[:1]))
    asyncio.run(cache.store_lines_soon(Endpoint.DOMAIN, answered, lines))
    answered.append(("c.com", "benign", None))
    lines.append(LINE.replace(b"a.com", b"c.com"))
    cache.flush()
    found = cache.lookup(Endpoint.DOMAIN, ["a.com", "b.com", "c.com"])
    if kept:
        assert found == {
            "a.com": ("malicious", "", LINE[: -len(FRESH_TAIL)] + CACHED_TAIL),
            "b.com": ("benign", "", lines[1][: -len(FRESH_TAIL)] + CACHED_TAIL),
        }
    else:
        assert found == {}
    cache.close()


def test_an_answer_no_row_can_be_made_of_breaks_the_cache_not_its_writer(
    tmp_path: Path,
) -> None:
    # a ttl past a float, made a row in the writer thread, killed it: every flush after
    # waited for ever, and the cache did not say it was no longer kept
    cache = new_cache(tmp_path / "c.sqlite3")
    cache.store(Endpoint.DOMAIN, [("a.com", "malicious", LINE, 10**400)])
    flushed = threading.Thread(target=cache.flush, daemon=True)
    flushed.start()
    flushed.join(10)
    assert not flushed.is_alive()
    assert cache.broken is not None and "OverflowError" in cache.broken
    cache.close()


def test_a_commit_that_fails_but_not_in_sqlite_breaks_the_cache_not_its_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an error of another kind in a commit killed the writer thread, and the next flush
    # waited for ever (as a test's wrapper of `_commit` that did not fit its argument did)
    def fails(self: Cache, db: Any, rows: Any) -> None:
        raise TypeError("not SQLite's")

    monkeypatch.setattr(Cache, "_stage", fails)
    cache = new_cache(tmp_path / "c.sqlite3")
    cache.store(Endpoint.DOMAIN, [("a.com", "malicious", LINE, None)])
    flushed = threading.Thread(target=cache.flush, daemon=True)
    flushed.start()
    flushed.join(10)
    assert not flushed.is_alive()
    assert cache.broken is not None and "not SQLite's" in cache.broken
    cache.close()


def test_a_commit_that_fails_but_not_in_sqlite_in_its_transaction_lets_go_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # found attacking freshcache: an error not SQLite's between `_stage`'s BEGIN IMMEDIATE
    # and its COMMIT (here in making the rows of a key with a NUL, the row path; a
    # MemoryError anywhere) broke the cache but left its transaction open, the file's write
    # lock held to the run's end: another run sharing the file waited its busy timeout at
    # each write, then broke too
    import enricher.state.answers as answers

    def fails(records: bytes, rows: Any) -> Any:
        raise MemoryError("not SQLite's")

    monkeypatch.setattr(answers, "_BUSY_TIMEOUT", 1.0)
    path = tmp_path / "c.sqlite3"
    cache = new_cache(path)
    other = new_cache(path)
    real = answers._unpacked
    answers._unpacked = fails  # not monkeypatched: `other` connects after its undo
    try:
        cache.store(Endpoint.DOMAIN, [("a\0b.com", "malicious", LINE, None)])
        cache.flush()
    finally:
        answers._unpacked = real
    assert cache.broken is not None and "not SQLite's" in cache.broken
    other.store(Endpoint.DOMAIN, [("a.com", "malicious", LINE, None)])
    other.flush()
    assert other.broken is None
    assert set(other.lookup(Endpoint.DOMAIN, ["a.com"])) == {"a.com"}
    cache.close()
    other.close()


def test_answers_and_budget_belong_to_their_identity(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    prod = new_cache(path)
    prod.store(Endpoint.DOMAIN, [("a.com", "malicious", LINE, None)])
    prod.add_requests(7)
    prod.flush()
    staging = new_cache(path, STAGING)
    assert staging.lookup(Endpoint.DOMAIN, ["a.com"]) == {}
    assert staging.empty_endpoints() == set(Endpoint)
    assert staging.requests_today() == 0 and prod.requests_today() == 7
    staging.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    staging.flush()
    # each identity keeps its own answer for the same key
    assert prod.lookup(Endpoint.DOMAIN, ["a.com"])["a.com"][0] == "malicious"
    assert staging.lookup(Endpoint.DOMAIN, ["a.com"])["a.com"][0] == "benign"
    prod.close()
    staging.close()


def test_the_server_that_answered_is_the_one_served(tmp_path: Path) -> None:
    """The issue's case: the same input against one server, then another, one cache. The
    second is asked everything (nothing of the first's is written as its answer); going back
    to the first is answered from the cache."""
    src, cache = tmp_path / "in.txt", tmp_path / "cache.sqlite3"
    iocs = [f"h{i}.example.com" for i in range(300)] + [
        f"11.1.{i // 250}.{i % 250}" for i in range(300)
    ]
    src.write_text("\n".join(iocs) + "\n")

    def run(url: str, out: str) -> list[dict[str, Any]]:
        proc = enricher("run", str(src), "-o", str(tmp_path / out), "--base-url", url,
                        "--rate", "0", "--cache", str(cache))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return read_ndjson(tmp_path / out)

    with emulator_process() as one, emulator_process() as two:
        assert not any(r["cached"] for r in run(one, "1.ndjson"))
        second = run(two, "2.ndjson")
        assert emulator_stats(two)["keys_asked"] == len(iocs)
        assert not any(r["cached"] for r in second)
        emulator_stats(one, reset=True)
        third = run(one, "3.ndjson")
        assert emulator_stats(one)["total_requests"] == 0
        assert all(r["cached"] for r in third) and len(third) == len(iocs)


def test_a_token_is_an_account_of_its_own(tmp_path: Path) -> None:
    src, cache = tmp_path / "in.txt", tmp_path / "cache.sqlite3"
    src.write_text("".join(f"t{i}.example.org\n" for i in range(50)))
    with emulator_process() as url:  # it asks for no token: whatever is sent is taken

        def run(token: str, n: int) -> int:
            env = {"ENRICHER_AUTH_MODE": "header", "ENRICHER_AUTH_HEADER": f"Bearer {token}"}
            emulator_stats(url, reset=True)
            proc = enricher("run", str(src), "-o", str(tmp_path / f"{n}.ndjson"), "--base-url",
                            url, "--rate", "0", "--cache", str(cache), env=env)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            return int(emulator_stats(url)["keys_asked"])

        assert run("tok-A-1234", 1) == 50
        assert run("tok-B-1234", 2) == 50  # another account: asked again
        assert run("tok-A-1234", 3) == 0
    assert b"tok-A-1234" not in cache.read_bytes() and b"tok-B-1234" not in cache.read_bytes()


def test_the_embedded_emulator_is_one_identity_in_the_default_cache(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("".join(f"e{i}.example.net\n" for i in range(40)))
    for n in (1, 2):
        proc = enricher("run", "--emulator", str(src), "-o", str(tmp_path / f"{n}.ndjson"))
        assert proc.returncode == 0, proc.stderr
    assert all(r["cached"] for r in read_ndjson(tmp_path / "2.ndjson"))
    default = Path(os.environ["XDG_CACHE_HOME"]) / "enricher" / "cache.sqlite3"
    with sqlite3.connect(default) as db:
        names = [n for (n,) in db.execute("SELECT name FROM identities")]
    assert names == [EMBEDDED_EMULATOR.name(b"")]


# -- what is at the path -------------------------------------------------------------------


def foreign_sqlite(path: Path, **pragmas: Any) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE answers (x)")
        db.execute("INSERT INTO answers VALUES ('precious')")
        for name, value in pragmas.items():
            db.execute(f"PRAGMA {name}={value}")
    db.close()


def newer_enricher(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={LAYOUT + 1}")
    db.close()


NOT_OURS = {
    "/dev/null": None,
    "a directory": lambda p: p.mkdir(),
    "a named pipe": lambda p: os.mkfifo(p),
    "a text file": lambda p: p.write_text("my notes\n"),
    "an empty file": lambda p: p.write_bytes(b""),
    "another program's SQLite (user_version 2, WAL)": lambda p: foreign_sqlite(p, user_version=2),
    "another program's SQLite (application_id)": lambda p: foreign_sqlite(p, application_id=7),
    "a newer enricher's cache": newer_enricher,
    "a link to /dev/null": lambda p: p.symlink_to("/dev/null"),
}


def snapshot(directory: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in sorted(directory.iterdir()):
        st = p.lstat()
        data = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[p.name] = (st.st_mode, st.st_mtime_ns, st.st_ino, data)
    return out


@pytest.mark.parametrize("what", list(NOT_OURS))
def test_what_is_not_an_enricher_cache_is_refused_and_left_alone(tmp_path: Path, what: str) -> None:
    path = Path("/dev/null") if what == "/dev/null" else tmp_path / "cache.sqlite3"
    make = NOT_OURS[what]
    if make is not None:
        make(path)
    before, dev = snapshot(tmp_path), os.stat("/dev/null")
    with pytest.raises(SettingsError) as info:
        new_cache(path)
    message = str(info.value)
    assert str(path) in message and "another path" in message and "\n" not in message
    assert snapshot(tmp_path) == before  # nothing renamed, written or made beside it
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_mode, after.st_rdev) == (dev.st_ino, dev.st_mode, dev.st_rdev)


@pytest.mark.parametrize("what", ["/dev/null", "another program's SQLite (user_version 2, WAL)"])
def test_the_command_refuses_in_one_line(tmp_path: Path, what: str) -> None:
    path = Path("/dev/null") if what == "/dev/null" else tmp_path / "theirs.db"
    if what != "/dev/null":
        foreign_sqlite(path, user_version=2)
    src = tmp_path / "in.txt"
    src.write_text("a.example.com\n")
    proc = enricher("run", "--emulator", str(src), "-o", str(tmp_path / "o"), "--cache", str(path))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"cache: {path}" in proc.stderr and "--no-cache" in proc.stderr
    assert not (tmp_path / "o").exists()
    if what != "/dev/null":
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT x FROM answers").fetchall() == [("precious",)]
            assert db.execute("PRAGMA user_version").fetchone() == (2,)
        db.close()


def test_a_new_cache_is_private_marked_and_gives_pages_back(tmp_path: Path) -> None:
    path = tmp_path / "new" / "cache.sqlite3"
    new_cache(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (LAYOUT,)
        assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # INCREMENTAL
        assert db.execute("PRAGMA page_size").fetchone() == (16384,)
    db.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["cache.sqlite3"]


@pytest.mark.parametrize(
    "name",
    [
        # --cache PATH is bytes: a name that is not UTF-8 reaches Python with surrogates,
        # which the file: URI SQLite is opened by could not quote (a traceback, attack16)
        lambda tmp: tmp / os.fsdecode(b"c\xfd.sqlite3"),
        # `//tmp/c` is `/tmp/c`; as the file: URI `file://tmp/c`, SQLite read `tmp` as a host:
        # the run stopped ("invalid uri authority") and left the empty file it had made
        lambda tmp: Path("/" + str(tmp / "c.sqlite3")),
    ],
    ids=["not-utf8", "two-slashes"],
)
def test_a_cache_at_an_odd_path_opens(tmp_path: Path, name: Any) -> None:
    path = name(tmp_path)
    cache = new_cache(path)
    cache.store(Endpoint.DOMAIN, [("a.com", "malicious", LINE, None)])
    cache.close()
    again = new_cache(path)
    assert again.lookup(Endpoint.DOMAIN, ["a.com"])["a.com"][0] == "malicious"
    again.close()
    assert path.is_file()


def test_a_cache_open_to_others_is_made_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite3"
    new_cache(path).close()
    path.chmod(0o644)
    cache = new_cache(path)
    cache.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    cache.flush()
    for p in tmp_path.glob("cache.sqlite3*"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert "was open to others (644): made private" in caplog.text
    cache.close()


def test_runs_making_the_same_cache_at_once_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "c" / "cache.sqlite3"
    made: list[Cache] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def make() -> None:
        start.wait()
        try:
            made.append(new_cache(path))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(made) == 6
    made[0].store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    made[0].flush()
    assert all(c.lookup(Endpoint.DOMAIN, ["a.com"]) for c in made)  # one file, one key
    for c in made:
        c.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["cache.sqlite3"]


def test_a_cache_that_cannot_be_written_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.sqlite3"
    new_cache(path).close()
    original = Cache._connect

    def read_only(self: Cache, **kw: bool) -> sqlite3.Connection:
        # what SQLite does with a file it may only read: opens it, and refuses writes
        return original(self, read_only=True)

    monkeypatch.setattr(Cache, "_connect", read_only)
    with pytest.raises(SettingsError, match=r"is read-only; make it .* writable") as info:
        new_cache(path)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_cache_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    new_cache(path).close()
    path.chmod(0o400)
    with pytest.raises(SettingsError, match=r"read-only|cannot"):
        new_cache(path)


# -- damage --------------------------------------------------------------------------------


def filled(path: Path, n: int = 3000) -> None:
    cache = new_cache(path)
    cache.store(
        Endpoint.DOMAIN,
        [(f"d{i}.example", "benign", line_of(f"d{i}.example"), None) for i in range(n)],
    )
    cache.close()


def test_a_damaged_cache_is_moved_aside_and_started_anew(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    filled(path)
    damage(path)  # every page but the header's
    cache = new_cache(path)
    assert len(cache) == 0 and cache.lookup(Endpoint.DOMAIN, ["d1.example"]) == {}
    cache.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    cache.close()
    aside = [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert len(aside) == 1
    for p in tmp_path.glob("cache.sqlite3*"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_damage_found_by_the_purge_moves_the_cache_aside(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    filled(path)
    damage(path, share=0.5)  # the later half: answers, not the tables read on opening
    cache = new_cache(path)
    assert cache.purge() == 0
    assert cache.broken is None and len(cache) == 0  # a new file, in use
    cache.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    cache.flush()
    assert cache.lookup(Endpoint.DOMAIN, ["a.com"])
    cache.close()
    assert len([p for p in tmp_path.iterdir() if ".damaged-" in p.name]) == 1
    again = new_cache(path)  # the next run: no warning, no damage
    assert again.purge() == 0 and again.lookup(Endpoint.DOMAIN, ["a.com"])
    again.close()


def test_a_full_disk_at_the_purge_serves_the_cache_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # found attacking freshcache (at the base too): on a nearly full disk the purge at start
    # failed ("database or disk is full") and the run went on without the cache, asking the
    # API again for every answer a complete file held
    path = tmp_path / "cache.sqlite3"
    filled(path, n=50)

    def full(self: Cache, db: sqlite3.Connection) -> None:
        exc = sqlite3.OperationalError("database or disk is full")
        exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
        raise exc

    monkeypatch.setattr(Cache, "_give_back", full)
    cache = new_cache(path)
    assert cache.purge() == 0
    assert cache.broken is None and cache.not_kept and "disk is full" in cache.not_kept
    assert len(cache.lookup(Endpoint.DOMAIN, [f"d{i}.example" for i in range(50)])) == 50
    cache.store(Endpoint.DOMAIN, [("new.example", "benign", line_of("new.example"), None)])
    cache.flush()
    assert cache.lookup(Endpoint.DOMAIN, ["new.example"]) == {}
    assert cache.report()["not_kept"] == cache.not_kept
    cache.close()


def test_an_unreadable_row_is_asked_again(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path)
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in ("a.com", "b.com")])
    cache.flush()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE answers SET record = x'28b52ffd00' WHERE key = 'a.com'")
    db.close()
    assert set(cache.lookup(Endpoint.DOMAIN, ["a.com", "b.com"])) == {"b.com"}
    assert cache.unreadable == 1
    cache.close()


def test_a_damaged_row_among_many_decompressed_at_once_is_one_miss(tmp_path: Path) -> None:
    # the hits are decompressed in threads (answers._UNPACK_THREADS): a damaged frame in
    # either thread's share sends the lookup row by row, where it alone is a miss
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path)
    keys = [f"{i}.example" for i in range(60)]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()
    assert cache.lookup(Endpoint.DOMAIN, keys).keys() == set(keys)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE answers SET record = x'28b52ffd00' WHERE key = '41.example'")
    db.close()
    found = cache.lookup(Endpoint.DOMAIN, keys)
    assert found.keys() == set(keys) - {"41.example"} and cache.unreadable == 1
    assert [found[k][2] for k in keys[:3]] == [
        line_of(k).replace(FRESH_TAIL, CACHED_TAIL) for k in keys[:3]
    ]
    cache.close()


def test_a_key_asked_twice_in_one_lookup_is_one_hit(tmp_path: Path) -> None:
    """The lookup joins the keys asked to the index one by one: a key given twice is found
    twice, and still one hit (or one unreadable row: one copied over another key's)."""
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path)
    keys = ["a.com", "b.com", "c.com"]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()
    found = cache.lookup(Endpoint.DOMAIN, ["b.com", "a.com", "b.com", "x.com"])
    assert set(found) == {"a.com", "b.com"} and cache.hits == 2 and cache.misses == 2
    assert found["b.com"][2] == line_of("b.com").replace(b"false}", b"true}")
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE answers SET record = (SELECT record FROM answers WHERE key = 'c.com')"
            " WHERE key = 'a.com'"
        )
    db.close()
    assert set(cache.lookup(Endpoint.DOMAIN, ["a.com", "a.com", "b.com"])) == {"b.com"}
    assert cache.unreadable == 1
    cache.close()


def test_a_lookup_all_hit_gives_its_lines_in_the_order_asked(tmp_path: Path) -> None:
    cache = new_cache(tmp_path / "cache.sqlite3", fmt="f1")
    keys = ["c.com", "a.com", "b.com"]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()
    found = cache.lookup(Endpoint.DOMAIN, keys)
    served = [line_of(k).replace(FRESH_TAIL, CACHED_TAIL) for k in keys]
    assert getattr(found, "served", None) == (served, ["benign"] * 3)
    assert cache.lookup(Endpoint.DOMAIN, [*keys, "x.com"]).served is None  # type: ignore[attr-defined]
    other = new_cache(tmp_path / "cache.sqlite3", fmt="f2")  # lines to be made anew
    assert other.lookup(Endpoint.DOMAIN, keys).served is None  # type: ignore[attr-defined]
    other.close()
    cache.close()


def test_lookups_run_in_the_caches_lookup_threads_that_end_with_it(tmp_path: Path) -> None:
    """`answers` reads in the cache's lookup threads (the same for its life); a caller that
    stops waiting leaves the others served; once the cache is closed, a lookup reads as a
    closed cache does (nothing) and starts no thread that outlives it."""
    cache = new_cache(tmp_path / "cache.sqlite3")
    keys = [f"{i}.example" for i in range(50)]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()

    async def main() -> list[int]:
        first = asyncio.ensure_future(cache.answers({Endpoint.DOMAIN: keys[:10]}))
        rest = [
            asyncio.ensure_future(cache.answers({Endpoint.DOMAIN: keys[i : i + 10]}))
            for i in range(10, 50, 10)
        ]
        first.cancel()
        got = await asyncio.gather(*rest)
        with contextlib.suppress(asyncio.CancelledError):
            await first
        return [len(found[Endpoint.DOMAIN]) for found in got]

    before = {t for t in threading.enumerate() if t.name == "cache lookup"}
    assert asyncio.run(main()) == [10, 10, 10, 10]
    assert asyncio.run(main()) == [10, 10, 10, 10]  # another loop: the same thread
    lookups = {t for t in threading.enumerate() if t.name == "cache lookup"} - before
    assert lookups == set(cache._lookup_threads)
    assert len(lookups) == answers._LOOKUP_THREADS
    cache.close()
    for thread in lookups:
        thread.join(5)
        assert not thread.is_alive()
    found = asyncio.run(cache.answers({Endpoint.DOMAIN: keys[:3]}))
    assert found == {Endpoint.DOMAIN: {}}


def test_lookups_after_close_neither_block_the_loop_nor_read_past_close(tmp_path: Path) -> None:
    """Found by attack-s10w: after `close`, `answers` awaited its one-off read while holding
    the lock that starts the lookups' thread, so a second lookup on the same loop blocked the
    loop on it for ever; and that read did not hold `_reading`, so a `close` racing it closed
    the connection under a statement being stepped (a segfault, /tmp/s10w/closerace.py)."""
    cache = new_cache(tmp_path / "cache.sqlite3")
    cache.close()

    async def two() -> list[Any]:
        return await asyncio.gather(
            *(cache.answers({Endpoint.DOMAIN: ["a.com"]}) for _ in range(2))
        )

    got: list[Any] = []
    runner = threading.Thread(target=lambda: got.append(asyncio.run(two())), daemon=True)
    runner.start()
    runner.join(10)
    assert not runner.is_alive(), "two lookups after close blocked the event loop"
    assert got == [[{Endpoint.DOMAIN: {}}] * 2]
    # a read after close holds `_reading`, which `close` takes before it closes the connection
    cache._reading.acquire()
    try:
        runner = threading.Thread(target=lambda: got.append(asyncio.run(two())), daemon=True)
        runner.start()
        runner.join(0.5)
        assert runner.is_alive(), "a lookup after close read without holding _reading"
    finally:
        cache._reading.release()
    runner.join(10)
    assert not runner.is_alive() and len(got) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_child_forked_after_a_lookup_looks_up_in_a_thread_of_its_own(tmp_path: Path) -> None:
    """Found by attack-s10w: a child forked after the cache's lookup thread started has no
    such thread, and its lookups were put on a queue nobody reads: they waited for ever
    (a thread a call, as before the lookup thread, served them)."""
    cache = new_cache(tmp_path / "cache.sqlite3")
    keys = [f"{i}.example" for i in range(20)]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()
    assert len(asyncio.run(cache.answers({Endpoint.DOMAIN: keys}))[Endpoint.DOMAIN]) == 20
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if its lookup is answered in time
        code = 1
        try:
            got: list[Any] = []
            runner = threading.Thread(
                target=lambda: got.append(asyncio.run(cache.answers({Endpoint.DOMAIN: keys}))),
                daemon=True,
            )
            runner.start()
            runner.join(10)
            code = 0 if got and len(got[0][Endpoint.DOMAIN]) == 20 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child's lookup was not answered"
    assert len(asyncio.run(cache.answers({Endpoint.DOMAIN: keys}))[Endpoint.DOMAIN]) == 20
    cache.close()


def lookups_met(
    cache: Cache, monkeypatch: pytest.MonkeyPatch, chunks: list[list[str]]
) -> tuple[list[dict[Endpoint, dict[str, Any]]], set[tuple[threading.Thread, int]]]:
    """`answers` of each chunk at once, each lookup held until two are reading at the same
    time (a barrier, not a clock: with one thread it breaks); what they found, and the
    (thread, connection) each read through."""
    met = threading.Barrier(2, timeout=10)
    seen: set[tuple[threading.Thread, int]] = set()
    read = Cache._lookup_in

    def meeting(self: Cache, db: sqlite3.Connection, *args: Any) -> Any:
        seen.add((threading.current_thread(), id(db)))
        with contextlib.suppress(threading.BrokenBarrierError):
            met.wait()
        return read(self, db, *args)

    monkeypatch.setattr(Cache, "_lookup_in", meeting)

    async def main() -> list[dict[Endpoint, dict[str, Any]]]:
        return list(await asyncio.gather(*(cache.answers({Endpoint.DOMAIN: c}) for c in chunks)))

    got = asyncio.run(main())
    assert not met.broken, "the lookups did not read at the same time"
    monkeypatch.setattr(Cache, "_lookup_in", read)
    return got, seen


@pytest.mark.skipif(answers._LOOKUP_THREADS < 2, reason="one core: one lookup thread")
def test_two_lookups_read_at_once_each_through_a_connection_of_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two chunks' lookups read at the same time, in two threads, the second through a
    connection of its own (SQLite finds one chunk's rows while the other's are decompressed):
    each served what one thread would serve it."""
    cache = new_cache(tmp_path / "cache.sqlite3")
    keys = [f"{i}.example" for i in range(40)]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()
    got, seen = lookups_met(cache, monkeypatch, [keys[:20], [*keys[20:], "never.example"]])
    assert [set(found[Endpoint.DOMAIN]) for found in got] == [set(keys[:20]), set(keys[20:])]
    assert len({thread for thread, _ in seen}) == 2
    assert len({db for _, db in seen}) == 2 and id(cache._db) in {db for _, db in seen}
    assert cache.hits == 40 and cache.misses == 1
    cache.close()


@pytest.mark.skipif(answers._LOOKUP_THREADS < 2, reason="one core: one lookup thread")
def test_a_lookup_threads_connection_follows_the_cache_made_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache found damaged is set aside and made anew (`_renew`): a lookup thread's own
    connection, still open on the file set aside, is let go of, never read again (its rows
    would be served under identity numbers the new file gave anew)."""
    cache = new_cache(tmp_path / "cache.sqlite3")
    keys = [f"{i}.example" for i in range(40)]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()
    got, seen = lookups_met(cache, monkeypatch, [keys[:20], keys[20:]])
    assert len({db for _, db in seen}) == 2
    cache._renew()
    got, seen = lookups_met(cache, monkeypatch, [keys[:20], keys[20:]])
    assert got == [{Endpoint.DOMAIN: {}}, {Endpoint.DOMAIN: {}}]
    assert len({thread for thread, _ in seen}) == 2
    cache.close()


def test_an_error_in_a_lookup_thread_is_the_callers(tmp_path: Path) -> None:
    cache = new_cache(tmp_path / "cache.sqlite3")

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("boom")

    cache.lookup = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(cache.answers({Endpoint.DOMAIN: ["a.com"]}))
    del cache.lookup
    assert asyncio.run(cache.answers({Endpoint.DOMAIN: ["a.com"]})) == {Endpoint.DOMAIN: {}}
    cache.close()


# -- migration -----------------------------------------------------------------------------


def release_0_1_0_cache(path: Path) -> None:
    path.write_bytes(gzip.decompress((FIXTURES / "layout-2.sqlite3.gz").read_bytes()))


def test_a_cache_of_release_0_1_0_is_migrated_safely(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite3"
    release_0_1_0_cache(path)
    with sqlite3.connect(path) as db:
        old_keys = [k for (k,) in db.execute("SELECT key FROM answers")]
        # its 2 requests were sent today (the clock of this test's caches)
        assert db.execute("SELECT day, requests FROM budget").fetchall()[0][1] == 2
        db.execute("UPDATE budget SET day = '1970-01-12'")
    db.close()
    assert len(old_keys) == 10
    cache = new_cache(path, clock=lambda: 1_000_000.0)
    assert "made by enricher 0.1.0" in caplog.text
    # its answers belong to no identity we could tell: none is served, to anyone
    assert len(cache) == 0 and cache.lookup(Endpoint.FILE, old_keys) == {}
    # the requests it counted today were sent by one of the identities: they count for each
    assert cache.requests_today() == 2
    assert new_cache(path, STAGING, clock=lambda: 1_000_000.0).requests_today() == 2
    assert new_cache(path, STAGING, clock=lambda: 1_000_000.0 + 86400).requests_today() == 0
    # what it had deferred is still to be asked, by whichever identity and job runs next
    deferred = cache.deferred("a job")
    assert len(deferred) == 9 and (IocType.DOMAIN, "h2.bench2.example.com") in deferred
    assert new_cache(path, STAGING).deferred("another job") == deferred
    cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (LAYOUT,)
        assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # after the one VACUUM
        assert db.execute("SELECT identity, requests FROM budget").fetchall() == [(0, 2)]
    db.close()
    caplog.clear()
    new_cache(path).close()  # once: the next open is an ordinary one
    assert "0.1.0" not in caplog.text


def test_a_run_on_a_release_0_1_0_cache_asks_its_deferred_first(tmp_path: Path) -> None:
    path, src = tmp_path / "cache.sqlite3", tmp_path / "in.txt"
    release_0_1_0_cache(path)
    src.write_text("other.example.com\n")
    proc = enricher("run", "--emulator", str(src), "-o", str(tmp_path / "o"), "--cache", str(path))
    assert proc.returncode == 0, proc.stderr
    records = read_ndjson(tmp_path / "o")
    assert not any(r["cached"] for r in records)
    # 0.1.0's benchmark addresses were private (10/8): asked first, and withheld as such
    skipped = read_ndjson(tmp_path / "o.skipped.ndjson")
    assert {r["skipped"] for r in skipped} == {"private address"}
    assert len(records) + len(skipped) == 10


# -- expiry, a clock ahead, size -------------------------------------------------------------


def test_a_row_written_by_a_clock_ahead_is_not_served(tmp_path: Path) -> None:
    now = [1_000_000.0]
    path = tmp_path / "cache.sqlite3"
    ahead = new_cache(path, clock=lambda: now[0] + 30 * 86400, max_ttl=7 * 86400)
    ahead.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, 30 * 86400 * 1000)])
    ahead.close()
    cache = new_cache(path, clock=lambda: now[0], max_ttl=7 * 86400, max_age=1.0)
    assert cache.lookup(Endpoint.DOMAIN, ["a.com"]) == {}  # its age is unknown
    cache.max_age = None
    assert cache.lookup(Endpoint.DOMAIN, ["a.com"]) == {}
    assert cache.purge() == 1 and len(cache) == 0
    cache.close()


def test_expiry_is_capped_by_max_ttl_on_reading(tmp_path: Path) -> None:
    now = [1_000_000.0]
    path = tmp_path / "cache.sqlite3"
    long = new_cache(path, clock=lambda: now[0], max_ttl=30 * 86400)
    long.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, 30 * 86400 * 1000)])
    long.close()
    cache = new_cache(path, clock=lambda: now[0], max_ttl=86400)
    assert cache.lookup(Endpoint.DOMAIN, ["a.com"])
    now[0] += 86400 + 1  # past today's max_ttl, if not past the ttl it was written with
    assert cache.lookup(Endpoint.DOMAIN, ["a.com"]) == {}
    cache.close()


def test_rows_are_small(tmp_path: Path) -> None:
    """A record line as the engine writes it (an emulator answer) is kept compressed."""
    from enricher.api.protocol import entry_of
    from enricher.emulator.answers import entry
    from enricher.output.records import record_line

    verdicts = load_settings(environ={}).verdicts
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path)
    lines = []
    for i in range(2000):
        key = f"{i:032x}"
        fields, raw = entry_of(entry(Endpoint.FILE, key))
        lines.append((key, *record_line(IocType.MD5, key, fields, raw, verdicts)[:2]))
    cache.store(Endpoint.FILE, [(k, v, line, None) for k, line, v in lines])
    cache.flush()
    with sqlite3.connect(path) as db:
        (stored,) = db.execute("SELECT sum(length(record)) FROM answers").fetchone()
    db.close()
    assert stored < 0.25 * sum(len(line) for _, line, _ in lines)
    # kept as a hit writes them: only `cached` differs
    served = {k: line.replace(b'"cached":false}', b'"cached":true}') for k, line, _ in lines}
    assert sorted(cached_lines(path)) == sorted(served.values())
    hits = cache.lookup(Endpoint.FILE, [k for k, _, _ in lines])
    assert {k: h[2] for k, h in hits.items()} == served
    cache.close()


def test_purged_rows_give_their_pages_back(tmp_path: Path) -> None:
    now = [1_000_000.0]
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path, clock=lambda: now[0], max_ttl=600)
    blob = os.urandom(3000).hex().encode()  # incompressible: the file grows
    for n in range(10):
        cache.store(
            Endpoint.DOMAIN, [(f"{n}.{i}.example", "benign", blob, None) for i in range(200)]
        )
    cache.flush()
    full = cache.size()
    assert full > 10 * 2000 * 3
    now[0] += 601
    assert cache.purge() == 2000
    assert cache.size() < full / 10
    cache.close()
    assert path.stat().st_size < full / 10  # the file itself, once the WAL is checkpointed


def test_past_max_size_the_oldest_answers_go(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    limit = 1024 * 1024
    cache = new_cache(path, max_size=limit)
    blob = os.urandom(3000).hex().encode()
    for n in range(20):  # ~6 MB in all, in order: a commit each (a commit's rows, as old as
        # one another, go in the key index's order)
        cache.store(
            Endpoint.DOMAIN,
            [
                (f"{n}.{i}.example", "benign", line_of(f"{n}.{i}.example", blob), None)
                for i in range(100)
            ],
        )
        cache.flush()
    assert cache.size() <= limit and cache.evicted > 1000
    assert cache.lookup(Endpoint.DOMAIN, ["19.99.example"])  # the newest stay
    assert cache.lookup(Endpoint.DOMAIN, ["0.0.example"]) == {}  # the oldest went
    cache.close()
    assert path.stat().st_size <= limit * 1.2


def test_a_report_after_an_abandoned_close_does_not_touch_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # attack 14: after the grace period, a thread still waiting for another process's lock
    # holds the connection, and measuring the file on the main thread waited for it (up to
    # SQLite's 60 s busy timeout: a stopped run that did not end)
    cache = Cache(
        tmp_path / "c.sqlite3",
        max_ttl=3600,
        default_ttl=3600,
        identity=ApiIdentity("https://a.example/rest"),
    )

    def blocked(*_: object) -> int:
        raise AssertionError("the size was measured")

    monkeypatch.setattr(cache, "size", blocked)
    report = cache.report(measure=False)
    assert report["size_bytes"] is None and report["path"] == str(tmp_path / "c.sqlite3")
    monkeypatch.undo()
    assert isinstance(cache.report()["size_bytes"], int)
    cache.close()


def test_the_summary_and_the_manifest_say_what_the_cache_holds(tmp_path: Path) -> None:
    src, manifest = tmp_path / "in.txt", tmp_path / "m.json"
    src.write_text("".join(f"s{i}.example.com\n" for i in range(30)))
    cache = tmp_path / "cache.sqlite3"
    proc = enricher("run", "--emulator", str(src), "-o", str(tmp_path / "o"), "--cache",
                    str(cache), "--manifest", str(manifest))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if x.startswith("  cache "))
    assert "KiB of 2.0 GiB: hits 0, stored 30, evicted 0" in line
    assert "  identity      embedded emulator (enricher " in proc.stderr
    report = orjson.loads(manifest.read_bytes())["cache"]
    assert report["path"] == str(cache) and report["stored"] == 30 and report["hits"] == 0
    assert 0 < report["size_bytes"] <= cache.stat().st_size
    assert report["max_size_bytes"] == 2 * 1024**3 and report["identity"].startswith("embedded")


# -- the daily budget ------------------------------------------------------------------------


async def test_budget_reservations_are_exact_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    caches = [new_cache(path) for _ in range(3)]
    budgets = [Budget(daily=10, cache=c) for c in caches]

    async def take(b: Budget) -> bool:
        try:
            await b.take()
        except BudgetSpent:
            return False
        return True

    taken = await asyncio.gather(*(take(b) for _ in range(12) for b in budgets))
    assert sum(taken) == 10
    assert caches[0].requests_today() == 10
    other = new_cache(path, STAGING)  # another identity has its own budget
    assert await take(Budget(daily=10, cache=other))
    for c in [*caches, other]:
        c.close()


def test_concurrent_runs_never_send_more_than_the_daily_budget(tmp_path: Path) -> None:
    """The issue's case: two runs sharing one cache, a budget of 10: the server sees 10."""
    import subprocess
    import sys

    cache = tmp_path / "cache.sqlite3"
    env = {**os.environ, "ENRICHER_LIMITS_DAILY_BUDGET": "10", "PYTHONWARNINGS": "error"}
    with emulator_process("--latency-ms", "20") as url:
        procs = []
        for n in range(2):
            src = tmp_path / f"in{n}.txt"
            src.write_text("".join(f"r{n}-{i}.example.com\n" for i in range(200)))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "enricher", "run", str(src),
                 "-o", str(tmp_path / f"{n}.ndjson"), "--base-url", url, "--rate", "0",
                 "--batch-size", "5", "--cache", str(cache)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            ))  # fmt: skip
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 2, err
        assert emulator_stats(url)["total_requests"] == 10
    written = [r["ioc"] for n in range(2) for r in read_ndjson(tmp_path / f"{n}.ndjson")]
    deferred = {
        d["ioc"] for n in range(2) for d in read_ndjson(tmp_path / f"{n}.ndjson.deferred.ndjson")
    }
    # (each run defers what it could not ask to its own job: the other never takes it up)
    assert len(written) == len(set(written)) == 50
    assert len(deferred | set(written)) == 400 and not deferred & set(written)


def test_a_port_that_refuses_is_not_reached_when_the_budget_is_spent(tmp_path: Path) -> None:
    """With today's budget spent by earlier runs, a run sends nothing at all."""
    cache = new_cache(tmp_path / "cache.sqlite3", identity=ApiIdentity("http://127.0.0.1:9"))
    cache.add_requests(5)
    cache.close()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    cache = new_cache(
        tmp_path / "c2.sqlite3", identity=identity_of(settings(f"http://127.0.0.1:{port}/x"))
    )
    cache.add_requests(5)
    cache.close()
    src = tmp_path / "in.txt"
    src.write_text("a.example.com\n")
    env = {"ENRICHER_LIMITS_DAILY_BUDGET": "5"}
    proc = enricher("run", str(src), "-o", str(tmp_path / "o"), "--base-url", f"http://127.0.0.1:{port}/x",
                    "--cache", str(tmp_path / "c2.sqlite3"), env=env)  # fmt: skip
    sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        sock.accept()  # no connection was made
    sock.close()
    assert proc.returncode == 2 and "budget is spent" in proc.stderr


# -- found by attacking the state from outside -----------------------------------------------


def test_a_record_copied_over_another_row_is_not_served(tmp_path: Path) -> None:
    """A row whose record line is another key's (copied over it, or damaged to look like
    one) would write one IOC twice and another never: it is asked again."""
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path)
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in ("a.com", "b.com")])
    cache.flush()
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE answers SET record = (SELECT record FROM answers WHERE key = 'b.com')"
            " WHERE key = 'a.com'"
        )
    db.close()
    assert set(cache.lookup(Endpoint.DOMAIN, ["a.com", "b.com"])) == {"b.com"}
    assert cache.unreadable == 1
    cache.close()


def test_a_run_never_writes_an_ioc_twice_from_a_tampered_cache(tmp_path: Path) -> None:
    src, cache = tmp_path / "in.txt", tmp_path / "cache.sqlite3"
    iocs = [f"t{i}.example.net" for i in range(40)]
    src.write_text("\n".join(iocs) + "\n")
    first = enricher(
        "run", "--emulator", str(src), "-o", str(tmp_path / "1"), "--cache", str(cache)
    )
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(cache) as db:
        (a, b) = db.execute("SELECT rowid FROM answers ORDER BY rowid LIMIT 2").fetchall()
        db.execute(
            "UPDATE answers SET record = (SELECT record FROM answers WHERE rowid = ?)"
            " WHERE rowid = ?",
            (b[0], a[0]),
        )
    db.close()
    second = enricher(
        "run", "--emulator", str(src), "-o", str(tmp_path / "2"), "--cache", str(cache)
    )
    assert second.returncode == 0, second.stderr
    written = [r["ioc"] for r in read_ndjson(tmp_path / "2")]
    assert sorted(written) == sorted(iocs)  # each once
    assert sum(not r["cached"] for r in read_ndjson(tmp_path / "2")) == 1  # asked again


def test_with_max_age_0_nothing_is_served(tmp_path: Path) -> None:
    """Rows dated a little ahead (another run's clock) count as fetched now, not younger."""
    now = 1_000_000.0
    path = tmp_path / "cache.sqlite3"
    ahead = new_cache(path, clock=lambda: now + 30)
    ahead.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    ahead.close()
    cache = new_cache(path, clock=lambda: now, max_age=0.0)
    assert cache.lookup(Endpoint.DOMAIN, ["a.com"]) == {}
    cache.max_age = 60.0
    assert cache.lookup(Endpoint.DOMAIN, ["a.com"])
    cache.close()


def test_damage_found_on_opening_and_by_the_purge_sets_one_file_aside(tmp_path: Path) -> None:
    # the read on opening broke the cache and marked it damaged; the purge set it aside and
    # made a new one, which close set aside too (two copies, no cache at the path)
    path = tmp_path / "cache.sqlite3"
    filled(path)
    damage(path, share=0.5)
    with path.open("r+b") as f:  # part of the page the identities' lookup on opening reads
        f.seek(4 * 16384)
        f.write(bytes(range(251)) * 16)
    cache = new_cache(path)
    assert cache.broken is not None and cache.damaged  # what this test is about
    assert cache.purge() == 0
    assert cache.broken is None and len(cache) == 0  # a new file, in use
    cache.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    cache.close()
    assert len([p for p in tmp_path.iterdir() if ".damaged-" in p.name]) == 1
    again = new_cache(path)
    assert again.lookup(Endpoint.DOMAIN, ["a.com"])
    again.close()


def test_a_damaged_cache_is_set_aside_under_a_free_name_privately(tmp_path: Path) -> None:
    """Setting aside never replaces a file already there (a copy set aside the same second,
    or anything named so), makes the copy private, and keeps at most 3 such copies."""
    path = tmp_path / "cache.sqlite3"
    stamp = int(__import__("time").time())
    decoys = [tmp_path / f"cache.sqlite3.damaged-{stamp + i}" for i in range(2)]
    for decoy in decoys:
        decoy.write_text("precious\n")
    filled(path)
    path.chmod(0o644)
    damage(path)
    new_cache(path).close()
    assert [d.read_text() for d in decoys] == ["precious\n"] * 2
    aside = sorted(p for p in tmp_path.iterdir() if ".damaged-" in p.name and p not in decoys)
    assert len(aside) == 1 and aside[0].stat().st_size > 100_000
    assert stat.S_IMODE(aside[0].stat().st_mode) == 0o600
    (tmp_path / f"cache.sqlite3.damaged-{stamp - 100}").symlink_to(decoys[0])
    for _ in range(4):  # more damage: the oldest copies go, 3 stay
        filled(path)
        damage(path)
        new_cache(path).close()
    copies = [p for p in tmp_path.iterdir() if ".damaged-" in p.name and not p.is_symlink()]
    assert len([p for p in copies if not p.name.endswith(("-wal", "-shm"))]) == 3 + len(decoys)
    # files merely named so (a text file, a link) are neither removed nor counted
    assert [d.read_text() for d in decoys] == ["precious\n"] * 2
    assert (tmp_path / f"cache.sqlite3.damaged-{stamp - 100}").is_symlink()


def test_a_file_with_the_marker_but_not_the_tables_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE notes (x)")
        db.execute("INSERT INTO notes VALUES ('precious')")
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={LAYOUT}")
    db.close()
    path.chmod(0o644)
    before = snapshot(tmp_path)
    with pytest.raises(SettingsError, match="marker but not the tables") as info:
        new_cache(path)
    assert "\n" not in str(info.value)
    assert snapshot(tmp_path) == before


def test_a_cache_locked_by_another_process_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import enricher.state.answers

    path = tmp_path / "cache.sqlite3"
    new_cache(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(enricher.state.answers, "_BUSY_TIMEOUT", 0.2)
    try:
        with pytest.raises(SettingsError, match="is locked by another process") as info:
            new_cache(path)
        assert "writable" not in str(info.value)
    finally:
        holder.close()


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_cache_removed_after_the_writer_connected_is_reported(tmp_path: Path, how: str) -> None:
    # the writer's connection, made before, kept writing to the file gone from the path:
    # "stored" counted answers no run would read, and nothing said so
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path)
    cache.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    cache.flush()
    for p in tmp_path.glob("cache.sqlite3*"):
        p.rename(tmp_path / f"gone-{p.name}")
    if how == "replaced":
        new_cache(path, STAGING).close()
    cache.store(Endpoint.DOMAIN, [("b.com", "benign", LINE.replace(b"a.com", b"b.com"), None)])
    cache.flush()
    assert cache.broken is not None and "removed or replaced during the run" in cache.broken
    assert cache.stored == 1
    cache.close()


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_cache_removed_during_a_run_is_never_made_anew(tmp_path: Path, how: str) -> None:
    """The writer's and the budget's connections open lazily: on a file that is gone they
    must not make an empty, unmarked one (every later run would refuse it as another
    program's), nor write into another run's new file (its identities are not ours)."""
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path)
    for p in tmp_path.glob("cache.sqlite3*"):
        p.rename(tmp_path / f"gone-{p.name}")
    if how == "replaced":  # another run set it aside and made a new one
        other = new_cache(path, STAGING)
        other.close()
    cache.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    cache.flush()
    assert cache.broken is not None and "removed or replaced during the run" in cache.broken
    with pytest.raises(BudgetSpent, match="removed or replaced"):
        cache.reserve_request(10)
    cache.set_deferred("job", [("domain", "b.com", "stopped")])
    cache.close()
    if how == "removed":
        assert not path.exists()
    again = new_cache(path)  # the next run: an enricher cache, or none yet
    assert again.lookup(Endpoint.DOMAIN, ["a.com"]) == {} and again.deferred("job") == []
    again.close()


# 0.1.0's own code (commit f758a0a, enricher/cache.py), as it opened a cache
RELEASE_0_1_0_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    endpoint TEXT NOT NULL, key TEXT NOT NULL, verdict TEXT NOT NULL, fmt TEXT NOT NULL,
    record BLOB NOT NULL, fetched_at REAL NOT NULL, expires_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS answers_key ON answers (endpoint, key);
CREATE TABLE IF NOT EXISTS budget (day TEXT PRIMARY KEY, requests INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deferred (
    type TEXT NOT NULL, ioc TEXT NOT NULL, PRIMARY KEY (type, ioc)
);
"""
RELEASE_0_1_0_RUN = """
import os, sqlite3, sys
path = sys.argv[1]
os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA page_size=16384")
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=OFF")
(version,) = db.execute("PRAGMA user_version").fetchone()
if version != 2:
    db.executescript("DROP TABLE IF EXISTS answers; DROP TABLE IF EXISTS meta;"
                     "DROP TABLE IF EXISTS budget; DROP TABLE IF EXISTS deferred;")
    db.execute("PRAGMA user_version=2")
db.executescript(sys.argv[2])
db.execute("BEGIN")
for i in range(300):
    db.execute("INSERT OR REPLACE INTO answers VALUES ('domain_batch', ?, 'benign', 'f', ?, 0, 0)",
               (f"k{i}.example", os.urandom(500)))
db.execute("INSERT OR REPLACE INTO deferred VALUES ('domain', 'left.example.com')")
db.execute("INSERT OR REPLACE INTO budget VALUES ('1970-01-12', 3)")
db.execute("COMMIT")
if sys.argv[3] == "kill":
    os._exit(0)  # as SIGKILL: no checkpoint, the commits only in the -wal
db.close()
"""


def run_release_0_1_0(path: Path, *, killed: bool) -> None:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-c", RELEASE_0_1_0_RUN, str(path), RELEASE_0_1_0_SCHEMA,
         "kill" if killed else "close"],
        check=True,
    )  # fmt: skip


def test_a_release_0_1_0_cache_killed_mid_run_is_migrated(tmp_path: Path) -> None:
    """Killed in WAL mode, 0.1.0 left its layout (and everything) in the -wal: the file's
    own header still says user_version 0, as another program's database could."""
    path = tmp_path / "cache.sqlite3"
    run_release_0_1_0(path, killed=True)
    assert (tmp_path / "cache.sqlite3-wal").stat().st_size > 100_000
    assert path.read_bytes()[60:64] == b"\0\0\0\0"  # the header in the file: no layout
    cache = new_cache(path, clock=lambda: 1_000_000.0)
    assert cache.deferred("any job") == [(IocType.DOMAIN, "left.example.com")]
    assert cache.requests_today() == 3 and len(cache) == 0
    cache.close()


def test_a_cache_a_release_0_1_0_run_took_over_is_migrated(tmp_path: Path) -> None:
    """A rollout: 0.1.0 ran on a layout-3 cache, dropped its tables, made its own and set
    layout 2, leaving enricher's application_id and layout 3's other tables."""
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path)
    cache.store(Endpoint.DOMAIN, [("a.com", "benign", LINE, None)])
    cache.set_quota_until(4e9)
    cache.close()
    run_release_0_1_0(path, killed=False)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
    db.close()
    cache = new_cache(path, clock=lambda: 1_000_000.0)
    assert cache.deferred("any job") == [(IocType.DOMAIN, "left.example.com")]
    assert cache.requests_today() == 3 and cache.quota_until(86400) is None
    cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (LAYOUT,)
    db.close()
    new_cache(path).close()  # an ordinary open from now on


def test_a_cache_a_release_0_1_0_run_took_over_and_was_killed_in_is_migrated(
    tmp_path: Path,
) -> None:
    """Both at once: the file's own header still says layout 3 (ours), the -wal holds 0.1.0's
    layout 2 and its tables. Read through its WAL, it is a layout-2 cache: migrated, not
    refused as "not the tables of its cache"."""
    path = tmp_path / "cache.sqlite3"
    new_cache(path).close()
    run_release_0_1_0(path, killed=True)
    assert path.read_bytes()[60:64] == LAYOUT.to_bytes(4, "big")
    cache = new_cache(path, clock=lambda: 1_000_000.0)
    assert cache.deferred("any job") == [(IocType.DOMAIN, "left.example.com")]
    assert cache.requests_today() == 3 and len(cache) == 0
    cache.close()
    new_cache(path).close()


def test_the_wal_stays_a_share_of_max_size(tmp_path: Path) -> None:
    """SQLite checkpoints every 1,000 pages (16 MiB here): past a 1 MiB cache, the WAL beside
    it grew to 16.7 MB. It is checkpointed at an eighth of max_size."""
    path = tmp_path / "cache.sqlite3"
    cache = new_cache(path, max_size=1024 * 1024)
    for n in range(20):
        blob = os.urandom(3000).hex().encode()
        cache.store(
            Endpoint.DOMAIN,
            [
                (f"{n}.{i}.example", "benign", line_of(f"{n}.{i}.example", blob), None)
                for i in range(100)
            ],
        )
        cache.flush()
        assert (tmp_path / "cache.sqlite3-wal").stat().st_size <= 1024 * 1024
    cache.close()


def test_closing_waits_for_a_read_walked_away_from(tmp_path: Path) -> None:
    """A stop walks away from a read in its thread (`call_in_thread`); closing the cache then
    must not close the connection under it: sqlite3 crashed the whole process when a
    statement was stepped on a connection another thread closed (a segfault in CI, in
    `empty_endpoints`). The read finishes with a true answer and the cache closes after it."""
    cache = new_cache(tmp_path / "c.sqlite")
    entered, go = threading.Event(), threading.Event()
    result: list[object] = []
    real = cache.empty_endpoints

    def slow(*, identity: ApiIdentity | None = None) -> set[Endpoint]:
        entered.set()
        go.wait(5)
        answer = real(identity=identity)
        result.append(cache.broken or answer)
        return answer

    cache.empty_endpoints = slow  # type: ignore[method-assign]

    async def walk_away() -> None:
        read = asyncio.ensure_future(cache.unanswered_endpoints())
        await asyncio.to_thread(entered.wait, 5)
        read.cancel()

    asyncio.run(walk_away())
    closer = threading.Thread(target=cache.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive()  # waiting for the read
    go.set()
    closer.join(5)
    assert result == [set(Endpoint)]  # read on an open connection: every endpoint empty
    with pytest.raises(sqlite3.ProgrammingError):
        cache._db.execute("SELECT 1")  # and closed after it


def test_closing_gives_up_on_a_read_that_never_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read held longer than the close's wait (another process's lock, a stuck disk) is
    left its connection: close returns after the wait instead of hanging, does not close the
    connection under the read, and the read still finishes on it."""
    monkeypatch.setattr("enricher.state.answers._CLOSE_WAIT", 0.2)
    cache = new_cache(tmp_path / "c.sqlite")
    held, go = threading.Event(), threading.Event()
    result: list[object] = []

    def hold() -> None:
        with cache._reading:
            held.set()
            go.wait(5)
            result.append(cache._db.execute("SELECT 1").fetchone())

    reader = threading.Thread(target=hold)
    reader.start()
    assert held.wait(5)
    started = time.monotonic()
    cache.close()
    waited = time.monotonic() - started
    assert 0.2 <= waited < 3  # gave up after the wait, did not hang
    go.set()
    reader.join(5)
    assert result == [(1,)]  # the connection was left open for the read
    cache._db.close()


def _store_by_hundreds(
    cache: Cache, n: int, then: Callable[[], object] = lambda: None
) -> list[str]:
    """`n` domain keys stored 100 at a time (`then` after each store); the keys."""
    keys = [f"d{i}.example" for i in range(n)]
    for start in range(0, n, 100):
        cache.store(
            Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys[start : start + 100]]
        )
        then()
    return keys


def test_the_writer_commits_many_stores_at_once_and_a_flush_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each commit rewrites every page of the key index it touched: stores that come
    within the writer's wait go in one transaction (up to `_TXN_ROWS` rows), and a flush
    does not wait for more. Every row is written, none twice."""
    monkeypatch.setattr("enricher.state.answers._LINGER", 60.0)
    monkeypatch.setattr("enricher.state.answers._TXN_ROWS", 250)
    cache = new_cache(tmp_path / "c.sqlite3")
    commits: list[int] = []
    real = cache._commit

    def counted(db: Any, rows: Any, requests: int) -> Any:
        commits.append(rows.count if rows is not None else 0)
        return real(db, rows, requests)

    cache._commit = counted  # type: ignore[method-assign]
    keys = _store_by_hundreds(cache, 700)
    started = time.monotonic()
    cache.flush()
    assert time.monotonic() - started < 30  # not the 60 s wait
    assert commits == [300, 300, 100]
    assert len(cache.lookup(Endpoint.DOMAIN, keys)) == 700 and len(cache) == 700
    cache.close()


def test_stores_after_close_are_dropped_not_waited_on(tmp_path: Path) -> None:
    # the writer is gone after close: its queue filled, and the 17th store waited for ever
    cache = new_cache(tmp_path / "c.sqlite3")
    cache.close()
    done = threading.Event()

    def late() -> None:
        for i in range(40):
            cache.store(Endpoint.DOMAIN, [(f"d{i}.example", "benign", line_of("x"), None)])
            cache.add_requests(1)
        cache.flush()
        done.set()

    threading.Thread(target=late, daemon=True).start()
    assert done.wait(10)


def test_the_writer_commits_past_its_wait_though_more_rows_are_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer behind (its queue never empty) commits what waited `_LINGER`, not only at
    `_TXN_ROWS` rows nor at a flush: a killed run loses that much of its answers, not
    20,000 rows. What queued behind a slow commit is taken at one wake, in one commit."""
    monkeypatch.setattr("enricher.state.answers._LINGER", 0.0)
    cache = new_cache(tmp_path / "c.sqlite3")
    commits: list[int] = []
    busy, go, again = threading.Event(), threading.Event(), threading.Event()
    real = cache._commit

    def held(db: Any, rows: Any, requests: int) -> Any:
        if rows is not None:
            commits.append(rows.count)
        busy.set()
        if len(commits) == 2:
            again.set()
        go.wait(10)  # the first commit is slow: the next stores queue behind it
        return real(db, rows, requests)

    cache._commit = held  # type: ignore[method-assign]
    keys = _store_by_hundreds(cache, 400, then=lambda: busy.wait(10))
    go.set()
    assert again.wait(10)  # before any flush (a writer waiting for _TXN_ROWS: at the flush)
    cache.flush()
    assert commits == [100, 300]
    assert len(cache.lookup(Endpoint.DOMAIN, keys)) == 400
    cache.close()


def test_a_commit_is_one_statement_alone_in_its_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stores a commit takes go in one INSERT, which is its transaction (no BEGIN): in a
    transaction of several statements, SQLite copied every page an INSERT OR REPLACE of
    many rows changed to a temporary file first (4.3 GB of 5.6 GB written at 500,000
    rows); the requests are counted after it, on their own."""
    monkeypatch.setattr("enricher.state.answers._LINGER", 60.0)
    cache = new_cache(tmp_path / "c.sqlite3")
    statements: list[str] = []
    connect = cache._connect_again

    def traced() -> sqlite3.Connection:
        db = connect()
        db.set_trace_callback(statements.append)
        return db

    cache._connect_again = traced  # type: ignore[method-assign]
    keys = _store_by_hundreds(cache, 300)
    cache.add_requests(3)
    cache.flush()
    writes = [s.strip() for s in statements if not s.strip().startswith(("PRAGMA", "SELECT"))]
    # the staging table made by the first write; the rows (3 stores) appended to it, then
    # the count; then, as `flush` asks, the merge
    assert writes[0].startswith("CREATE TABLE IF NOT EXISTS staged")
    writes = writes[1:]
    assert [s.split()[0] for s in writes] == ["INSERT", "INSERT", "BEGIN", "INSERT", "DELETE",
                                              "COMMIT"]  # fmt: skip
    assert writes[0].startswith("INSERT INTO staged") and "json_each" in writes[0]
    assert writes[3].startswith("INSERT OR REPLACE INTO answers") and "staged" in writes[3]
    assert len(cache.lookup(Endpoint.DOMAIN, keys)) == 300
    assert cache.requests_today() == 3
    cache.close()


@pytest.mark.parametrize(("json_functions", "groups_max"), [(True, 100), (True, 3), (False, 100)])
def test_a_commit_of_several_endpoints_and_seconds_keeps_the_last_answer_of_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_functions: bool, groups_max: int
) -> None:
    """A commit's rows go in one statement, a SELECT for each (identity, endpoint, second)
    (past `_GROUPS_MAX` of them, several statements in one transaction); rows of a key
    stay in the order they came, a clock that went back included: the merge keeps the
    last answer stored."""
    if not json_functions:
        monkeypatch.setattr("enricher.state.answers._has_json", lambda db: False)
    monkeypatch.setattr("enricher.state.answers._GROUPS_MAX", groups_max)
    monkeypatch.setattr("enricher.state.answers._LINGER", 60.0)  # every store, one commit
    now = [1_000_000.0]
    cache = new_cache(tmp_path / "c.sqlite3", clock=lambda: now[0])
    statements: list[str] = []
    connect = cache._connect_again

    def traced() -> sqlite3.Connection:
        db = connect()
        db.set_trace_callback(statements.append)
        return db

    cache._connect_again = traced  # type: ignore[method-assign]
    url = "u.example"
    for when, endpoint, key, verdict in [
        (1_000_000.0, Endpoint.DOMAIN, "a.com", "malicious"),
        (1_000_000.0, Endpoint.IP, url, "benign"),
        (1_000_001.0, Endpoint.DOMAIN, "a.com", "benign"),
        (1_000_000.0, Endpoint.DOMAIN, "b.com", "malicious"),  # the clock went back
        (1_000_000.0, Endpoint.DOMAIN, "a.com", "unknown"),
    ]:
        now[0] = when
        cache.store(endpoint, [(key, verdict, line_of(key), None)])
    now[0] = 1_000_002.0
    cache.flush()

    def cached_line(key: str) -> bytes:
        return line_of(key)[: -len(FRESH_TAIL)] + CACHED_TAIL

    assert cache.lookup(Endpoint.DOMAIN, ["a.com", "b.com"]) == {
        "a.com": ("unknown", "", cached_line("a.com")),
        "b.com": ("malicious", "", cached_line("b.com")),
    }
    assert cache.lookup(Endpoint.IP, [url]) == {url: ("benign", "", cached_line(url))}
    staging = [s.split()[0] for s in statements if s.startswith(("BEGIN", "INSERT", "COMMIT"))]
    inserts = [s.count("UNION ALL") for s in statements if s.startswith("INSERT INTO staged")]
    if json_functions and groups_max == 100:
        # four groups: (DOMAIN, 0), (IP, 0), (DOMAIN, 1), (DOMAIN, 0) again, after it
        assert staging[:2] == ["INSERT", "BEGIN"] and inserts == [3]
    elif json_functions:
        assert staging[:4] == ["BEGIN", "INSERT", "INSERT", "COMMIT"] and inserts == [2, 0]
    assert cache.stored == 5 and len(cache) == 3
    cache.close()


@pytest.mark.parametrize("json_functions", [True, False])
def test_a_store_is_written_alike_in_one_statement_or_a_row_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_functions: bool
) -> None:
    """The writer inserts a commit's rows in one statement over their JSON (SQLite without
    the GIL), or, in a SQLite without JSON functions, one statement a row: the same rows,
    in the same order (the key index's: a key stored twice in a commit keeps its last
    answer), served alike."""
    if not json_functions:
        monkeypatch.setattr("enricher.state.answers._has_json", lambda db: False)
    monkeypatch.setattr("enricher.state.answers._LINGER", 60.0)  # both stores, one commit
    cache = new_cache(tmp_path / "c.sqlite3", max_ttl=7200, default_ttl=600)
    keys = [f"d{i}.example" for i in range(300)]
    verdicts = ["malicious", "benign", "unknown", "no-such-verdict"]
    cache.store(
        Endpoint.DOMAIN,
        [
            (k, verdicts[i % 4], line_of(k), [None, 90_000, 10**9][i % 3])
            for i, k in enumerate(keys)
        ],
    )
    cache.store(Endpoint.DOMAIN, [("d7.example", "malicious", line_of("d7.example"), None)])
    cache.flush()
    assert cache._json is json_functions
    now = int(time.time())
    rows = cache._db.execute(
        "SELECT rowid, key, verdict, expires_at - fetched_at FROM answers ORDER BY rowid"
    ).fetchall()
    code = {v: VERDICTS.index(v) if v in VERDICTS else 3 for v in verdicts}
    expected = {k: code[verdicts[i % 4]] for i, k in enumerate(keys)}
    expected["d7.example"] = code["malicious"]  # stored again, in the same commit: the last
    assert [(k, v) for _, k, v, _ in rows] == sorted(expected.items())
    assert [rowid for rowid, *_ in rows] == sorted(rowid for rowid, *_ in rows)
    assert {t for *_, t in rows} == {600, 90, 7200}
    found = cache.lookup(Endpoint.DOMAIN, keys)
    assert len(found) == 300
    assert all(line.startswith(b'{"ioc":"%s",' % k.encode()) for k, (_, _, line) in found.items())
    assert abs(cache._db.execute("SELECT max(fetched_at) FROM answers").fetchone()[0] - now) < 5
    cache.close()


def stored_domains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_functions: bool, n: int
) -> tuple[Cache, list[str]]:
    """A cache holding the record lines of `n` domains (`d{i}.example`, stored and flushed),
    and their keys; without `json_functions`, one that reads as a SQLite without them."""
    if not json_functions:
        monkeypatch.setattr("enricher.state.answers._has_json", lambda db: False)
    cache = new_cache(tmp_path / "c.sqlite3")
    keys = [f"d{i}.example" for i in range(n)]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()
    return cache, keys


@pytest.mark.parametrize("json_functions", [True, False])
def test_a_lookup_reads_its_keys_in_one_statement_and_misses_damaged_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_functions: bool
) -> None:
    """A lookup asks SQLite once for up to 10,000 keys (their hits come back as one row;
    where SQLite has no JSON functions, in slices of 900 keys, a row each), and a row
    damaged or holding another key's record is a miss either way."""
    cache, keys = stored_domains(tmp_path, monkeypatch, json_functions, 2000)
    db = sqlite3.connect(tmp_path / "c.sqlite3")
    db.execute("UPDATE answers SET record = x'00' WHERE key = 'd1.example'")
    db.execute(
        "UPDATE answers SET record = (SELECT record FROM answers WHERE key = 'd3.example')"
        " WHERE key = 'd2.example'"
    )
    db.commit()
    db.close()
    asked: list[str] = []
    cache._db.set_trace_callback(asked.append)
    found = cache.lookup(Endpoint.DOMAIN, [*keys, "never.example"])
    cache._db.set_trace_callback(None)
    assert set(found) == set(keys) - {"d1.example", "d2.example"}
    assert found["d3.example"] == (
        "benign",
        "",
        line_of("d3.example")[: -len(FRESH_TAIL)] + CACHED_TAIL,
    )
    assert cache.unreadable == 2 and cache.hits == 1998 and cache.misses == 3
    reads = [s for s in asked if s.startswith("SELECT key") or "json_group_array" in s]
    # packed: one statement, then its keys row by row again, since it held a damaged row
    assert len(reads) == (4 if json_functions else 3)
    cache.close()


@pytest.mark.parametrize("json_functions", [True, False])
def test_a_row_whose_frame_claims_more_than_memory_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_functions: bool
) -> None:
    """A record tampered into a frame whose header claims 1 TiB is a miss like any damaged
    row: zstandard's MemoryError crashed every warm run (a traceback, exit 1)."""
    cache, keys = stored_domains(tmp_path, monkeypatch, json_functions, 20)
    # magic, a descriptor of an 8-byte content size, 2**40, an empty last raw block
    frame = b"\x28\xb5\x2f\xfd\xe0" + (2**40).to_bytes(8, "little") + b"\x01\x00\x00"
    cache._db.execute("UPDATE answers SET record = ? WHERE key = 'd3.example'", (frame,))
    cache._db.commit()
    assert set(cache.lookup(Endpoint.DOMAIN, keys)) == set(keys) - {"d3.example"}
    assert cache.unreadable == 1 and cache.broken is None
    cache.close()


@pytest.mark.parametrize("json_functions", [True, False])
def test_the_writers_frames_need_no_window_past_the_readers_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_functions: bool
) -> None:
    """The reader refuses a frame whose window passes `_WINDOW_MAX` (zstd sets a window
    aside before it reads): no line the writer stores needs more, however long (one longer
    than `_LINE_MAX` is read row by row), and each is served as it was stored."""
    if not json_functions:
        monkeypatch.setattr("enricher.state.answers._has_json", lambda db: False)
    cache = new_cache(tmp_path / "c.sqlite3")
    sizes = [10, 1_000, answers._LINE_MAX - 200, answers._LINE_MAX + 1, 5 * answers._LINE_MAX]
    keys = [f"d{i}.example" for i in range(len(sizes))]
    lines = [
        line_of(k, os.urandom(n // 2).hex().encode()) for k, n in zip(keys, sizes, strict=True)
    ]
    cache.store(
        Endpoint.DOMAIN, [(k, "benign", line, None) for k, line in zip(keys, lines, strict=True)]
    )
    cache.flush()
    for (record,) in cache._db.execute("SELECT record FROM answers"):
        assert zstandard.get_frame_parameters(record).window_size <= answers._WINDOW_MAX
    found = cache.lookup(Endpoint.DOMAIN, keys)
    served = [line[: -len(FRESH_TAIL)] + CACHED_TAIL for line in lines]
    assert [found[k][2] for k in keys] == served
    assert cache.unreadable == 0
    cache.close()


class _Counted:
    """A decompressor's stand-in that counts the bytes its streams give."""

    def __init__(self, real: zstandard.ZstdDecompressor) -> None:
        self.real, self.out = real, 0

    def decompressobj(self) -> Any:
        stream, counted = self.real.decompressobj(), self

        class Stream:
            @property
            def eof(self) -> bool:
                return bool(stream.eof)

            def decompress(self, data: bytes) -> bytes:
                got = stream.decompress(data)
                counted.out += len(got)
                return bytes(got)

        return Stream()


@pytest.mark.parametrize("json_functions", [True, False])
def test_a_long_row_not_of_its_key_is_decompressed_no_further_than_its_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_functions: bool
) -> None:
    """A row holding a true frame of 64 MiB (a hostile or damaged file: another key's line,
    of spaces, 2 KB compressed) is a miss that costs its head, not 64 MiB a lookup; a frame
    whose header claims 64 MiB in one segment (a window that large) is refused before any
    memory is set aside for it."""
    cache, keys = stored_domains(tmp_path, monkeypatch, json_functions, 20)
    spaces = zstandard.ZstdCompressor(level=3).compress(b'{"ioc":"zz",' + b" " * (1 << 26))
    claims = b"\x28\xb5\x2f\xfd\xe0" + (1 << 26).to_bytes(8, "little") + b"\x01\x00\x00"
    for key, frame in (("d3.example", spaces), ("d4.example", claims)):
        cache._db.execute("UPDATE answers SET record = ? WHERE key = ?", (frame, key))
    cache._db.commit()
    counted = _Counted(cache._unpacker)
    monkeypatch.setattr(cache, "_unpacker", counted)
    assert set(cache.lookup(Endpoint.DOMAIN, keys)) == set(keys) - {"d3.example", "d4.example"}
    assert cache.unreadable == 2 and cache.broken is None
    assert 0 < counted.out < 1 << 20
    cache.close()


def test_hits_past_sqlites_length_limit_together_are_read_row_by_row(tmp_path: Path) -> None:
    """A chunk's hits whose records together pass SQLite's length limit (1 GB; lowered here)
    are read row by row: the packed statement's "string or blob too big" broke the cache."""
    cache = new_cache(tmp_path / "c.sqlite3")
    keys = [f"d{i}.example" for i in range(40)]
    cache.store(
        Endpoint.DOMAIN,
        [(k, "benign", line_of(k, os.urandom(1000).hex().encode()), None) for k in keys],
    )
    cache.flush()
    cache._db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 40_000)  # each row ~2 KB, all ~80 KB
    assert set(cache.lookup(Endpoint.DOMAIN, keys)) == set(keys)
    assert cache.broken is None
    cache.close()


def test_a_key_with_a_nul_is_written_and_read_as_itself(tmp_path: Path) -> None:
    """SQLite's JSON functions end a text at a NUL: the packed insert wrote 'a.example\\0b'
    as 'a.example', over that key's row, and the packed lookup missed it; such keys go a row
    at a time, so both are served as the row path serves them."""
    cache = new_cache(tmp_path / "c.sqlite3")
    keys = ["a.example", "a.example\x00b", "b.example"]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()
    assert cache._json
    assert sorted(k for (k,) in cache._db.execute("SELECT key FROM answers")) == sorted(keys)
    assert set(cache.lookup(Endpoint.DOMAIN, keys)) == set(keys)
    assert cache.unreadable == 0
    cache.close()


def test_a_store_of_empty_record_lines_is_written_and_missed(tmp_path: Path) -> None:
    """Empty record lines alone (zstandard's multi_compress_to_buffer refuses them) are
    written a frame each and missed, as a row of another key's record is: they broke the
    cache for the run ("source elements are empty")."""
    cache = new_cache(tmp_path / "c.sqlite3")
    cache.store(Endpoint.DOMAIN, [("a.example", "benign", b"", None)])
    cache.store(Endpoint.DOMAIN, [("b.example", "benign", line_of("b.example"), None)])
    cache.flush()
    assert cache.broken is None and cache.stored == 2
    assert set(cache.lookup(Endpoint.DOMAIN, ["a.example", "b.example"])) == {"b.example"}
    cache.close()


def test_frames_that_claim_no_size_or_past_2_63_are_missed_in_a_process_that_goes_on(
    tmp_path: Path,
) -> None:
    """Rows tampered into frames that claim nothing (or empty lines stored) or more than
    2**63 bytes are missed: zstandard's bulk decompress freed a buffer twice after an empty
    frame, and overflowed its buffer's size past 2**63 (the process aborted, so the lookups
    run in a process of their own), in both paths."""
    path = tmp_path / "c.sqlite3"
    cache = new_cache(path)
    keys = ["a.example", "b.example", "c.example", "d.example"]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k, b"1" * 300), None) for k in keys])
    cache.flush()
    empty = zstandard.ZstdCompressor(write_checksum=True).compress(b"")
    # magic, a descriptor of an 8-byte content size, 2**64 - 2**60, an empty last raw block
    vast = b"\x28\xb5\x2f\xfd\xe0" + (2**64 - 2**60).to_bytes(8, "little") + b"\x01\x00\x00"
    cache._db.execute("UPDATE answers SET record = ? WHERE key < 'c'", (empty,))
    cache._db.execute("UPDATE answers SET record = ? WHERE key = 'd.example'", (vast,))
    cache._db.commit()
    cache.close()
    script = f"""
from pathlib import Path
from enricher.api.identity import ApiIdentity
from enricher.ioc import Endpoint
from enricher.state.answers import Cache
for json in (True, False):
    c = Cache(Path({str(path)!r}), identity=ApiIdentity({API.base!r}), max_ttl=3600,
              default_ttl=3600)
    c._json = json
    for asked in (["a.example", "b.example"], ["a.example", "c.example"], ["d.example"]):
        assert set(c.lookup(Endpoint.DOMAIN, asked)) <= {{"c.example"}}
    assert set(c.lookup(Endpoint.DOMAIN, {keys!r})) == {{"c.example"}}
    assert c.unreadable == 7 and c.broken is None, (c.unreadable, c.broken)
    c.close()
print("held")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "held\n"), done.stderr[-2000:]


# -- staging: a run's answers appended, then merged into the key index in its order ---------


def _staged(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        (n,) = db.execute("SELECT count(*) FROM staged").fetchone()
        return int(n)


def test_stored_rows_are_staged_then_merged_past_a_share_of_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer appends what it commits to `staged` (no key index to insert into at
    random places) and merges it into `answers` once it holds `_MERGE_MIN` rows and
    `_MERGE_SHARE` of the index; a flush merges what is staged, so that lookups see it."""
    monkeypatch.setattr("enricher.state.answers._LINGER", 0.0)  # a commit a store
    monkeypatch.setattr("enricher.state.answers._MERGE_MIN", 300)
    monkeypatch.setattr("enricher.state.answers._MERGE_SHARE", 1.0)
    path = tmp_path / "c.sqlite3"
    cache = new_cache(path)
    seen: list[tuple[int, int]] = []

    def look() -> None:
        cache._writes.join()  # committed (not a flush: no merge asked)
        seen.append((_staged(path), len(cache)))

    keys = _store_by_hundreds(cache, 900, then=look)
    # merged at 300 rows (the index empty), then once 300 more were staged (300 indexed),
    # not at 900 (600 indexed): the rest waits for the flush
    assert seen == [(100, 0), (200, 0), (0, 300), (100, 300), (200, 300), (0, 600),
                    (100, 600), (200, 600), (300, 600)]  # fmt: skip
    cache.flush()
    assert (_staged(path), len(cache)) == (0, 900)
    assert len(cache.lookup(Endpoint.DOMAIN, keys)) == 900
    rows = cache._db.execute("SELECT key FROM answers ORDER BY rowid").fetchall()
    assert [k for (k,) in rows[600:]] == sorted(keys[600:])  # each merge in the key's order
    cache.close()


STAGE_AND_WAIT = """
import sys, time
from pathlib import Path
from enricher.api.identity import ApiIdentity
from enricher.ioc import Endpoint
from enricher.state.answers import Cache

cache = Cache(Path(sys.argv[1]), max_ttl=3600, default_ttl=3600,
              identity=ApiIdentity("https://gti.example/rest/classification_v1"))
line = b'{"ioc":"%s","type":"domain","response":{"ttl":1},"cached":false}\\n'
for start in range(0, 500, 100):
    cache.store(Endpoint.DOMAIN, [(f"d{i}.example", "benign", line % f"d{i}.example".encode(),
                                   None) for i in range(start, start + 100)])
cache._writes.join()  # committed to the staging table; not merged (no flush, no close)
print("staged", flush=True)
time.sleep(60)
"""


def test_answers_a_killed_run_staged_are_merged_and_served_by_the_next(tmp_path: Path) -> None:
    """A run SIGKILLed with its answers staged (committed, not merged into the key index):
    the next run to open the cache merges them first, and serves them."""
    import signal

    path = tmp_path / "c.sqlite3"
    with subprocess.Popen(
        [sys.executable, "-c", STAGE_AND_WAIT, str(path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "staged\n"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _staged(path) == 500
    cache = new_cache(path)
    keys = [f"d{i}.example" for i in range(500)]
    assert len(cache.lookup(Endpoint.DOMAIN, keys)) == 500
    assert _staged(path) == 0 and len(cache) == 500
    cache.close()


def test_a_cache_only_read_gets_no_staging_table_its_first_write_makes_it(
    tmp_path: Path,
) -> None:
    # an enricher from before `staged` refuses a file that has it ("carries enricher's
    # marker but not the tables of its cache"): a lookup, or a run that stores nothing,
    # leaves the file as it found it; the first store makes the table
    path = tmp_path / "c.sqlite3"

    def tables() -> set[str]:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return {name for (name,) in db.execute("SELECT name FROM sqlite_master")}

    for _ in range(2):
        cache = new_cache(path)
        assert cache.lookup(Endpoint.DOMAIN, ["a.com"]) == {}
        cache.add_requests(2)
        cache.flush()
        cache.close()
        assert "staged" not in tables()
    cache = new_cache(path)
    keys = _store_by_hundreds(cache, 100)
    cache.close()
    assert "staged" in tables()
    cache = new_cache(path)
    assert len(cache.lookup(Endpoint.DOMAIN, keys)) == 100
    cache.close()


def test_a_concurrent_run_is_served_another_runs_answers_once_merged(tmp_path: Path) -> None:
    """Two caches open on one file (two runs): what one stored is staged until a merge
    (past its share of the index, a flush, its close); the other is served it from then on,
    not before (a concurrent run may miss another's staged answers)."""
    path = tmp_path / "c.sqlite3"
    first, second = new_cache(path), new_cache(path)
    keys = _store_by_hundreds(first, 200)
    first._writes.join()
    assert _staged(path) == 200
    assert second.lookup(Endpoint.DOMAIN, keys) == {}
    first.close()
    assert len(second.lookup(Endpoint.DOMAIN, keys)) == 200
    second.close()


def test_staged_rows_that_cannot_be_merged_on_opening_do_not_stop_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A killed run's staged rows, and a disk full when the next run opens the file: the
    merge fails, and is rolled back with the error that says why (SQLite rolled the
    transaction back itself: a ROLLBACK after it said "cannot rollback", which the opening
    took for a cache it cannot write, and the run stopped, where before the staging table it
    went on); the run goes on, served what was merged, the staged rows left for later."""
    path = tmp_path / "c.sqlite3"
    cache = new_cache(path)
    keys = _store_by_hundreds(cache, 200)
    cache.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "INSERT INTO staged SELECT identity, endpoint, key || 'x', verdict, format, record,"
            " fetched_at, expires_at FROM answers"
        )
        db.commit()
    connect = Cache._connect

    def full(self: Cache, **kw: Any) -> sqlite3.Connection:
        db = connect(self, **kw)
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages}")  # a full disk, to this connection
        return db

    monkeypatch.setattr(Cache, "_connect", full)
    with caplog.at_level("WARNING", logger="enricher"):
        cache = new_cache(path)
    assert "could not be merged (database or disk is full)" in caplog.text
    assert len(cache.lookup(Endpoint.DOMAIN, keys)) == 200
    cache.close()
    assert _staged(path) == 200
    monkeypatch.setattr(Cache, "_connect", connect)
    cache = new_cache(path)  # room again: merged
    assert _staged(path) == 0 and len(cache) == 400
    cache.close()


@pytest.mark.skipif(answers._LOOKUP_THREADS < 2, reason="one core: one lookup thread")
def test_lookup_threads_reading_row_by_row_at_once_each_decompress_alone(
    tmp_path: Path,
) -> None:
    """Two lookup threads that both read row by row (here a SQLite without JSON functions;
    also a chunk with a line past `_LINE_MAX`, or a damaged row) each stream their frames
    through a decompressor of their own: zstandard's decompressobj works in its
    decompressor's one context, without the GIL, so two streams through one trampled each
    other ("Data corruption detected": a hit missed, asked again; or the process crashed,
    so the lookups run in a process of their own)."""
    path = tmp_path / "c.sqlite3"
    cache = new_cache(path)
    keys = [f"d{i}.example" for i in range(2000)]
    cache.store(
        Endpoint.DOMAIN,
        [(k, "benign", line_of(k, os.urandom(3000).hex().encode()), None) for k in keys],
    )
    cache.flush()
    cache.close()
    script = f"""
import asyncio
from pathlib import Path
from enricher.api.identity import ApiIdentity
from enricher.ioc import Endpoint
from enricher.state.answers import Cache
c = Cache(Path({str(path)!r}), identity=ApiIdentity({API.base!r}), max_ttl=3600,
          default_ttl=3600)
c._json = False
keys = {keys!r}
async def main() -> None:
    for _ in range(25):
        got = await asyncio.gather(
            *(c.answers({{Endpoint.DOMAIN: keys[i : i + 250]}}) for i in range(0, 2000, 250))
        )
        assert sum(len(g[Endpoint.DOMAIN]) for g in got) == 2000, c.unreadable
asyncio.run(main())
assert c.unreadable == 0 and c.broken is None, (c.unreadable, c.broken)
c.close()
print("held")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout) == (0, "held\n"), done.stderr[-2000:]


def test_a_lookup_threads_connection_changes_nothing_in_a_file_put_in_the_caches_place(
    tmp_path: Path,
) -> None:
    """A file put at the cache's path since it was opened (another program's SQLite
    database, in rollback-journal mode) is left as it is by a lookup thread that opens its
    own connection: it is found not the cache's before any pragma runs (journal_mode=WAL
    turned it into a WAL database), and the lookups read through the cache's connection."""
    path = tmp_path / "c.sqlite3"
    cache = new_cache(path)
    keys = [f"d{i}.example" for i in range(200)]
    cache.store(Endpoint.DOMAIN, [(k, "benign", line_of(k), None) for k in keys])
    cache.flush()
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE t(x)")
        db.execute("INSERT INTO t VALUES (1)")
        db.commit()
    os.rename(other, path)
    theirs = path.read_bytes()
    assert cache._own_reader() is None

    async def main() -> list[dict[Endpoint, dict[str, Any]]]:
        return list(
            await asyncio.gather(
                *(cache.answers({Endpoint.DOMAIN: keys[i : i + 50]}) for i in range(0, 200, 50))
            )
        )

    got = asyncio.run(main())
    assert sum(len(found[Endpoint.DOMAIN]) for found in got) == 200
    assert path.read_bytes() == theirs
    cache.close()


def test_the_writer_takes_at_a_wake_as_many_record_bytes_as_it_may_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the writer takes from its queue at one wake is bounded in record bytes as well as
    rows: it holds the lines, a copy made served and their frames at once, so that stores of
    long lines (tens of KB each) queued behind a slow commit made its peak several times the
    queue's (1,115 MB against base 413 for 60 stores of 500 lines of 20 KB)."""
    import queue as queues

    from enricher.state import answers

    monkeypatch.setattr(answers, "_TAKE_BYTES", 2_000, raising=False)

    def item(size: int) -> Any:
        lines = [b"x" * size] * 2
        return ((1, 1, 1, 0.0, [("k", "benign", None)] * 2, lines), 0)

    class Writer:
        _writes: queues.Queue[Any] = queues.Queue()

    writer: Any = Writer()
    for _ in range(5):
        writer._writes.put(item(400))  # 800 bytes a store
    taken = Cache._taken(writer, item(400), 1_000)
    assert len(taken) == 3  # 2,400 bytes: past the bound at the third store, not all six
    assert writer._writes.qsize() == 3
    writer._writes = queues.Queue()
    writer._writes.put(item(10))
    assert len(Cache._taken(writer, item(10_000), 1_000)) == 1  # one store past it alone
    writer._writes.put(None)
    assert Cache._taken(writer, item(10), 1_000)[-1] is None  # small ones: to the end
