"""aiohttp, imported without loading the system's CA certificates twice at import time.

aiohttp's connector builds two TLS contexts as it is imported (`_SSL_CONTEXT_VERIFIED` and
`_SSL_CONTEXT_UNVERIFIED`), and each reads and parses the system's CA bundle
(`set_default_verify_paths`): 250 M instructions apiece with OpenSSL 3, 500 M of the 1,100 M
that `import aiohttp` costs, paid by every `enricher run` and `lookup` even against an
`http://` API or with every answer in the cache (no handshake at all). Imported through
`import_aiohttp`, a context made while aiohttp is imported loads those certificates on its
first use instead (a handshake, `get_ca_certs`, `cert_store_stats`): the same certificates,
later. Contexts made at any other time, or by another thread meanwhile, are left alone, and
so is aiohttp's import when `ssl.SSLContext` is not the standard library's own (truststore's
`inject_into_ssl`, gevent): it is imported as it always was.

`quiet_abandoned_handshakes` is an event loop's exception handler for uvloop, whose
`create_connection` leaves its TLS handshake's future unretrieved when it is cancelled while
the handshake fails (MagicStack/uvloop#437).
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "DeferredCertificates",
    "import_aiohttp",
    "load_default_certificates",
    "quiet_abandoned_handshakes",
]

#: the standard library's class, as `ssl.SSLContext` may be replaced by another one later
#: (truststore's `inject_into_ssl`): a deferred context is one of these again once loaded
_SSLContext = ssl.SSLContext
_set_default_verify_paths = _SSLContext.set_default_verify_paths
_load_lock = threading.Lock()
#: the thread importing aiohttp under `import_aiohttp`: only its contexts are deferred, not
#: those other threads make meanwhile (the method is shadowed for the whole process)
_importing: int | None = None
_import_lock = threading.Lock()


class DeferredCertificates(_SSLContext):
    """A context whose `set_default_verify_paths` was put off until it is first used; then it
    loads them and becomes a plain `ssl.SSLContext` again."""

    def _load_default_paths(self) -> None:
        with _load_lock:
            if type(self) is DeferredCertificates:  # not loaded by another thread meanwhile
                _set_default_verify_paths(self)
                self.__class__ = _SSLContext  # type: ignore[assignment]

    # every way a context's trust store is read: asyncio's and uvloop's TLS (`wrap_bio`),
    # blocking sockets (`wrap_socket`), and the two that list it; the class's methods are
    # called by name, as `self` is a plain SSLContext once loaded (no `super()`)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load_default_paths()
        return _SSLContext.wrap_socket(self, *args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load_default_paths()
        return _SSLContext.wrap_bio(self, *args, **kwargs)

    def get_ca_certs(self, binary_form: bool = False) -> Any:
        self._load_default_paths()
        return _SSLContext.get_ca_certs(self, binary_form)

    def cert_store_stats(self) -> dict[str, int]:
        self._load_default_paths()
        return _SSLContext.cert_store_stats(self)


def _defer_default_paths(self: ssl.SSLContext) -> None:
    if type(self) is _SSLContext and threading.get_ident() == _importing:
        self.__class__ = DeferredCertificates
    else:  # a subclass of someone else's, or another thread's context: as it was
        _set_default_verify_paths(self)


def import_aiohttp() -> None:
    """Import aiohttp (its connector), its two default TLS contexts loading the system's CA
    certificates on first use. Once aiohttp is imported this does nothing."""
    global _importing
    with _import_lock:  # two threads at once: one shadows and restores the method
        if "aiohttp.connector" in sys.modules:
            return
        if not _standard_class():  # someone else's contexts: not ours to re-class
            import aiohttp.connector

            return
        # ssl.SSLContext is a Python class over the C one: the method is shadowed there for
        # the import only (create_default_context reaches it through load_default_certs)
        _SSLContext.set_default_verify_paths = _defer_default_paths  # type: ignore[method-assign]
        _importing = threading.get_ident()
        try:
            import aiohttp.connector  # noqa: F401
        finally:
            _importing = None
            del _SSLContext.set_default_verify_paths


def load_default_certificates(verified: bool) -> None:
    """Load the CA certificates of aiohttp's default context (`ssl=True`: verified, `False`:
    not) now if they were put off: called in a thread before the first connection, they are
    read neither on the event loop nor inside a connection's `sock_connect` timeout (a large
    bundle, a slow disk: every first connection timed out, then retried)."""
    import aiohttp.connector as connector

    ctx = connector._SSL_CONTEXT_VERIFIED if verified else connector._SSL_CONTEXT_UNVERIFIED
    if type(ctx) is DeferredCertificates:
        ctx._load_default_paths()


def _standard_class() -> bool:
    """`ssl.SSLContext` is the standard library's class, as this module found it, its
    `set_default_verify_paths` the one it inherits from `_ssl` (not an assert: `python -O`)."""
    return (
        ssl.SSLContext is _SSLContext
        and _SSLContext.__module__ == "ssl"
        and "set_default_verify_paths" not in vars(_SSLContext)
    )


def quiet_abandoned_handshakes(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An exception handler for a loop of uvloop's: what the default handler prints, but a
    TLS handshake's error left in a future nobody awaits (logged at debug level only).

    uvloop's `create_connection` awaits the TCP connection, then the handshake's future; a
    connection cancelled in between (the run stopping because another connection's
    certificate did not verify) leaves that future to fail unread, and its garbage collection
    printed "Future exception was never retrieved ... SSLCertVerificationError" with a
    traceback before the run's one-line error (1 run in 6-12). The connection was given up:
    the error it would have raised is one the run either reported already or has no more use
    for (a connection that is not given up raises it, mapped as ever)."""
    exc = context.get("exception")
    if context.get("message") == "Future exception was never retrieved" and isinstance(
        exc, ssl.SSLError
    ):
        logging.getLogger("enricher").debug("an abandoned TLS handshake failed: %s", exc)
        return
    loop.default_exception_handler(context)
