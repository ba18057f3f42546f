"""No secret leaves the process except to the API: not in a log line (debug level, text or
JSON), an output, failures, rejects or deferred file, the manifest, the cache, the repr of the
settings, nor the text of any exception, whatever the server answers.

Every run has all three secrets configured (a tenant password, the session cookie the login
gives, an API token), one of them in use, and a server that fails in the ways that make error
messages: refusals, 5xx, and hostile echoes of our own headers in error bodies.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import random
import socket
import stat
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from helpers import PlainEmulator, cached_lines, damage, enricher, read_ndjson

from enricher.api.identity import ApiIdentity
from enricher.api.protocol import ParsedResponse, parse_response
from enricher.api.redaction import ERROR_TEXT_MAX, Redactor
from enricher.api.sender import Sender
from enricher.api.transport import AiohttpTransport
from enricher.app import cli
from enricher.config.settings import load_settings
from enricher.ioc import Endpoint
from enricher.state.answers import Cache

USER = "analyst-7"
PASSWORD = "pw-Zq8-secret-Password-4417"
COOKIE = "C00KIE5ECRET9F2A6B1D0E4C7A8B3F51"
TOKEN = "tok-5ecret-A9d8F7e6D5c4B3a2"
SECRETS = (PASSWORD, COOKIE, TOKEN)
PREFIX = "/rest/classification_v1"
IOCS = ["92f44e405db16ac55d97e3bfe3b132fa", "evil.example.com", "www.example.org", "1.2.3.4"]


class Gti:
    """A small GTI look-alike with a tenant login; each endpoint misbehaves as told."""

    def __init__(self, behaviour: dict[str, str], *, login_ok: bool = True) -> None:
        self.behaviour = behaviour
        self.login_ok = login_ok
        self.url = ""
        self.logins = 0
        self.authorized: list[bool] = []
        self.password_sent = ""  # what a login sent: the one password this server could echo

    async def login(self, request: web.Request) -> web.StreamResponse:
        self.logins += 1
        form = await request.post()
        self.password_sent = str(form.get("password"))
        if not self.login_ok or (form.get("username"), form.get("password")) != (USER, PASSWORD):
            # a hostile echo: the refusal repeats what it was sent
            return web.json_response({"error": f"bad login {form.get('password')}"}, status=401)
        resp = web.Response(text="<html>Logged in</html>", content_type="text/html")
        resp.set_cookie("JSESSIONID", COOKIE, httponly=True)
        return resp

    async def batch(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        ok = request.cookies.get("JSESSIONID") == COOKIE or (
            request.headers.get("Authorization") == f"Bearer {TOKEN}"
        )
        self.authorized.append(ok)
        echo = f"{request.headers.get('Authorization')} {request.headers.get('Cookie')}"
        what = self.behaviour.get(request.path.rsplit("/", 1)[-1], "ok")
        if what == "401" or not ok:
            return web.json_response({"error": f"Unauthorized {echo}"}, status=401)
        if what == "503":
            return web.json_response({"error": f"busy, {echo}"}, status=503)
        if what == "echo400":
            return web.json_response({"error": f"bad request from {echo}"}, status=400)
        if what == "echo200":
            return web.json_response({"status": "ERROR", "message": f"no session {echo}"})
        entries = [
            {"requestKey": item["requestKey"], "ttl": 1000,
             "aggregatedResult": {"maliciousClassification": {"type": "malware"}}}
            for item in body["requestData"]
        ]  # fmt: skip
        if what == "echo_answer":  # a 200 answer that quotes what it was sent, in its values
            for entry in entries:
                entry["aggregatedResult"]["link"] = f"https://gti.example/x?seen={echo}"
                entry["debug"] = {"headers": [echo], "password": self.password_sent}
        if what == "echo_name":  # ... and in a field name: that entry is no answer
            entries[0][f"debug {echo}"] = True
        return web.json_response({"classificationResponses": entries})


@asynccontextmanager
async def serve(gti: Gti) -> AsyncIterator[Gti]:
    app = web.Application()
    app.router.add_post("/login.html", gti.login)
    app.router.add_post(PREFIX + "/{endpoint}", gti.batch)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    gti.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield gti
    finally:
        await runner.cleanup()


def config(tmp_path: Path, gti: Gti, mode: str, from_files: bool) -> Path:
    """A profile for `mode`, with the secrets in files or (see `environment`) variables."""
    auth = [f'mode = "{mode}"', f'login_url = "{gti.url}/login.html"']
    if from_files:
        (tmp_path / "password").write_text(PASSWORD + "\n")
        (tmp_path / "token").write_text(f"Bearer {TOKEN}\n")
        auth += [f'password_file = "{tmp_path / "password"}"',
                 f'header_value_file = "{tmp_path / "token"}"']  # fmt: skip
    path = tmp_path / "profile.toml"
    path.write_text(
        "[api]\n"
        f'base_url = "{gti.url}{PREFIX}"\n'
        "[limits]\nrate = 0\n"
        "[retry]\nattempts = 2\nbackoff_base = 0.01\nbackoff_max = 0.02\n"
        "[network]\nread_timeout = 2.0\ntotal_timeout = 4.0\ntrust_env = false\n"
        "[auth]\n" + "\n".join(auth) + "\n"
    )
    return path


def environment(from_files: bool) -> dict[str, str]:
    env = {"ENRICHER_USERNAME": USER}
    if not from_files:
        env |= {"ENRICHER_PASSWORD": PASSWORD, "ENRICHER_AUTH_HEADER": f"Bearer {TOKEN}"}
    return env


def find_secrets(where: str, data: bytes | str) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    return [f"{where}: {s[:6]}..." for s in SECRETS if s.encode() in raw]


def left_by_the_run(directory: Path) -> list[Path]:
    """The files in `directory` but the inputs the test made."""
    inputs = {"password", "token", "profile.toml", "iocs.txt"}
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name not in inputs)


@pytest.fixture
def exceptions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The text (str, repr, formatted traceback) of every exception the HTTP edge and the
    sender raise during the test."""
    seen: list[str] = []

    def spy(cls: type, name: str) -> None:
        original = getattr(cls, name)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await original(*args, **kwargs)
            except BaseException as exc:
                seen.append(f"{exc}\n{exc!r}\n{''.join(traceback.format_exception(exc))}")
                raise

        monkeypatch.setattr(cls, name, wrapper)

    spy(AiohttpTransport, "_post")
    spy(AiohttpTransport, "post")
    spy(AiohttpTransport, "login")
    spy(Sender, "fetch")
    yield seen


@pytest.fixture
def debug_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every logger (enricher's, aiohttp's, asyncio's in debug mode) at DEBUG, into one buffer,
    besides what the command line prints itself."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    setup = cli.setup_logging

    def setup_at_debug(**kwargs: Any) -> None:
        setup(**kwargs)
        log = logging.getLogger("enricher")
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)

    monkeypatch.setattr(cli, "setup_logging", setup_at_debug)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(level)


SCENARIOS = {
    # session login; some records, a hostile 400, a 5xx: failures, no stop
    "session-faults": ("session", {"domain_batch": "echo400", "ip_batch": "503"}, True, 2),
    # session login; a 401 on a session just renewed stops the run: deferred IOCs
    "session-refused": ("session", {"domain_batch": "401", "ip_batch": "echo200"}, True, 3),
    # the login itself refused
    "login-refused": ("session", {}, False, 3),
    # token; refused part way, a hostile 200 error body
    "token-refused": ("header", {"domain_batch": "401", "ip_batch": "echo200"}, True, 3),
    # token; hostile echoes only
    "token-faults": ("header", {"domain_batch": "echo200", "file_batch": "echo400"}, True, 2),
    # answers (HTTP 200, well formed) that echo the token, the cookie and the password
    "token-echo-answers": (
        "header",
        {"domain_batch": "echo_answer", "ip_batch": "echo_answer"},
        True,
        0,
    ),
    "session-echo-answers": ("session", {"file_batch": "echo_answer"}, True, 0),
    # an echo in a field name: not taken out (the entry would change), the key fails
    "token-echo-names": ("header", {"domain_batch": "echo_name"}, True, 2),
}


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("from_files", [False, True], ids=["env", "files"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_no_secret_in_anything_a_run_leaves(
    scenario: str,
    from_files: bool,
    log_format: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exceptions: list[str],
    debug_logs: io.StringIO,
) -> None:
    mode, behaviour, login_ok, code = SCENARIOS[scenario]
    for name, value in environment(from_files).items():
        monkeypatch.setenv(name, value)
    src = tmp_path / "iocs.txt"
    src.write_text("\n".join(IOCS) + "\nnot an ioc\n")
    out = tmp_path / "out.ndjson"
    async with serve(Gti(behaviour, login_ok=login_ok)) as gti:
        profile = config(tmp_path, gti, mode, from_files)
        argv = ["run", str(src), "-o", str(out), "--config", str(profile),
                "--cache", str(tmp_path / "cache.sqlite3"), "--manifest", str(tmp_path / "m.json"),
                "--log-format", log_format]  # fmt: skip
        got = await asyncio.to_thread(cli.main, argv)
    assert got == code
    # a 401 renews the session once, whatever its age; a 401 again is the refusal
    assert gti.logins == (0 if mode != "session" else 2 if scenario == "session-refused" else 1)
    assert all(gti.authorized) or not login_ok  # the secrets were in use, and right
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    leaks = find_secrets("stdout", printed.out) + find_secrets("stderr", printed.err)
    assert "asyncio DEBUG" in debug_logs.getvalue()  # the debug logs were on
    leaks += find_secrets("debug log", debug_logs.getvalue())
    leaks += [hit for text in exceptions for hit in find_secrets("exception", text)]
    files = left_by_the_run(tmp_path)
    for path in files:
        leaks += find_secrets(path.name, path.read_bytes())
    # the cache's rows are compressed: what they hold is searched, not only the file's bytes
    cache = tmp_path / "cache.sqlite3"
    for line in cached_lines(cache) if cache.exists() else []:
        leaks += find_secrets("a cached record", line)
    assert leaks == [], leaks
    # the run left what it should (so there was something to search)
    names = {p.name for p in files}
    assert {"m.json", "out.ndjson.rejects.ndjson", "cache.sqlite3"} <= names, names
    if scenario not in ("login-refused", "token-echo-names") and code != 0:
        assert exceptions and names & {"out.ndjson.failed.ndjson", "out.ndjson.deferred.ndjson"}
    if scenario.endswith("faults"):  # the server did echo them: they were taken out
        assert b"***" in (tmp_path / "out.ndjson.failed.ndjson").read_bytes()
    if scenario.endswith("echo-answers"):  # in the records and the cache, and counted
        records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        assert len(records) == len(IOCS)
        echoed = [r for r in records if "***" in (r["link"] or "")]
        assert echoed and all(
            r["link"] == r["response"]["aggregatedResult"]["link"] for r in echoed
        )
        assert sum(b"***" in line for line in cached_lines(cache)) == len(echoed)
        replaced = orjson.loads((tmp_path / "m.json").read_bytes())["secrets_replaced"]
        assert replaced >= 2 * len(echoed)  # the link, the header list (and the password)
        if log_format == "text":
            assert f"secrets       {replaced:,} copies of a configured secret" in printed.err
    if scenario.endswith("echo-names"):
        failed = read_ndjson(tmp_path / "out.ndjson.failed.ndjson")
        assert [f["error"].split(":")[0] for f in failed] == ["secret_in_answer"]
        assert failed[0]["ioc"] in IOCS and len(read_ndjson(out)) == len(IOCS) - 1
    if log_format == "json":
        assert all(orjson.loads(line) for line in printed.err.splitlines())


async def test_the_command_as_a_process_says_no_secret(tmp_path: Path) -> None:
    """The same through a real process (its own stderr and stdout, records on stdout)."""
    src = tmp_path / "iocs.txt"
    src.write_text("\n".join(IOCS) + "\n")
    behaviour = {"domain_batch": "echo400", "ip_batch": "401"}
    async with serve(Gti(behaviour)) as gti:
        profile = config(tmp_path, gti, "session", False)
        argv = ["run", str(src), "-o", "-", "--config", str(profile), "--no-cache",
                "--deferred", str(tmp_path / "deferred.ndjson"),
                "--failed", str(tmp_path / "failed.ndjson")]  # fmt: skip
        proc = await asyncio.to_thread(enricher, *argv, env=environment(False), timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "refused our credentials" in proc.stderr and "Traceback" not in proc.stderr
    assert orjson.loads(proc.stdout.splitlines()[0])["ioc"] == IOCS[0]
    leaks = find_secrets("stdout", proc.stdout) + find_secrets("stderr", proc.stderr)
    written = [p for p in left_by_the_run(tmp_path) if p.suffix == ".ndjson"]
    assert written  # the refused and the deferred IOCs (which, depends on timing)
    for path in written:
        leaks += find_secrets(path.name, path.read_bytes())
    assert leaks == []


def test_the_settings_repr_holds_no_secret(tmp_path: Path) -> None:
    env = {
        "ENRICHER_PASSWORD": PASSWORD,
        "ENRICHER_AUTH_HEADER": f"Bearer {TOKEN}",
        "ENRICHER_USERNAME": USER,
        "ENRICHER_AUTH_MODE": "session",
        "ENRICHER_AUTH_LOGIN_URL": f"https://{USER}:{PASSWORD}@tenant.example/login.html",
        "ENRICHER_NETWORK_PROXY": f"http://proxy-user:{TOKEN}@proxy.example:3128",
        "ENRICHER_API_BASE_URL": f"https://{USER}:{COOKIE}@gti.example/rest/classification_v1",
    }
    settings = load_settings(environ=env)
    text = repr(settings) + str(settings) + repr(settings.auth) + repr(settings.network)
    assert find_secrets("repr", text) == []
    assert "proxy.example:3128" in text and "***@" in text  # what is not secret stays
    with pytest.raises(Exception) as info:
        load_settings(environ={**env, "ENRICHER_API_BASE_URL": f"ftp://u:{TOKEN}@gti.example"})
    assert find_secrets("error", str(info.value)) == []


@pytest.mark.parametrize("damaged", [False, True], ids=["new", "damaged"])
def test_the_cache_is_private(tmp_path: Path, damaged: bool) -> None:
    """The cache holds what the team asked about: its owner only, WAL files included, and
    so is the new one that replaces a damaged file."""
    cache = tmp_path / "c" / "cache.sqlite3"
    identity = ApiIdentity("http://t")
    if damaged:  # an enricher cache whose pages after the first are garbage
        Cache(cache, max_ttl=60, default_ttl=60, identity=identity).close()
        damage(cache)
    c = Cache(cache, max_ttl=60, default_ttl=60, fmt="f", identity=identity)
    try:
        c.store(Endpoint.DOMAIN, [("evil.example.com", "malicious", b"{}\n", 60)])
        c.flush()
        made = [p for p in cache.parent.iterdir() if p.name.startswith("cache.sqlite3")]
        assert cache in made and len(made) >= 2 + damaged  # the -wal file, the one aside
        for path in made:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    finally:
        c.close()


# -- secrets of every length, anywhere in what a server sends --------------------------------

LENGTHS = [8, 16, 31, 32, 33, 64, 150, 199, 200, 201, 300]
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_"


def secret_of(length: int) -> str:
    rng = random.Random(length)
    return "".join(rng.choice(ALPHABET) for _ in range(length))


def parts_of(secret: str) -> list[str]:
    """Every piece of `secret` long enough to give it away (the whole of a short one)."""
    k = min(len(secret), 4)
    return [secret[i : i + k] for i in range(len(secret) - k + 1)]


def text_with(secret: str, where: str) -> str:
    """Filler (no character a secret has) with `secret` at `where` relative to the cut."""
    cut = ERROR_TEXT_MAX
    at = {"start": 0, "before the cut": cut - len(secret) - 5, "across the cut": cut - 3,
          "after the cut": cut + 20, "far on": 5000}[where]  # fmt: skip
    at = max(at, 0)
    return "." * at + secret + "." * 300 + (secret if where == "start" else "")


WHERE = ["start", "before the cut", "across the cut", "after the cut", "far on"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("length", LENGTHS)
def test_an_error_text_holds_no_piece_of_a_secret(length: int, where: str) -> None:
    secret = secret_of(length)
    redactor = Redactor()
    redactor.add(secret)
    redactor.add("Bearer " + secret)
    out = redactor.text(text_with(secret, where))
    assert len(out) <= ERROR_TEXT_MAX
    assert not [p for p in parts_of(secret) if p in out], out
    if where in ("start", "before the cut"):
        assert "***" in out


@pytest.mark.parametrize("length", LENGTHS)
async def test_error_bodies_that_echo_a_token_leave_no_piece_of_it(
    length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: a 32-character token, echoed where the text was cut at 200, left
    26 of its characters in the failures file. Here every endpoint echoes it in another
    kind of error, at another place."""
    from test_hostile import enrich_all, serve, settings_for

    secret = secret_of(length)
    monkeypatch.setenv("ENRICHER_AUTH_HEADER", f"Bearer {secret}")
    texts = {ep: text_with(secret, where) for ep, where in
             zip(("file_batch", "domain_batch", "ip_batch"), WHERE[1:4], strict=True)}  # fmt: skip

    async def echo(server: Any, request: web.Request) -> web.StreamResponse:
        text = texts[request.path.rsplit("/", 1)[-1]]
        if request.path.endswith("file_batch"):
            return web.json_response({"error": text}, status=400)
        if request.path.endswith("domain_batch"):
            return web.json_response({"status": "ERROR", "message": text})  # 200
        return web.Response(text=text, status=400)

    async with serve(echo) as server:
        items, e = await enrich_all(settings_for(server.url).replace(auth={"mode": "header"}))
    errors = [i["error"] for i in items if "error" in i]
    assert len(errors) == len(items) == e.stats.unique
    for error in errors:
        assert len(error) <= ERROR_TEXT_MAX + 80
        assert not [p for p in parts_of(secret) if p in error], error


def body_of(*entries: Any) -> bytes:
    return orjson.dumps({"classificationResponses": list(entries)})


def scrubbed(redactor: Redactor, body: bytes) -> tuple[ParsedResponse, int]:
    """`body` parsed as the sender parses it, and our secrets taken out of its entries."""
    parsed = parse_response(Endpoint.DOMAIN, body, {"a.com"})
    return parsed, redactor.answers(parsed, body)


def entry_in(parsed: ParsedResponse, key: str = "a.com") -> Any:
    return orjson.loads(parsed.answers[key][1])


@pytest.mark.parametrize("length", LENGTHS)
def test_answers_that_echo_a_secret_in_their_values_are_scrubbed(length: int) -> None:
    secret = secret_of(length) + '/"'  # characters JSON escapes, or may
    redactor = Redactor()
    redactor.add(secret)
    redactor.add(f"Bearer {secret}")  # a header value and the token in it: one copy each time
    entry = {
        "requestKey": {"domain": "a.com"},
        "aggregatedResult": {
            "maliciousClassification": {"type": "malware", "source": f"seen by {secret}"},
            "link": f"https://x/?t={secret}&again={secret}",
            "firstSeen": 1481719121821,
            "debug": [secret, "x" + secret + "y", {"deep": [[secret]]}],
        },
        "plain": "nothing to see",
        "header": f"Bearer {secret}",
    }
    raw = body_of(entry)
    escaped_slash = raw.replace(b"/", b"\\/")  # as some servers write it
    unicode = raw.replace(secret[0].encode(), b"\\u%04x" % ord(secret[0]))  # and this
    for body in (raw, escaped_slash, unicode):
        parsed, n = scrubbed(redactor, body)
        assert n == 7 and not parsed.echoed
        got = entry_in(parsed)
        assert not [p for p in parts_of(secret) if p in orjson.dumps(got).decode()]
        agg = got["aggregatedResult"]
        assert agg["link"] == "https://x/?t=***&again=***"
        assert agg["debug"] == ["***", "x***y", {"deep": [["***"]]}]
        assert agg["maliciousClassification"] == {"type": "malware", "source": "seen by ***"}
        assert agg["firstSeen"] == 1481719121821
        assert got["header"] == "***" and got["plain"] == "nothing to see"
        fields = parsed.answers["a.com"][0]  # what the record is made of: read again
        assert fields.aggregatedResult.link == "https://x/?t=***&again=***"
    clean = body_of({"requestKey": {"domain": "a.com"}, "ttl": 5})
    parsed, n = scrubbed(redactor, clean)
    assert n == 0 and parsed.answers["a.com"][1] == clean[28:-2]  # byte for byte


@pytest.mark.parametrize(
    "where",
    ["the requestKey", "a field name", "the classification type", "a nested field name"],
)
def test_a_secret_where_the_key_or_verdict_comes_from_fails_that_entry(where: str) -> None:
    """Taking it out there would change the key (the entry would answer nothing, or another
    key) or the verdict: the entry is no answer, and says so; the other entries stand."""
    token = "malware-Tok3n"
    redactor = Redactor()
    redactor.add(token)
    entry: dict[str, Any] = {
        "requestKey": {"domain": "a.com"},
        "aggregatedResult": {"maliciousClassification": {"type": "whitelist"}},
    }
    if where == "the requestKey":
        entry["requestKey"]["note"] = token
    elif where == "a field name":
        entry[token] = 1
    elif where == "the classification type":
        entry["aggregatedResult"]["maliciousClassification"]["type"] = token
    else:
        entry["aggregatedResult"]["extra"] = {"list": [{token: "x"}]}
    other = {"requestKey": {"domain": "b.com"}, "link": f"x{token}"}
    parsed = parse_response(Endpoint.DOMAIN, body_of(entry, other), {"a.com", "b.com"})
    assert redactor.answers(parsed, body_of(entry, other)) == 1  # in b.com's link
    assert parsed.echoed == {"a.com"} and set(parsed.answers) == {"b.com"}
    assert orjson.loads(parsed.answers["b.com"][1])["link"] == "x***"


def test_a_secret_that_only_matches_a_number_is_left_alone() -> None:
    redactor = Redactor()
    redactor.add("14817191")  # a weak password, found inside a timestamp by chance
    body = body_of(
        {"requestKey": {"domain": "a.com"}, "aggregatedResult": {"firstSeen": 1481719121821}}
    )
    parsed, n = scrubbed(redactor, body)
    assert n == 0 and parsed.answers["a.com"][1] == body[28:-2] and not parsed.echoed


# -- every form a server may echo a secret in ---------------------------------------------

TOKEN_SPECIAL = 'abc/def+ghi==x"y\\z'  # characters JSON, URLs and base64 treat specially
USER, URL_PASSWORD = "bob", "p@ss/w0rd&more"


def forms_of(header: str) -> dict[str, str]:
    """The ways a server may write back the header it was sent."""
    token = header.partition(" ")[2]
    json_text = orjson.dumps(header).decode()[1:-1]
    basic = base64.b64encode(f"{USER}:{URL_PASSWORD}".encode()).decode()
    return {
        "raw": header,
        "JSON-escaped": json_text,
        "JSON-escaped, with \\/": json_text.replace("/", "\\/"),
        "JSON \\u escapes": "".join(f"\\u{ord(c):04x}" for c in header),
        "percent-encoded": urllib.parse.quote(header, safe=""),
        "percent-encoded, lower case": urllib.parse.quote(header, safe="").lower(),
        "form-encoded": urllib.parse.quote_plus(header, safe=""),
        "base64": base64.b64encode(header.encode()).decode(),
        "URL-safe base64, unpadded": base64.urlsafe_b64encode(header.encode()).decode().strip("="),
        "hex": header.encode().hex(),
        "token in hex, upper case": token.encode().hex().upper(),
        "Basic, percent-encoded": urllib.parse.quote(f"Basic {basic}", safe=""),
        "user:password in base64": basic,
    }


def sent_redactor(header: str, monkeypatch: pytest.MonkeyPatch) -> Redactor:
    """The redactor of a transport that sends `header` and a URL with user info."""
    monkeypatch.setenv("ENRICHER_AUTH_HEADER", header)
    quoted = urllib.parse.quote(URL_PASSWORD, safe="")
    settings = load_settings(
        environ={},
        overrides={
            "api": {"base_url": f"https://{USER}:{quoted}@gti.example/x"},
            "auth": {"mode": "header"},
        },
    )
    return AiohttpTransport.from_settings(settings).redactor


@pytest.mark.parametrize("form", list(forms_of("Bearer " + TOKEN_SPECIAL)))
def test_every_form_of_a_secret_is_taken_out_of_texts_and_answers(
    form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = "Bearer " + TOKEN_SPECIAL
    echo = forms_of(header)[form]
    redactor = sent_redactor(header, monkeypatch)
    # an error text (a 400's body, plain or JSON, cut after), the failures file's
    for text in (f"refused: {echo} (see docs)", f'{{"headers": {{"Authorization": "{echo}"}}}}'):
        out = redactor.text(text, 10_000)
        assert echo not in out and "***" in out, out
        assert not [p for p in parts_of(TOKEN_SPECIAL) if p in out], out
    # an answer that quotes it in a string
    body = (
        b'{"classificationResponses":[{"requestKey":{"domain":"a.com"},"link":"see '
        + orjson.dumps(echo)[1:-1].replace(b"\\\\u", b"\\u")
        + b' here"}]}'
    )
    parsed, n = scrubbed(redactor, body)
    assert n >= 1, form
    link = entry_in(parsed)["link"]
    assert link.startswith("see ") and link.endswith(" here") and "***" in link, link
    assert not [p for p in parts_of(TOKEN_SPECIAL) if p in link], link


def test_a_secret_that_is_not_sent_is_not_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable that is set but not in use (another mode's) is never sent, so a server
    cannot echo it; words of an answer that happen to be it stay as they are."""
    monkeypatch.setenv("ENRICHER_AUTH_HEADER", "malware")
    monkeypatch.setenv("ENRICHER_PASSWORD", "whitelist")
    settings = load_settings(environ={}, overrides={"api": {"base_url": "https://gti.example/x"}})
    assert not AiohttpTransport.from_settings(settings).redactor


SHORT_OR_COMMON = {
    "a header value of 7 characters": ("Zq9-tok", {"ENRICHER_AUTH_HEADER": "Zq9-tok"}, "header"),
    "a token of 3 after its scheme": ("Zq9", {"ENRICHER_AUTH_HEADER": "Bearer Zq9"}, "header"),
    "a token that is a classification": (
        "hacktool",
        {"ENRICHER_AUTH_HEADER": "hacktool"},
        "header",
    ),
    "a token in a field name": (
        "maliciousClass",
        {"ENRICHER_AUTH_HEADER": "maliciousClass"},
        "header",
    ),
    "a tenant password of 6": ("pw-123", {"ENRICHER_PASSWORD": "pw-123"}, "session"),
    "a URL password of 4": (
        "pw12",
        {"ENRICHER_API_BASE_URL": "https://u:pw12@gti.example/x"},
        "none",
    ),
}


@pytest.mark.parametrize("what", list(SHORT_OR_COMMON))
def test_a_secret_that_cannot_be_told_from_an_answer_is_refused(what: str, tmp_path: Path) -> None:
    """A short secret (or a word of every answer) would blank out, or be mistaken for,
    ordinary text of the answers: refused, exit 1, one line that does not show it."""
    secret, env, mode = SHORT_OR_COMMON[what]
    src = tmp_path / "in.txt"
    src.write_text("a.example.com\n")
    env = {"ENRICHER_AUTH_MODE": mode, "ENRICHER_USERNAME": USER, **env}
    if mode == "session":
        env["ENRICHER_AUTH_LOGIN_URL"] = "http://127.0.0.1:9/login.html"
    proc = enricher("run", str(src), "-o", str(tmp_path / "o"), "--no-cache", env=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "cannot be told apart" in proc.stderr and not (tmp_path / "o").exists()
    assert secret not in proc.stderr


def test_answers_are_left_alone_by_a_variable_not_in_use(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    """The attack's case: ENRICHER_AUTH_HEADER=tool set while no header is sent turned 14 of
    3,000 records' `hacktool`/`maltool` into `hack***`, their verdicts into unknown."""
    src = tmp_path / "in.txt"
    src.write_text("".join(f"{i:032x}\n" for i in range(400)))
    outputs = []
    with plain_emulator() as url:
        for n, env in enumerate(({}, {"ENRICHER_AUTH_HEADER": "tool", "ENRICHER_PASSWORD": "mal"})):
            out = tmp_path / f"{n}.ndjson"
            proc = enricher("run", str(src), "-o", str(out), "--base-url", url, "--rate", "0",
                            "--no-cache", env=env)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            outputs.append(sorted(out.read_bytes().splitlines()))
    assert outputs[0] == outputs[1]
    assert any(b'"classification":"hacktool"' in line for line in outputs[1])


def test_a_token_inside_an_ioc_fails_that_ioc_only(
    tmp_path: Path, plain_emulator: PlainEmulator
) -> None:
    """A token that happens to be part of an IOC comes back in its requestKey: that key fails
    (`secret_in_answer`), never answered with its echo changed; the others are answered."""
    src = tmp_path / "in.txt"
    src.write_text("examples-tok.com\nother.example.org\n1.2.3.4\n")
    out = tmp_path / "o.ndjson"
    with plain_emulator() as url:  # it takes any token
        proc = enricher("run", str(src), "-o", str(out), "--base-url", url, "--rate", "0",
                        "--cache", str(tmp_path / "c.sqlite3"),
                        env={"ENRICHER_AUTH_MODE": "header",
                             "ENRICHER_AUTH_HEADER": "Bearer examples-tok"})  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    failed = read_ndjson(tmp_path / "o.ndjson.failed.ndjson")
    assert [(f["ioc"], f["error"].split(":")[0]) for f in failed] == [
        ("examples-tok.com", "secret_in_answer")
    ]
    assert sorted(r["ioc"] for r in read_ndjson(out)) == ["1.2.3.4", "other.example.org"]
    assert not any(b"examples-tok" in line for line in cached_lines(tmp_path / "c.sqlite3"))


def pathological(n: int) -> bytes:
    """The attack's body: a string with a \\u escape, then a quote, then `\\"` n times and
    no closing quote (the old scan started again at each quote: quadratic)."""
    return b'{"classificationResponses":[{"a":"\\u0041"' + b'\\"' * n + b"}]}"


def test_the_scrub_is_linear_in_the_body() -> None:
    """16 KB took 1.9 s, 64 KB 30 s before. A body 8 times longer must cost about 8 times
    as much (a quadratic scan: 64 times), measured in CPU time, best of several."""
    import time

    redactor = Redactor()
    redactor.add("Bearer tok-5ecret-A9d8F7e6")
    redactor.add("tok-5ecret-A9d8F7e6")

    def cost(body: bytes) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for _ in range(20):
                redactor.text(body.decode(), 10**9)
                redactor._scrub(body)
                redactor._suspect(body)
            best = min(best, time.process_time() - start)
        return best

    small, large = cost(pathological(2_000)), cost(pathological(16_000))
    assert large < 24 * max(small, 1e-4), (small, large)
