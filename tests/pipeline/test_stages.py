"""The plain stages: batcher, deduper, reader."""

from __future__ import annotations

import asyncio
import os
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.errors import InputError
from enricher.inputs import Chunk, InputOptions, check_inputs, read_inputs
from enricher.ioc import Endpoint, IocType
from enricher.pipeline import batcher as batcher_module
from enricher.pipeline import dedupe
from enricher.pipeline.batcher import Batcher
from enricher.pipeline.dedupe import Deduper, PyDeduper, pack
from enricher.pipeline.ingest import Ingest
from enricher.pipeline.ledger import Ledger
from enricher.pipeline.stats import RunStats


def sizes(n: int) -> dict[Endpoint, int]:
    return {ep: n for ep in Endpoint}


def test_batcher_groups_per_endpoint() -> None:
    b = Batcher(sizes(2))
    assert b.add_all([(IocType.MD5, "a" * 32), (IocType.DOMAIN, "x.com")]) == []
    [full] = b.add_all([(IocType.SHA1, "b" * 40)])
    assert full.endpoint is Endpoint.FILE
    assert full.keys == [(IocType.MD5, "a" * 32), (IocType.SHA1, "b" * 40)]
    assert len(b) == 1
    rest = list(b.drain())
    assert [(x.endpoint, len(x.keys)) for x in rest] == [(Endpoint.DOMAIN, 1)]
    assert len(b) == 0


def test_batcher_requeue_and_shrink_never_exceed_the_size() -> None:
    b = Batcher(sizes(4))
    assert b.add_all([(IocType.DOMAIN, f"d{i}.com") for i in range(3)]) == []
    for i in range(3):
        b.requeue((IocType.DOMAIN, f"r{i}.com"))
    [full] = b.add_all([(IocType.DOMAIN, "last.com")])
    assert len(full.keys) == 4
    b.shrink(Endpoint.DOMAIN, 2)
    b.shrink(Endpoint.DOMAIN, 3)  # never grows back
    assert b.sizes[Endpoint.DOMAIN] == 2
    assert [len(x.keys) for x in b.drain()] == [2, 1]


#: what is done to a batcher: keys added (by their types), a key requeued, a size shrunk
OPS = st.lists(
    st.tuples(st.just("add"), st.lists(st.sampled_from(list(IocType)), max_size=40))
    | st.tuples(st.just("requeue"), st.sampled_from(list(IocType)))
    | st.tuples(st.just("shrink"), st.tuples(st.sampled_from(list(Endpoint)), st.integers(1, 6))),
    max_size=12,
)


@pytest.mark.skipif(batcher_module._fill is None, reason="the C module is not built")
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 7), OPS)
def test_batcher_in_c_gives_what_the_python_loop_gives(size: int, ops: list[tuple]) -> None:
    """`add_all` of a list runs `_dedupe.fill`; of any other iterable, the Python loop: the
    same batches in the same order, the same keys left pending."""
    c, python = Batcher(sizes(size)), Batcher(sizes(size))
    n = 0
    for op, arg in ops:
        if op == "add":
            keys = [(t, f"v{n + i}") for i, t in enumerate(arg)]
            n += len(keys)
            made = c.add_all(keys), python.add_all(iter(keys))
            assert made[0] == made[1]
        elif op == "requeue":
            key = (arg, f"r{n}")
            n += 1
            c.requeue(key)
            python.requeue(key)
        else:
            c.shrink(*arg)
            python.shrink(*arg)
    assert list(c.drain()) == list(python.drain())


def test_batcher_add_all_takes_a_batch_as_each_key_completes_one() -> None:
    keys = [(IocType.DOMAIN, f"d{i}.com") for i in range(7)] + [(IocType.MD5, "a" * 32)] * 5
    b = Batcher(sizes(3))
    for i in range(4):  # requeued keys make the domains' pending list longer than a batch
        b.requeue((IocType.DOMAIN, f"r{i}.com"))
    full = b.add_all(keys)
    # r0-r3 and d0 are 5 pending: a batch of 3 (2 left), then one as d1, d4 and the third md5
    # complete one
    assert [(x.endpoint, x.keys) for x in full] == [
        (Endpoint.DOMAIN, [(IocType.DOMAIN, f"r{i}.com") for i in range(3)]),
        (Endpoint.DOMAIN, [(IocType.DOMAIN, "r3.com"), (IocType.DOMAIN, "d0.com"),
                           (IocType.DOMAIN, "d1.com")]),
        (Endpoint.DOMAIN, [(IocType.DOMAIN, f"d{i}.com") for i in range(2, 5)]),
        (Endpoint.FILE, [(IocType.MD5, "a" * 32)] * 3),
    ]  # fmt: skip
    left = [(x.endpoint, len(x.keys)) for x in b.drain()]
    assert left == [(Endpoint.FILE, 2), (Endpoint.DOMAIN, 2)]


def test_ingest_asks_the_privacy_rule_of_names_and_addresses_only() -> None:
    asked: list[IocType] = []

    def withhold(ioc_type: IocType, value: str) -> str | None:
        asked.append(ioc_type)
        return None

    ingest = Ingest(Ledger(RunStats()), withhold=withhold, send_sha256=True)
    _, new = ingest.take(Chunk("f", 1, ["a" * 32, "b" * 40, "c" * 64, "x.com", "1.2.3.4"]))
    assert len(new) == 5
    assert asked == [IocType.DOMAIN, IocType.IPV4]


@pytest.fixture(params=[Deduper, PyDeduper], ids=["default", "python"])
def kind(request: pytest.FixtureRequest) -> type[Deduper]:
    """The deduper as ingest makes it (C tables where built) and its pure-Python one."""
    cls: type[Deduper] = request.param
    return cls


def test_deduper_is_exact_and_keeps_types_apart(kind: type[Deduper]) -> None:
    d = kind()
    md5 = "6162636465666768696a6b6c2e636f6d"  # the bytes of "abcdefghijkl.com"
    assert d.add(IocType.MD5, md5)
    assert d.add(IocType.DOMAIN, "abcdefghijkl.com")  # same packed bytes, other type
    assert not d.add(IocType.MD5, md5)
    assert d.add(IocType.IPV4, "1.2.3.4") and not d.add(IocType.IPV4, "1.2.3.4")
    assert d.add(IocType.IPV6, "2001:db8::1") and not d.add(IocType.IPV6, "2001:db8::1")
    assert (IocType.MD5, md5) in d and len(d) == 4
    assert pack(IocType.SHA256, "ab" * 32) == bytes.fromhex("ab" * 32)


def test_deduper_never_drops_a_distinct_key(kind: type[Deduper]) -> None:
    d = kind()
    keys = [f"{i:032x}" for i in range(20_000)]
    assert all(d.add(IocType.MD5, k) for k in keys)
    assert not any(d.add(IocType.MD5, k) for k in keys)


def test_deduper_matches_whole_records_only(
    kind: type[Deduper], monkeypatch: pytest.MonkeyPatch
) -> None:
    # one bucket: every record lies beside others, where a match across two of them (or a
    # name inside a longer one) must not count as seen
    monkeypatch.setattr(dedupe, "_FIRST_BUCKETS", 1)
    d = kind()
    a, b = "00" * 8 + "11" * 8, "22" * 8 + "33" * 8
    assert d.add(IocType.MD5, a) and d.add(IocType.MD5, b)
    across = "11" * 8 + "22" * 8
    assert (IocType.MD5, across) not in d
    assert d.add(IocType.MD5, across) and not d.add(IocType.MD5, across)
    assert d.add(IocType.IPV4, "1.2.3.4") and d.add(IocType.IPV4, "5.6.7.8")
    assert d.add(IocType.IPV4, "3.4.5.6")  # the bytes across the two above
    names = ["a.com", "ba.com", "b.a.com", "a.co", "com", "", "\u00e9.fr"]
    assert all(d.add(IocType.DOMAIN, n) for n in names)
    assert not any(d.add(IocType.DOMAIN, n) for n in names)
    with pytest.raises(ValueError, match="not a normalized"):
        d.add(IocType.MD5, "ab" * 8)  # 8 bytes would match inside a 16-byte record
    copy = pickle.loads(pickle.dumps(d))
    assert len(copy) == len(d) == 3 + 3 + len(names)
    assert all((IocType.DOMAIN, n) in copy for n in names)
    assert (IocType.DOMAIN, "a.c") not in copy and (IocType.MD5, across) in copy
    # what `Enricher.reached` may be asked: no value of its type is not in it (a set's answer)
    for t, v in [(IocType.IPV4, "nope"), (IocType.MD5, "ab" * 8), (IocType.IPV6, "1.2.3.4")]:
        assert (t, v) not in copy
    assert (IocType.MD5, "zz" * 16) not in copy and (IocType.DOMAIN, "\ud800.com") not in copy


def test_deduper_keeps_every_key_through_growth_and_pickling(kind: type[Deduper]) -> None:
    d = kind()
    keys = [(t, v) for i in range(3_000) for t, v in (
        (IocType.SHA1, f"{i:040x}"), (IocType.DOMAIN, f"h{i}.example.com"),
        (IocType.IPV4, f"10.0.{i >> 8}.{i & 255}"), (IocType.IPV6, f"2001:db8::{i:x}"),
    )]  # fmt: skip
    assert all(d.add(t, v) for t, v in keys)
    copy = pickle.loads(pickle.dumps(d))
    for seen in (d, copy):
        assert len(seen) == len(keys)
        assert not any(seen.add(t, v) for t, v in keys)
    assert copy.add(IocType.DOMAIN, "h3000.example.com")
    # ingest's way of adding (by type, one call) asks the same tables, unpickled or not
    for seen in (d, copy):
        assert not any(seen.adders[t](v) for t, v in keys)
        assert seen.adders[IocType.IPV4]("10.0.99.0") and not seen.add(IocType.IPV4, "10.0.99.0")


async def collect(paths: list[str], **kw: int) -> list[Chunk]:
    options = InputOptions(format="lines")
    return [c async for c in read_inputs(paths, options, **kw)]


def lines_of(chunks: list[Chunk]) -> list[tuple[str, int, str | None]]:
    return [(c.source, c.first_line + i, s) for c in chunks for i, s in enumerate(c.lines)]


async def test_reader_bom_crlf_and_numbering(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(b"\xef\xbb\xbfexample.com\r\n\r\n# c\r\n1.2.3.4")
    got = lines_of(await collect([str(f)]))
    assert got == [
        (str(f), 1, "example.com\r"),
        (str(f), 2, "\r"),
        (str(f), 3, "# c\r"),
        (str(f), 4, "1.2.3.4"),
    ]


async def test_reader_invalid_utf8_is_a_reasoned_none(tmp_path: Path) -> None:
    f = tmp_path / "b.txt"
    f.write_bytes(b"good.com\n\xff\xfebad\nalso.com\n")
    chunks = await collect([str(f)])
    assert lines_of(chunks)[:3] == [
        (str(f), 1, "good.com"),
        (str(f), 2, None),
        (str(f), 3, "also.com"),
    ]
    assert "UTF-8" in chunks[0].errors[1]


async def test_reader_overlong_line_is_skipped_not_held(tmp_path: Path) -> None:
    f = tmp_path / "c.txt"
    f.write_bytes(b"a.com\n" + b"x" * 3_000_000 + b"\nb.com\n" + b"y" * 5000)
    chunks = await collect([str(f)], max_line=4096)
    got = lines_of(chunks)
    assert [(n, s) for _, n, s in got] == [(1, "a.com"), (2, None), (3, "b.com"), (4, None)]
    assert any("longer than 4096" in r for c in chunks for r in c.errors.values())


async def test_reader_many_files_and_empty(tmp_path: Path) -> None:
    a, b, e = tmp_path / "a", tmp_path / "b", tmp_path / "e"
    a.write_text("1\n2\n")
    b.write_text("3")
    e.write_text("")
    got = lines_of(await collect([str(a), str(e), str(b)]))
    assert [(Path(s).name, n, v) for s, n, v in got] == [
        ("a", 1, "1"),
        ("a", 2, "2"),
        ("b", 1, "3"),
    ]


def test_check_inputs_clear_errors(tmp_path: Path) -> None:
    assert check_inputs([]) == ["-"]
    with pytest.raises(InputError, match="not found"):
        check_inputs([str(tmp_path / "missing.txt")])
    with pytest.raises(InputError, match="directory"):
        check_inputs([str(tmp_path)])


async def test_reader_streams_a_slow_pipe_line_by_line() -> None:
    r, w = os.pipe()
    got: list[str | None] = []

    async def consume() -> None:
        async for chunk in read_inputs([f"/dev/fd/{r}"], InputOptions(format="lines")):
            got.extend(chunk.lines)

    task = asyncio.create_task(consume())
    os.write(w, b"first.com\n")
    for _ in range(200):
        await asyncio.sleep(0.01)
        if got:
            break
    assert got == ["first.com"]  # delivered before the writer is done
    os.write(w, b"second.com\n")
    os.close(w)
    await asyncio.wait_for(task, 5)
    os.close(r)
    assert got == ["first.com", "second.com"]
