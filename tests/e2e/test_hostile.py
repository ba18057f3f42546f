"""A hostile or broken server: whatever it answers, every IOC is accounted for, with bounded
attempts, no traceback and no hang.

The server here is a few lines of aiohttp written for each misbehaviour, not the project's
emulator: it answers every batch endpoint the same wrong way and counts what it saw and sent.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import ssl
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from aiohttp import web
from helpers import cached_lines, enricher, read_ndjson

from enricher import Enricher
from enricher.app.job import EXIT_FAILURES, EXIT_FATAL, Job, run_job
from enricher.config.settings import Settings, load_settings
from enricher.errors import SettingsError, UntrustedCertificate
from enricher.ioc import Endpoint

ATTEMPTS = 3
CAP = 256 * 1024
READ_TIMEOUT = 0.4
TOTAL_TIMEOUT = 1.2
MD5 = "92f44e405db16ac55d97e3bfe3b132fa"
# one batch per endpoint, so each endpoint's request count is that batch's attempts
IOCS = [MD5, "a" * 40, "evil.example.com", "www.example.org", "1.2.3.4", "2a0b:4140::1"]
PREFIX = "/rest/classification_v1"

Handler = Callable[["Server", web.Request], Awaitable[web.StreamResponse]]


class Server:
    """One misbehaving server on a free loopback port; counts requests and body bytes sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: Counter[str] = Counter()
        self.seen: list[web.Request] = []
        self.bodies: list[bytes] = []
        self.sent = 0  # body bytes the handler managed to write
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests[request.path.rsplit("/", 1)[-1]] += 1
        self.seen.append(request)
        self.bodies.append(await request.read())
        return await self.handler(self, request)

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@asynccontextmanager
async def serve(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock, ssl_context=tls)
    await site.start()
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


def settings_for(base: str, **api: Any) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "api": {"base_url": base + PREFIX, "max_response_bytes": CAP, **api},
            "retry": {"attempts": ATTEMPTS, "backoff_base": 0.01, "backoff_max": 0.02},
            "limits": {"rate": 0, "concurrency": 4},
            "network": {
                "connect_timeout": 1.0,
                "read_timeout": READ_TIMEOUT,
                "total_timeout": TOTAL_TIMEOUT,
                "trust_env": False,
            },
            "cache": {"enabled": False},
        },
    )


async def enrich_all(settings: Settings) -> tuple[list[dict[str, Any]], Enricher]:
    async with Enricher(settings) as e:
        items = [dict(item) async for item in e.enrich(IOCS)]
    return items, e


def check_accounted(items: list[dict[str, Any]], e: Enricher, server: Server) -> list[str]:
    """Every IOC a failure with a reason after at most ATTEMPTS requests per batch; the
    reasons."""
    stats = e.stats
    assert stats.unique == len(IOCS)
    assert stats.invariant_holds
    assert stats.unique == stats.ok + stats.failed + stats.unsupported + stats.deferred
    failures = [i for i in items if "error" in i]
    assert sorted(f["ioc"] for f in failures) == sorted(IOCS)
    assert all(1 <= f["attempts"] <= ATTEMPTS for f in failures)
    assert set(server.requests) == {ep.value for ep in Endpoint}
    assert all(n <= ATTEMPTS for n in server.requests.values()), server.requests
    return [f["error"] for f in failures]


# -- the misbehaviours ---------------------------------------------------------------------

CHUNK = 64 * 1024
STREAM_MAX = 256 * 1024 * 1024  # what the server would send if nobody stopped it


async def _stream(server: Server, resp: web.StreamResponse, request: web.Request) -> None:
    await resp.prepare(request)
    chunk = b"[" + b" " * (CHUNK - 1)
    try:
        while server.sent < STREAM_MAX:
            await resp.write(chunk)
            server.sent += len(chunk)
    except ConnectionError:
        pass  # the client hung up: what we wanted


async def huge_content_length(server: Server, request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = 10 * 1024**3
    await _stream(server, resp, request)
    return resp


async def endless_stream(server: Server, request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})  # chunked
    await _stream(server, resp, request)
    return resp


async def endless_error(server: Server, request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=503, headers={"Content-Type": "text/html"})
    await _stream(server, resp, request)
    return resp


@pytest.mark.parametrize("handler", [huge_content_length, endless_stream, endless_error])
async def test_an_answer_over_the_cap_is_refused_without_reading_it(handler: Handler) -> None:
    async with serve(handler) as server:
        items, e = await enrich_all(settings_for(server.url))
    errors = check_accounted(items, e, server)
    if handler is endless_error:
        assert all(err.startswith("http_503") for err in errors)
    else:
        assert all(err.startswith("malformed_body") and "cap" in err for err in errors)
    # the client hung up long before the end: what the server got out is at most the cap
    # and what socket buffers on the way hold, per request
    if handler is huge_content_length:  # refused on its announced length, unread
        assert all("10737418240 bytes is over the 262144-byte cap" in err for err in errors)
    assert server.sent < server.total * 16 * 1024 * 1024, server.sent


def answer(request_body: bytes, *, extra: Any = None) -> bytes:
    """A well-formed answer to a batch request (everything unknown), with `extra` in each
    entry's aggregatedResult when given."""
    keys = [item["requestKey"] for item in orjson.loads(request_body)["requestData"]]
    entries = []
    for key in keys:
        agg: dict[str, Any] = {"maliciousClassification": {"type": "unknown"}}
        if extra is not None:
            agg["extra"] = extra
        entries.append({"requestKey": key, "ttl": 1000, "aggregatedResult": agg})
    return orjson.dumps({"classificationResponses": entries})


async def deep_json(server: Server, request: web.Request) -> web.StreamResponse:
    body = b"[" * 100_000 + b"]" * 100_000
    server.sent += len(body)
    return web.Response(body=body, content_type="application/json")


async def deep_entries(server: Server, request: web.Request) -> web.StreamResponse:
    # orjson reads it (up to 1024 levels), msgspec does not (its limit is lower), and orjson
    # would write at most 254: no record could be made of it
    body = answer(server.bodies[-1], extra="DEEP")
    body = body.replace(b'"DEEP"', b"[" * 1010 + b"]" * 1010)
    return web.Response(body=body, content_type="application/json")


async def deeper_than_allowed(server: Server, request: web.Request) -> web.StreamResponse:
    # msgspec and orjson both read 600 levels; an entry may nest 500 (protocol.MAX_DEPTH), so
    # that any JSON reader, from any depth of stack, reads the record back
    body = answer(server.bodies[-1], extra="DEEP")
    body = body.replace(b'"DEEP"', b"[" * 600 + b"]" * 600)
    return web.Response(body=body, content_type="application/json")


async def fairly_deep_entries(server: Server, request: web.Request) -> web.StreamResponse:
    body = answer(server.bodies[-1], extra="DEEP")
    body = body.replace(
        b'"DEEP"', b"[" * 450 + b'"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["' + b"]" * 450
    )
    return web.Response(body=body, content_type="application/json")


async def test_a_deep_answer_within_the_limit_is_written_as_it_came(tmp_path: Path) -> None:
    # 450 levels (and brackets inside a string, which do not nest): the entry is written
    # byte for byte as the record's response, and the record line reads back with orjson
    src = tmp_path / "iocs.txt"
    src.write_text("\n".join(IOCS) + "\n")
    out = tmp_path / "out.ndjson"
    async with serve(fairly_deep_entries) as server:
        job = Job(inputs=[str(src)], output=str(out), cache_path=str(tmp_path / "c.sqlite3"))
        code = await run_job(job, settings_for(server.url))
    assert code == 0
    lines = out.read_bytes().splitlines()
    assert all(b"[" * 450 + b'"[[[[' in line and b"]" * 450 in line for line in lines)
    records = [orjson.loads(line) for line in lines]
    assert sorted(r["ioc"] for r in records) == sorted(IOCS)


async def html_200(server: Server, request: web.Request) -> web.StreamResponse:
    page = "<html><head><title>Sign in</title></head><body>Proxy login</body></html>"
    return web.Response(text=page, content_type="text/html")


async def answer_as_text_plain(server: Server, request: web.Request) -> web.StreamResponse:
    return web.Response(body=answer(server.bodies[-1]), content_type="text/plain")


async def answer_as_html(server: Server, request: web.Request) -> web.StreamResponse:
    return web.Response(body=answer(server.bodies[-1]), content_type="text/html")


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (deep_json, "not JSON"),
        # msgspec reads the body, and the depth check then refuses the entry, only under a
        # higher recursion limit (hypothesis raises it, and may leave it raised): then the
        # reason is the check's; both are the same failure
        (deep_entries, "nested too deep|nested deeper than 500"),
        (deeper_than_allowed, "nested deeper than 500"),
        (html_200, "text/html"),
        (answer_as_text_plain, "text/plain"),
        (answer_as_html, "text/html"),
    ],
)
async def test_a_200_that_is_no_answer_becomes_failures(handler: Handler, reason: str) -> None:
    async with serve(handler) as server:
        items, e = await enrich_all(settings_for(server.url))
    errors = check_accounted(items, e, server)
    said = re.compile(reason)
    assert all(err.startswith("malformed_body") and said.search(err) for err in errors), errors
    assert all(n == ATTEMPTS for n in server.requests.values())  # retryable: may be a blip


async def test_the_right_content_types_are_answers() -> None:
    """The strictness above refuses nothing the API may send: JSON with parameters, or a
    +json type."""
    types = {"file_batch": "application/json; charset=UTF-8", "domain_batch": "application/json",
             "ip_batch": "application/vnd.gti+json"}  # fmt: skip

    async def handler(server: Server, request: web.Request) -> web.StreamResponse:
        body = answer(server.bodies[-1])
        ctype = types[request.path.rsplit("/", 1)[-1]]
        return web.Response(body=body, headers={"Content-Type": ctype})

    async with serve(handler) as server:
        items, e = await enrich_all(settings_for(server.url))
    assert e.stats.ok == len(IOCS) and not e.stats.failed, items
    assert server.total == 3


async def test_an_answer_without_a_content_type_is_read() -> None:
    """No Content-Type at all (aiohttp's server always sends one: a raw socket here)."""
    seen = 0

    async def raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
        body = answer(await reader.readexactly(length))
        seen += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(raw, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        items, e = await enrich_all(settings_for(f"http://127.0.0.1:{port}"))
    assert e.stats.ok == len(IOCS) and not e.stats.failed, items
    assert seen == 3


# -- slow servers ------------------------------------------------------------------------


async def trickle_below_read_timeout(server: Server, request: web.Request) -> web.StreamResponse:
    """Headers at once, then a byte every 2 read timeouts: each gap trips the read timeout."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    try:
        for byte in b'{"classificationResponses": []}':
            await resp.write(bytes([byte]))
            server.sent += 1
            await asyncio.sleep(2 * READ_TIMEOUT)
    except ConnectionError:
        pass
    return resp


async def trickle_forever(server: Server, request: web.Request) -> web.StreamResponse:
    """A byte every quarter of the read timeout, for ever: only the total timeout ends it."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    try:
        while True:
            await resp.write(b" ")
            server.sent += 1
            await asyncio.sleep(READ_TIMEOUT / 4)
    except ConnectionError:
        pass
    return resp


async def silent(server: Server, request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.mark.parametrize("handler", [trickle_below_read_timeout, trickle_forever, silent])
async def test_a_slow_server_times_out_each_attempt(handler: Handler) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with serve(handler) as server:
        items, e = await enrich_all(settings_for(server.url))
    errors = check_accounted(items, e, server)
    assert all(err.startswith("transport") and "timed out" in err for err in errors), errors
    assert all(n == ATTEMPTS for n in server.requests.values())
    # three batches at once, each ATTEMPTS attempts of at most the total timeout
    assert loop.time() - started < ATTEMPTS * TOTAL_TIMEOUT + 2


# -- redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_host_is_not_followed(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENRICHER_AUTH_HEADER", "Bearer redirect-secret-token")

    async def elsewhere(server: Server, request: web.Request) -> web.StreamResponse:
        return web.Response(body=answer(server.bodies[-1]), content_type="application/json")

    async with serve(elsewhere) as target:

        async def redirect(server: Server, request: web.Request) -> web.StreamResponse:
            location = target.url.replace("127.0.0.1", "localhost") + request.path
            return web.Response(status=status, headers={"Location": location})

        async with serve(redirect) as server:
            s = settings_for(server.url).replace(auth={"mode": "header"})
            items, e = await enrich_all(s)
    errors = check_accounted(items, e, server)
    assert all(err.startswith(f"http_{status}") and "redirect" in err for err in errors)
    assert all(n == 1 for n in server.requests.values())  # a redirect is not retried
    assert target.total == 0 and target.seen == []
    assert all(r.headers["Authorization"] == "Bearer redirect-secret-token" for r in server.seen)


# -- through the command line ------------------------------------------------------------


async def test_the_command_line_against_an_html_portal(tmp_path: Path) -> None:
    src = tmp_path / "iocs.txt"
    src.write_text("\n".join(IOCS) + "\nnot an ioc\n")
    out = tmp_path / "out.ndjson"
    async with serve(html_200) as server:
        args = [
            "run", str(src), "-o", str(out), "--base-url", server.url + PREFIX, "--rate", "0",
            "--no-cache", "--manifest", str(tmp_path / "run.json"),
        ]  # fmt: skip
        env = {
            "ENRICHER_RETRY_ATTEMPTS": str(ATTEMPTS),
            "ENRICHER_RETRY_BACKOFF_BASE": "0.01",
            "ENRICHER_RETRY_BACKOFF_MAX": "0.02",
        }
        proc = await asyncio.to_thread(enricher, *args, env=env, timeout=60)
    assert proc.returncode == EXIT_FAILURES, proc.stderr
    assert "Traceback" not in proc.stderr
    assert read_ndjson(out) == []
    failed = read_ndjson(tmp_path / "out.ndjson.failed.ndjson")
    assert sorted(f["ioc"] for f in failed) == sorted(IOCS)
    assert all("text/html" in f["error"] and f["attempts"] == ATTEMPTS for f in failed)
    assert len(read_ndjson(tmp_path / "out.ndjson.rejects.ndjson")) == 1
    assert "invariant     unique 6 = ok 0 + failed 6 + unsupported 0: holds" in proc.stderr
    assert all(n <= ATTEMPTS for n in server.requests.values())
    manifest = orjson.loads((tmp_path / "run.json").read_bytes())
    assert manifest["counts"]["failed"] == 6 and manifest["invariant_holds"]


async def test_a_record_too_deep_to_write_fails_in_a_job_too(tmp_path: Path) -> None:
    """The job writes records from a thread and fills the cache: an answer too deeply nested
    to be written must already have been refused, not break the writer."""
    out = tmp_path / "out.ndjson"
    src = tmp_path / "iocs.txt"
    src.write_text("\n".join(IOCS) + "\n")
    async with serve(deep_entries) as server:
        s = settings_for(server.url)
        job = Job(inputs=[str(src)], output=str(out), cache_path=str(tmp_path / "c.sqlite3"))
        code = await run_job(job, s)
    assert code == EXIT_FAILURES
    assert read_ndjson(out) == []
    failed = read_ndjson(tmp_path / "out.ndjson.failed.ndjson")
    assert sorted(f["ioc"] for f in failed) == sorted(IOCS)


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


async def good(server: Server, request: web.Request) -> web.StreamResponse:
    return web.Response(body=answer(server.bodies[-1]), content_type="application/json")


async def run_cli(
    server: Server, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    src = tmp_path / "iocs.txt"
    src.write_text("\n".join(IOCS) + "\n")
    out = tmp_path / "out.ndjson"
    argv = ["run", str(src), "-o", str(out), "--base-url", server.url + PREFIX, "--rate", "0",
            "--no-cache", "--force", *args]  # fmt: skip
    proc = await asyncio.to_thread(enricher, *argv, env=env, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, out


async def test_an_untrusted_certificate_stops_the_run(ca: trustme.CA, tmp_path: Path) -> None:
    """Verification is on by default; a certificate that does not verify will not on a retry
    either: the run stops at once, says why, and defers every IOC, as a 401 does."""
    async with serve(good, tls=tls_context(ca)) as server:
        proc, out = await run_cli(server, tmp_path)
    assert proc.returncode == EXIT_FATAL, proc.stderr
    assert "TLS certificate of 127.0.0.1" in proc.stderr and "did not verify" in proc.stderr
    assert "network.ca_bundle" in proc.stderr
    assert server.total == 0  # no request got through the handshake
    assert read_ndjson(out) == [] and read_ndjson(tmp_path / "out.ndjson.failed.ndjson") == []
    deferred = read_ndjson(tmp_path / "out.ndjson.deferred.ndjson")
    assert sorted(d["ioc"] for d in deferred) == sorted(IOCS)
    assert all("TLS certificate" in d["reason"] for d in deferred)
    assert "unique 6 = ok 0 + failed 0 + unsupported 0 + deferred 6: holds" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "env"),
    [(["--insecure"], None), ([], {"ENRICHER_NETWORK_VERIFY_TLS": "false"})],
    ids=["flag", "setting"],
)
async def test_insecure_trusts_the_certificate_and_warns(
    ca: trustme.CA, tmp_path: Path, flags: list[str], env: dict[str, str] | None
) -> None:
    async with serve(good, tls=tls_context(ca)) as server:
        proc, out = await run_cli(server, tmp_path, *flags, env=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["ioc"] for r in read_ndjson(out)) == sorted(IOCS)
    warnings = [line for line in proc.stderr.splitlines() if "verification is off" in line]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith("enricher: warning: TLS certificate verification is off")


async def test_a_ca_bundle_makes_the_certificate_verify(ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    async with serve(good, tls=tls_context(ca)) as server:
        proc, out = await run_cli(server, tmp_path, env={"ENRICHER_NETWORK_CA_BUNDLE": str(bundle)})
    assert proc.returncode == 0, proc.stderr
    assert "verification is off" not in proc.stderr
    assert sorted(r["ioc"] for r in read_ndjson(out)) == sorted(IOCS)


async def test_the_system_trust_store_verifies_the_certificate(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """The system's CA certificates (OpenSSL's default file, here SSL_CERT_FILE) are read at
    the first handshake (enricher.api.tls), not at import: they still make it verify."""
    bundle = tmp_path / "system-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    async with serve(good, tls=tls_context(ca)) as server:
        proc, out = await run_cli(server, tmp_path, env={"SSL_CERT_FILE": str(bundle)})
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["ioc"] for r in read_ndjson(out)) == sorted(IOCS)


#: a library user's program: enricher imported, then SSL_CERT_FILE set (argv[3]: "" leaves it)
SET_AFTER_IMPORT = """
import asyncio, os, sys
from enricher import Enricher, load_settings
from enricher.errors import UntrustedCertificate

if sys.argv[3]:
    os.environ["SSL_CERT_FILE"] = sys.argv[3]
settings = load_settings(environ={}, overrides={
    "api": {"base_url": sys.argv[1] + sys.argv[2]}, "limits": {"rate": 0},
    "network": {"trust_env": False}, "cache": {"enabled": False}})

async def main():
    async with Enricher(settings) as e:
        return [item async for item in e.enrich(["evil.example.com"])]

try:
    print(sum("error" not in i and "reason" not in i for i in asyncio.run(main())))
except UntrustedCertificate:
    print("untrusted")
"""


@pytest.mark.parametrize("set_it", [True, False], ids=["set", "not-set"])
async def test_ssl_cert_file_set_after_importing_enricher_is_read_at_the_first_connection(
    ca: trustme.CA, tmp_path: Path, set_it: bool
) -> None:
    """What the README's library section says: aiohttp's default TLS context loads the
    system's CA certificates at the first connection (enricher.api.tls), so SSL_CERT_FILE
    set after `import enricher` is the one used."""
    bundle = tmp_path / "system-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    async with serve(good, tls=tls_context(ca)) as server:
        argv = [server.url, PREFIX, str(bundle) if set_it else ""]
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", SET_AFTER_IMPORT, *argv],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("1" if set_it else "untrusted"), proc.stderr


async def test_a_ca_bundle_that_is_no_pem_is_a_settings_error(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    s = settings_for("https://127.0.0.1:9").replace(network={"ca_bundle": str(bundle)})
    with pytest.raises(SettingsError, match=r"network\.ca_bundle: .* is not a PEM file"):
        async with Enricher(s):
            pass


async def test_answers_fetched_without_verifying_are_not_served_to_a_run_that_verifies(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """The attack: a run with --insecure filled the cache, and a run that verifies TLS was
    served its answers (0 requests). Unverified answers could come from anyone on the path:
    they are never stored; verified ones are still served to any run."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    src, cache = tmp_path / "iocs.txt", tmp_path / "c.sqlite3"
    src.write_text("\n".join(IOCS) + "\n")

    def run(n: int, *flags: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        out = tmp_path / f"{n}.ndjson"
        argv = ["run", str(src), "-o", str(out), "--base-url", server.url + PREFIX,
                "--rate", "0", "--cache", str(cache), *flags]  # fmt: skip
        proc = enricher(*argv, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        if "--insecure" in flags:
            assert "answers not stored: TLS verification is off" in proc.stderr
        return read_ndjson(out)

    async def lasting(server: Server, request: web.Request) -> web.StreamResponse:
        body = answer(server.bodies[-1]).replace(b'"ttl":1000', b'"ttl":600000')
        return web.Response(body=body, content_type="application/json")

    async with serve(lasting, tls=tls_context(ca)) as server:
        insecure = await asyncio.to_thread(run, 1, "--insecure")
        asked = server.total
        assert len(insecure) == len(IOCS) and asked > 0
        verified = await asyncio.to_thread(run, 2, env={"ENRICHER_NETWORK_CA_BUNDLE": str(bundle)})
        assert not any(r["cached"] for r in verified) and server.total == 2 * asked
        again = await asyncio.to_thread(run, 3, "--insecure")  # verified answers: served
        assert [r["cached"] for r in again] == [True] * len(IOCS), again
        assert server.total == 2 * asked


async def test_the_tenant_login_checks_the_certificate_too(
    ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENRICHER_USERNAME", "analyst")
    monkeypatch.setenv("ENRICHER_PASSWORD", "tls-login-password")
    async with serve(good, tls=tls_context(ca)) as server:
        s = settings_for(server.url).replace(
            auth={"mode": "session", "login_url": server.url + "/login.html"}
        )
        with pytest.raises(UntrustedCertificate, match="did not verify") as info:
            async with Enricher(s):
                pass
    assert server.total == 0 and "tls-login-password" not in str(info.value)


# -- a spent quota -----------------------------------------------------------------------


async def quota_spent(server: Server, request: web.Request) -> web.StreamResponse:
    """A daily quota: 429, come back tomorrow."""
    return web.json_response(
        {"error": "quota exceeded"}, status=429, headers={"Retry-After": "86400"}
    )


async def test_a_spent_quota_stops_sending_and_the_next_run_takes_them_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 429 whose Retry-After is past retry.max_wait is not waited for (5 x 120 s a batch,
    then failures that --resume skips, as it was): the run stops sending, defers every IOC it
    did not ask, saying until when, and exits 2; a run before that time sends nothing; the
    first run after it asks them first."""
    src, out, cache = tmp_path / "iocs.txt", tmp_path / "out.ndjson", tmp_path / "c.sqlite3"
    iocs = [f"q{i}.example.com" for i in range(120)] + [f"{i:032x}" for i in range(80)]
    src.write_text("\n".join(iocs) + "\n")
    async with serve(quota_spent) as server:
        s = settings_for(server.url, domain_batch_size=10, file_batch_size=10)
        # one job (its outputs dated, say): its next runs take up what it deferred
        job = Job(inputs=[str(src)], output=str(out), cache_path=str(cache), job="q",
                  manifest=str(tmp_path / "m.json"))  # fmt: skip
        code = await run_job(job, s)
        sent = server.total
        assert code == EXIT_FAILURES
        assert 1 <= sent <= s.limits.concurrency  # those in flight when the first 429 came
        deferred = read_ndjson(Path(f"{out}.deferred.ndjson"))
        assert sorted(d["ioc"] for d in deferred) == sorted(iocs)
        reasons = {d["reason"] for d in deferred}
        assert len(reasons) == 1
        (reason,) = reasons
        until = datetime.strptime(reason, "quota exhausted until %Y-%m-%dT%H:%M:%SZ")
        ahead = until.replace(tzinfo=UTC) - datetime.now(UTC)
        assert timedelta(hours=23) < ahead <= timedelta(days=1)
        err = capsys.readouterr().err
        assert f"enricher: stopped: {reason}" in err and "deferred 200" in err
        manifest = orjson.loads((tmp_path / "m.json").read_bytes())
        assert manifest["stopped"] == reason and manifest["exit_code"] == EXIT_FAILURES
        assert read_ndjson(out) == [] and read_ndjson(Path(f"{out}.failed.ndjson")) == []

        # the same API before that time: nothing is sent, even if it would answer now
        server.handler = good
        other = tmp_path / "other.txt"
        other.write_text("other.example.org\n")
        again = Job(
            inputs=[str(other)], output=str(tmp_path / "2.ndjson"), cache_path=str(cache), job="q"
        )
        assert await run_job(again, s) == EXIT_FAILURES
        assert server.total == sent
        assert len(read_ndjson(tmp_path / "2.ndjson.deferred.ndjson")) == 201

        # once it is open again (moved back here), the next run asks what was deferred first
        with sqlite3.connect(cache) as db:
            db.execute("UPDATE quota SET until = 0")
        db.close()
        third = Job(
            inputs=[str(other)], output=str(tmp_path / "3.ndjson"), cache_path=str(cache), job="q"
        )
        assert await run_job(third, s) == 0
    written = sorted(r["ioc"] for r in read_ndjson(tmp_path / "3.ndjson"))
    assert written == sorted([*iocs, "other.example.org"])


async def test_requests_waiting_for_their_turn_are_not_sent_once_the_quota_is_spent() -> None:
    """Paced at 5/s, the three batches wait for the limiter one after another: the 429 of
    the first comes back before the second's turn, which then is not sent."""
    async with serve(quota_spent) as server:
        s = settings_for(server.url).replace(limits={"rate": 5, "concurrency": 4})
        items, e = await enrich_all(s)
    assert server.total == 1
    assert e.stats.deferred == len(IOCS) and e.stats.invariant_holds
    assert all(i["reason"].startswith("quota exhausted until ") for i in items)


@pytest.mark.parametrize(("retry_after", "quota"), [("0.2", False), ("2", True)])
async def test_retry_after_up_to_max_wait_is_waited_for(retry_after: str, quota: bool) -> None:
    async def once_then_good(server: Server, request: web.Request) -> web.StreamResponse:
        if server.total == 1:
            return web.Response(status=429, headers={"Retry-After": retry_after})
        return await good(server, request)

    async with serve(once_then_good) as server:
        s = settings_for(server.url).replace(retry={"max_wait": 1.0}, limits={"concurrency": 1})
        items, e = await enrich_all(s)
    if quota:
        assert e.stats.deferred == len(IOCS) and server.total == 1
        assert all(i["reason"].startswith("quota exhausted until") for i in items)
    else:
        assert e.stats.ok == len(IOCS) and e.stats.retries == 1


def always_429(retry_after: str) -> Handler:
    async def handler(server: Server, request: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": retry_after})

    return handler


@pytest.mark.parametrize(
    "retry_after",
    ["inf", "Infinity", "1e309", "1e20", "nan", "-5", "99999999999999",
     "Fri, 31 Dec 9999 23:59:59 GMT"],
)  # fmt: skip
async def test_a_retry_after_of_any_size_is_no_traceback_and_no_endless_quota(
    tmp_path: Path, retry_after: str
) -> None:
    """Huge values crashed the run (OverflowError) after storing a time that crashed every
    later run; a date in 9999 deferred every run until then. Nonsense is no wait (a plain
    429, retried); a real wait past retry.max_wait is a spent quota of at most
    retry.max_quota_wait (2 days), which `enricher deferred --clear-quota` forgets."""
    src, cache = tmp_path / "iocs.txt", tmp_path / "c.sqlite3"
    src.write_text("\n".join(IOCS) + "\n")
    async with serve(always_429(retry_after)) as server:

        def run(n: int) -> subprocess.CompletedProcess[str]:
            proc = enricher("run", str(src), "-o", str(tmp_path / f"{n}.ndjson"), "--base-url",
                            server.url + PREFIX, "--rate", "0", "--cache", str(cache),
                            env={"ENRICHER_RETRY_ATTEMPTS": "2",
                                 "ENRICHER_RETRY_BACKOFF_BASE": "0.01",
                                 "ENRICHER_RETRY_BACKOFF_MAX": "0.02"}, timeout=60)  # fmt: skip
            assert proc.returncode == EXIT_FAILURES, proc.stderr
            assert "Traceback" not in proc.stderr
            return proc

        first = await asyncio.to_thread(run, 1)
        if not retry_after.isdigit() and "," not in retry_after:
            failed = read_ndjson(tmp_path / "1.ndjson.failed.ndjson")
            assert {f["error"].split(":")[0] for f in failed} == {"http_429"}  # retried, then
            return
        stopped = re.search(r"quota exhausted until (\S+)", first.stderr)
        assert stopped is not None, first.stderr
        until = datetime.strptime(stopped[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert until - datetime.now(UTC) <= timedelta(days=2)
        sent = server.total
        second = await asyncio.to_thread(run, 2)  # before that time: nothing sent
        assert server.total == sent and "quota exhausted until" in second.stderr
        listed = enricher("deferred", "--cache", str(cache), "--clear-quota")
        assert listed.returncode == 0 and "forgotten: was spent until" in listed.stderr
        server.handler = good
        third = await asyncio.to_thread(
            enricher, "run", str(src), "-o", str(tmp_path / "3.ndjson"), "--base-url",
            server.url + PREFIX, "--rate", "0", "--cache", str(cache), timeout=60,
        )  # fmt: skip
        assert third.returncode == 0, third.stderr
        assert server.total > sent


async def test_a_quota_stored_by_an_earlier_release_is_capped(tmp_path: Path) -> None:
    """A cache poisoned with `until = inf` (as the attack left it) crashed every run."""
    from enricher.api.identity import identity_of
    from enricher.state.answers import Cache

    cache_path, src = tmp_path / "c.sqlite3", tmp_path / "iocs.txt"
    src.write_text("\n".join(IOCS) + "\n")
    async with serve(good) as server:
        s = settings_for(server.url)
        state = Cache(cache_path, max_ttl=60, default_ttl=60, identity=identity_of(s))
        state.set_quota_until(float("inf"))
        state.close()
        proc = await asyncio.to_thread(
            enricher, "run", str(src), "-o", str(tmp_path / "o"), "--base-url",
            server.url + PREFIX, "--cache", str(cache_path), timeout=60,
        )  # fmt: skip
    assert proc.returncode == EXIT_FAILURES and "Traceback" not in proc.stderr, proc.stderr
    assert server.total == 0 and "quota exhausted until 20" in proc.stderr


# -- answers that contradict themselves --------------------------------------------------


def disagreeing(times: int) -> Handler:
    """Answers in which MD5 has two entries, whitelist then malware, the first `times` times
    it is asked; then one."""
    asked = 0

    async def handler(server: Server, request: web.Request) -> web.StreamResponse:
        nonlocal asked
        doc = orjson.loads(answer(server.bodies[-1]))
        for entry in list(doc["classificationResponses"]):
            if entry["requestKey"].get("md5") == MD5:
                asked += 1
                if asked <= times:
                    entry["aggregatedResult"]["maliciousClassification"]["type"] = "whitelist"
                    other = orjson.loads(orjson.dumps(entry))
                    other["aggregatedResult"]["maliciousClassification"]["type"] = "malware"
                    doc["classificationResponses"].append(other)
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    return handler


@pytest.mark.parametrize("times", [1, 100], ids=["once", "always"])
async def test_a_key_answered_two_ways_is_asked_again_then_fails(
    tmp_path: Path, times: int
) -> None:
    out, cache = tmp_path / "out.ndjson", tmp_path / "c.sqlite3"
    src = tmp_path / "iocs.txt"
    src.write_text("\n".join(IOCS) + "\n")
    async with serve(disagreeing(times)) as server:
        job = Job(inputs=[str(src)], output=str(out), cache_path=str(cache))
        code = await run_job(job, settings_for(server.url))
    records = {r["ioc"]: r for r in read_ndjson(out)}
    failed = read_ndjson(Path(f"{out}.failed.ndjson"))
    cached = b"".join(cached_lines(cache))
    if times == 1:  # asked again in a later batch, answered one way: that answer is written
        assert code == 0 and records[MD5]["classification"] == "unknown"
        assert server.requests["file_batch"] == 2
        return
    assert code == EXIT_FAILURES and set(records) == set(IOCS) - {MD5}
    assert [f["ioc"] for f in failed] == [MD5]
    assert failed[0]["error"].startswith("conflicting_answers:")
    assert failed[0]["attempts"] == ATTEMPTS == server.requests["file_batch"]
    assert MD5.encode() not in cached and b"a" * 40 in cached  # never cached
