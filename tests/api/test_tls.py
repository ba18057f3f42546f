"""aiohttp imported with its default TLS contexts' CA certificates loaded on first use
(`enricher.api.tls`): the same trust store, read at the first handshake, not at import."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import trustme

from enricher.api import tls
from enricher.api.tls import DeferredCertificates, _defer_default_paths

# in a fresh interpreter: the test process may have imported aiohttp already
FRESH = """
import ssl, sys
import enricher.api.transport
import aiohttp.connector as c
from enricher.api.tls import DeferredCertificates
assert "set_default_verify_paths" not in vars(ssl.SSLContext), "the method was not restored"
assert type(ssl.create_default_context()) is ssl.SSLContext  # made after: as ever
verified, unverified = c._SSL_CONTEXT_VERIFIED, c._SSL_CONTEXT_UNVERIFIED
assert type(verified) is DeferredCertificates and type(unverified) is DeferredCertificates
assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
assert unverified.verify_mode == ssl.CERT_NONE and not unverified.check_hostname
assert verified.cert_store_stats() == ssl.create_default_context().cert_store_stats()
assert type(verified) is ssl.SSLContext  # loaded once, a plain context again
assert unverified.get_ca_certs() == ssl.create_default_context().get_ca_certs()
print("ok")
"""


def test_aiohttp_defaults_load_the_same_certificates_on_first_use() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _deferred_client(monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A client context as aiohttp's default one is made under `import_aiohttp`."""
    monkeypatch.setattr(tls, "_importing", threading.get_ident())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _defer_default_paths(ctx)
    assert type(ctx) is DeferredCertificates
    return ctx


async def _handshake(server_ctx: ssl.SSLContext, client: ssl.SSLContext) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="localhost"
        )
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
async def test_a_deferred_context_verifies_against_the_default_paths_at_its_handshake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted: bool
) -> None:
    """The default paths are read at the handshake (SSL_CERT_FILE is OpenSSL's default CA
    file, read then): the server's CA is trusted when that file holds it, not otherwise."""
    server_ca, other_ca = trustme.CA(), trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("localhost").configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    (server_ca if trusted else other_ca).cert_pem.write_to_path(str(bundle))
    client = _deferred_client(monkeypatch)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    if trusted:
        await _handshake(server_ctx, client)
    else:
        with pytest.raises(ssl.SSLCertVerificationError):
            await _handshake(server_ctx, client)
    assert type(client) is ssl.SSLContext
    assert client.cert_store_stats()["x509_ca"] == 1


def test_another_threads_context_loads_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The method is shadowed for the whole process while aiohttp is imported: a context
    another thread makes meanwhile (`ssl.create_default_context()`) is left as it was."""
    monkeypatch.setattr(tls, "_importing", threading.get_ident())  # this thread imports
    made: list[ssl.SSLContext] = []

    def other() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _defer_default_paths(ctx)
        made.append(ctx)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert type(made[0]) is ssl.SSLContext
    assert made[0].cert_store_stats() == ssl.create_default_context().cert_store_stats()


FRESH_THREADS = """
import ssl, sys, threading
from enricher.api import tls
barrier = threading.Barrier(8)
failed = []
def importer():
    barrier.wait()
    try:
        tls.import_aiohttp()  # public: several threads may call it at once
    except BaseException as exc:
        failed.append(repr(exc))
threads = [threading.Thread(target=importer) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(failed, "set_default_verify_paths" in vars(ssl.SSLContext))
"""


def test_threads_importing_aiohttp_at_once() -> None:
    for _ in range(3):  # a race: a few fresh interpreters
        done = subprocess.run(
            [sys.executable, "-c", FRESH_THREADS], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[] False"


def test_a_subclass_of_someone_elses_loads_at_once() -> None:
    class Theirs(ssl.SSLContext):
        pass

    ctx = Theirs(ssl.PROTOCOL_TLS_CLIENT)
    _defer_default_paths(ctx)
    assert type(ctx) is Theirs
    assert ctx.cert_store_stats() == ssl.create_default_context().cert_store_stats()


# another library's SSLContext in the ssl module (truststore's `inject_into_ssl`, at start-up
# or after enricher imported aiohttp): a subclass with its own state and set_default_verify_paths
THEIRS = """
import ssl
_Original = ssl.SSLContext
def check(ok, why=""):  # not assert: also under python -O
    if not ok:
        raise SystemExit(f"failed: {why}")
class Theirs(_Original):
    def __init__(self, *args, **kwargs):
        self._inner = _Original(ssl.PROTOCOL_TLS_CLIENT)
    def set_default_verify_paths(self):
        self._inner.set_default_verify_paths()
    def wrap_bio(self, *args, **kwargs):
        self._inner  # AttributeError on a context this class did not make
        return _Original.wrap_bio(self, *args, **kwargs)
import _ssl  # ssl.py's properties reach their C ones through the name ssl.SSLContext
for name in ("options", "verify_flags", "verify_mode", "minimum_version", "maximum_version"):
    setattr(Theirs, name, getattr(_ssl._SSLContext, name))
"""

BEFORE = f"""{THEIRS}
ssl.SSLContext = Theirs
import enricher.api.transport
import aiohttp.connector as c
check("set_default_verify_paths" in vars(Theirs), "their method was taken away")
check(type(c._SSL_CONTEXT_VERIFIED) is Theirs)  # aiohttp imported as it always was
check(type(c._SSL_CONTEXT_UNVERIFIED) is Theirs)
print("ok")
"""

AFTER = f"""{THEIRS}
import enricher.api.transport
import aiohttp.connector as c
ssl.SSLContext = Theirs
for ctx in (c._SSL_CONTEXT_VERIFIED, c._SSL_CONTEXT_UNVERIFIED):
    ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    check(type(ctx) is _Original, type(ctx))
print("ok")
"""


@pytest.mark.parametrize(
    "script", [BEFORE, AFTER], ids=["replaced-before-import", "replaced-after-import"]
)
@pytest.mark.parametrize("optimize", [False, True], ids=["", "-O"])
def test_another_ssl_context_class_is_left_alone(script: str, optimize: bool) -> None:
    """`ssl.SSLContext` replaced by another library's class: before aiohttp's import, that
    import is as it always was (no AssertionError, their method kept, not re-classed); after,
    aiohttp's deferred contexts become the standard library's class again, not theirs."""
    argv = [sys.executable, *(["-O"] if optimize else []), "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


OPENED = """
import asyncio, ssl, sys
from enricher.api.transport import AiohttpTransport
from enricher.api.tls import DeferredCertificates
from enricher.config.settings import load_settings
import aiohttp.connector as c
url, verify = sys.argv[1], sys.argv[2] == "verify"
overrides = {"api": {"base_url": url}, "network": {"verify_tls": verify}}
settings = load_settings(None, overrides=overrides, environ={})
async def main():
    async with AiohttpTransport.from_settings(settings):  # no connection made: auth none
        pass
asyncio.run(main())
print(type(c._SSL_CONTEXT_VERIFIED).__name__, type(c._SSL_CONTEXT_UNVERIFIED).__name__)
"""


@pytest.mark.parametrize(
    ("url", "verify", "types"),
    [
        ("https://127.0.0.1:9/rest", "verify", "SSLContext DeferredCertificates"),
        ("https://127.0.0.1:9/rest", "insecure", "DeferredCertificates SSLContext"),
        ("http://127.0.0.1:9/rest", "verify", "DeferredCertificates DeferredCertificates"),
    ],
)
def test_a_transport_to_tls_loads_the_default_context_before_its_first_connection(
    url: str, verify: str, types: str
) -> None:
    """Opened for an https API, the transport loads its default context's certificates in a
    thread first: not on the loop, nor inside the first connections' sock_connect timeout
    (a bundle whose load took longer: every first connection timed out and was retried)."""
    done = subprocess.run(
        [sys.executable, "-c", OPENED, url, verify], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == types


LEAKED = """
import asyncio, gc, ssl
from enricher.app.cli import loop_factory

async def leak():
    loop = asyncio.get_running_loop()
    # as uvloop's create_connection leaves its handshake's future when it is cancelled
    shaken = loop.create_future()
    shaken.set_exception(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    other = loop.create_future()
    other.set_exception(OSError("something else"))
    del shaken, other
    gc.collect()

with asyncio.Runner(loop_factory=loop_factory("uvloop")) as runner:
    runner.run(leak())
"""


def test_an_abandoned_handshake_s_error_is_not_printed_under_uvloop() -> None:
    """A TLS handshake's error that uvloop left in a future nobody awaits printed "Future
    exception was never retrieved ... SSLCertVerificationError" before the run's one-line
    error; any other unretrieved error is still printed."""
    pytest.importorskip("uvloop")
    done = subprocess.run(
        [sys.executable, "-c", LEAKED], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "SSLCertVerificationError" not in done.stderr
    assert "never retrieved" in done.stderr and "something else" in done.stderr
