"""HTTP to the GTI API: one aiohttp session, and the one place aiohttp errors are mapped.

`Transport` is what the sender and the run ask of the HTTP edge; `AiohttpTransport` is the
one a run uses unless it is given another. `post()` either returns the bytes of an HTTP-200
body or raises an error from `enricher.errors` that says whether a retry may help. It does
not retry by itself: retries, pacing and splitting belong to `enricher.api.sender`.

What it takes from a server it does not trust: redirects are never followed (the credentials
would go with them), a 200 is an answer only when it says it is JSON (or says nothing), a body
over `api.max_response_bytes` is refused without being read to its end, and a server that
stalls or trickles is cut off by the read and total timeouts. A certificate that does not
verify stops the run (`UntrustedCertificate`): it will not fix itself on a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Protocol, Self, TypeVar

import orjson

from ..config.settings import (
    PROXY_SCHEMES,
    ApiSettings,
    AuthSettings,
    NetworkSettings,
    Settings,
    check_url,
)
from ..errors import (
    AuthRefused,
    BadRequest,
    BatchTooLarge,
    HTTPStatusError,
    MalformedBody,
    RateLimited,
    RequestError,
    SessionRenewed,
    SettingsError,
    TransportError,
    UntrustedCertificate,
)
from ..ioc import Endpoint
from .protocol import ParsedResponse
from .redaction import MIN_SECRET, Redactor
from .tls import import_aiohttp, load_default_certificates

import_aiohttp()  # before aiohttp is imported anywhere else in the process: see tls.py
import aiohttp  # noqa: E402

__all__ = ["AiohttpTransport", "Transport", "parse_retry_after"]

log = logging.getLogger("enricher")

_E = TypeVar("_E", bound=Exception)

_JSON = {"Content-Type": "application/json", "Accept": "application/json"}


#: delta-seconds as RFC 9110 writes them (digits; a fraction is taken too)
_SECONDS = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None for
    anything else (`inf`, `1e309`, `-5`: a server's nonsense is no wait). A wait longer than
    anything a run keeps (`retry.max_quota_wait`) is capped where it is used."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _is_json(resp: aiohttp.ClientResponse) -> bool:
    """Whether an answer says it is JSON, or says nothing (the default of some servers).

    Anything else (an HTML login page of a proxy, a captive portal, a text error page) did
    not come from the API, even when its text parses: it is not written as a verdict.
    """
    if not resp.headers.get("Content-Type", "").strip():
        return True
    mime = resp.content_type
    return mime == "application/json" or mime.endswith("+json")


def _untrusted(exc: aiohttp.ClientConnectorCertificateError) -> UntrustedCertificate:
    cert = exc.certificate_error
    why = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or "not trusted"
    return UntrustedCertificate(
        f"the TLS certificate of {exc.host}:{exc.port} did not verify ({why}); set "
        "network.ca_bundle to the CA that signed it (or --insecure, which trusts anyone)"
    )


def _ssl_context(verify: bool, ca_bundle: str | None) -> ssl.SSLContext | bool:
    if not verify:
        return False
    if not ca_bundle:
        return True
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"network.ca_bundle: {ca_bundle} is not a PEM file of CA certificates ({exc})"
        ) from None


def _cause(body: bytes) -> str | None:
    """The reason a 400 body gives, if it names one."""
    # not cut here: the text is cut after our secrets are taken out of it (AiohttpTransport.post)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text or None
    if isinstance(doc, dict):
        for name in ("error", "message", "errorMessage", "reason"):
            v = doc.get(name)
            if isinstance(v, str) and v and v.lower() not in ("bad request", "error"):
                return v
    return None


def _proxy_for(url: str, proxy: str | None, trust_env: bool) -> str | None:
    """The proxy for `url`: the one configured, else with `trust_env` the one the
    environment names for it (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), else none."""
    if proxy is None and trust_env:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
            return None
        proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy  # `proxy.corp:3128`, as curl reads it
    return proxy or None


class Transport(Protocol):
    """What the sender and the run ask of the HTTP edge: post a batch body to an endpoint and
    get the answer's bytes back, and keep our secrets out of what the server sends back."""

    async def open(self) -> None:
        """Connect and authenticate; `AuthRefused` or `UntrustedCertificate` if that fails
        (nothing is left open then)."""
        ...

    async def close(self) -> None:
        """Let go of the connections; nothing to do if it is not open (a run that answers
        from the cache only never opens it)."""
        ...

    async def post(self, endpoint: Endpoint, body: bytes) -> bytes:
        """The bytes of a 200 answer to `body`, or a `RequestError` (its `retryable` says
        whether the same request may be sent again), with our secrets out of its text."""
        ...

    def redact(self, exc: _E) -> _E:
        """`exc` without our secrets in its text (a server may echo what it was sent)."""
        ...

    def scrub(self, parsed: ParsedResponse, body: bytes) -> int:
        """Our secrets out of a parsed answer: how many were replaced."""
        ...


class AiohttpTransport:
    """An aiohttp client session set up from the settings' sections (timeouts, TLS, proxy,
    auth) with a pool of `connections`; open with `async with`, or `open()` and `close()`."""

    def __init__(
        self,
        api: ApiSettings,
        network: NetworkSettings,
        auth: AuthSettings,
        *,
        connections: int,
    ) -> None:
        self.api = api
        self.network = network
        self.auth = auth
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._headers = dict(_JSON)
        self._urls = {ep: api.url(ep) for ep in Endpoint}
        self._login_lock = asyncio.Lock()
        #: endpoints whose 401 renewed the session, and which have not answered with the
        #: session since: another 401 there is a refusal, not an expiry (so an account the
        #: API refuses, on one endpoint or all, never loops through logins)
        self._unproven: set[Endpoint] = set()
        #: what we send that must never be written anywhere (see `redact`, `scrub`): the
        #: secrets this run sends, and only those (a variable set but not in use is never
        #: sent, so never echoed)
        self.redactor = Redactor()
        self._keep_url_secret(api.base_url)
        self._keep_url_secret(network.proxy)
        if auth.mode == "header":
            self._keep_header(auth.header_value().reveal())
        elif auth.mode == "session":
            self._keep_url_secret(auth.login_url)
            self.redactor.add(auth.credentials()[1].reveal())
        self._proxy: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AiohttpTransport:
        """The transport `settings` describe, its pool the size of `limits.concurrency`."""
        return cls(
            settings.api, settings.network, settings.auth, connections=settings.limits.concurrency
        )

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def open(self) -> None:
        """Open the session and authenticate (a tenant login, in session mode)."""
        net = self.network
        ssl_ctx = _ssl_context(net.verify_tls, net.ca_bundle)
        if not net.verify_tls:
            log.warning(
                "warning: TLS certificate verification is off (--insecure or "
                "network.verify_tls = false): anyone on the path can read the credentials "
                "and forge the answers"
            )
        if isinstance(ssl_ctx, bool) and self._speaks_tls():
            # aiohttp's default context, its CA certificates maybe not read yet (tls.py)
            await asyncio.to_thread(load_default_certificates, ssl_ctx)
        conc = self.connections
        connector = aiohttp.TCPConnector(limit=conc, limit_per_host=conc, ssl=ssl_ctx)
        timeout = aiohttp.ClientTimeout(
            total=net.total_timeout, sock_connect=net.connect_timeout, sock_read=net.read_timeout
        )
        self._proxy = _proxy_for(self._urls[Endpoint.FILE], net.proxy, net.trust_env)
        if self._proxy is not None:  # from the environment: checked here, as settings are
            check_url(self._proxy, "the proxy (HTTPS_PROXY / HTTP_PROXY)", schemes=PROXY_SCHEMES)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            # the proxy is looked up once, above: with trust_env, aiohttp would look up the
            # environment, and read ~/.netrc for credentials to send, in a thread per request
            trust_env=False,
            # no cookie jar: the one cookie we send (a tenant session) is set explicitly,
            # and only on API calls, never offered to any other host
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )
        try:
            await self._authenticate()
        except BaseException:
            await self._session.close()
            self._session = None
            raise

    def _speaks_tls(self) -> bool:
        """Whether a connection of this transport may be TLS: an https API, login or proxy."""
        net = self.network
        proxy = _proxy_for(self._urls[Endpoint.FILE], net.proxy, net.trust_env)
        urls = [*self._urls.values(), self.auth.login_url, proxy]
        return any(url is not None and url.lower().startswith("https:") for url in urls)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("AiohttpTransport used before `open()` (or `async with`)")
        return self._session

    async def _authenticate(self) -> None:
        auth = self.auth
        if auth.mode == "header":
            value = auth.header_value().reveal()
            self._headers[auth.header_name] = value
            self._keep_header(value)
        elif auth.mode == "session":
            await self.login()

    async def login(self) -> None:
        """Tenant login (form username/password); its JSESSIONID goes with every API call."""
        auth = self.auth
        net = self.network
        assert auth.login_url is not None
        user, password = auth.credentials()
        self.redactor.add(password.reveal())
        try:
            async with self.session.post(
                auth.login_url,
                data={"username": user, "password": password.reveal()},
                proxy=_proxy_for(auth.login_url, net.proxy, net.trust_env),
                allow_redirects=False,
            ) as resp:
                await resp.read()
                cookie = resp.cookies.get("JSESSIONID")
                status = resp.status
        except aiohttp.ClientConnectorCertificateError as exc:
            raise _untrusted(exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AuthRefused(f"tenant login failed: {type(exc).__name__}") from None
        if status >= 400 or cookie is None or not cookie.value:
            raise AuthRefused(
                f"tenant login refused (HTTP {status}); check the username and password"
            )
        if len(cookie.value) < MIN_SECRET:
            # it could not be told apart from ordinary text in what the server sends back
            raise AuthRefused(
                f"the tenant login gave a session cookie of {len(cookie.value)} characters:"
                f" shorter than {MIN_SECRET}, it cannot be kept out of the outputs"
            )
        self._headers["Cookie"] = f"JSESSIONID={cookie.value}"
        self.redactor.add(cookie.value)

    async def _relogin(self, endpoint: Endpoint, stale: str | None, refused: AuthRefused) -> None:
        """Log in again after a 401 in session mode, however old the session: a tenant may
        end sessions after hours, or minutes, or at once (an administrator's logout).

        Workers that saw the same stale session share one login. A 401 from an endpoint
        whose last 401 renewed the session, before it answered once since, is a real
        refusal: `refused` is raised.
        """
        async with self._login_lock:
            if self._headers.get("Cookie") != stale:
                return  # another worker renewed it already
            if endpoint in self._unproven:
                raise refused
            await self.login()
            self._unproven.add(endpoint)

    def _keep_header(self, value: str) -> None:
        """A header's value, and the token after its scheme (`Bearer TOKEN`)."""
        self.redactor.add(value)
        self.redactor.add(value.partition(" ")[2])

    def _keep_url_secret(self, url: str | None) -> None:
        """A URL's password, and the Basic credentials aiohttp makes of its user info."""
        if not url:
            return
        with contextlib.suppress(ValueError):
            parts = urllib.parse.urlsplit(url)
            if parts.password:
                user = urllib.parse.unquote(parts.username or "")
                password = urllib.parse.unquote(parts.password)
                self.redactor.add(password)
                self.redactor.add(f"{user}:{password}")
                for encoding in ("utf-8", "latin-1"):  # as aiohttp's versions encode it
                    with contextlib.suppress(UnicodeEncodeError):
                        basic = aiohttp.encode_basic_auth(user, password, encoding)
                        self.redactor.add(basic.partition(" ")[2], encoded=False)

    def redact(self, exc: _E) -> _E:
        """`exc` without our secrets in its text, then cut to length. A server may echo
        what it was sent (our token, cookie or password) in an error body, and error texts
        end up in the failures file and the logs."""
        return self.redactor.exception(exc)

    def scrub(self, parsed: ParsedResponse, body: bytes) -> int:
        """Our secrets out of a parsed answer (see `Redactor.answers`): how many were
        replaced (a server that echoes our token inside an answer would have it written and
        cached)."""
        return self.redactor.answers(parsed, body)

    async def post(self, endpoint: Endpoint, body: bytes) -> bytes:
        """POST one batch body; the 200 body's bytes, or an error from the tree.

        In session mode a 401 on an expired session renews it and raises `SessionRenewed`,
        so the retry goes through the rate limiter and the budget like any other attempt.
        """
        session_used = self._headers.get("Cookie")
        try:
            answer = await self._post(endpoint, body)
        except AuthRefused as refused:
            if self.auth.mode != "session":
                raise
            await self._relogin(endpoint, session_used, refused)
        except RequestError as exc:  # redacted where it was made; cut to length here too
            raise self.redact(exc) from None
        else:
            if endpoint in self._unproven and session_used == self._headers.get("Cookie"):
                self._unproven.discard(endpoint)  # the renewed session works there
            return answer
        raise SessionRenewed("the tenant session expired and was renewed")

    async def _post(self, endpoint: Endpoint, body: bytes) -> bytes:
        try:
            async with self.session.post(
                self._urls[endpoint],
                data=body,
                headers=self._headers,
                proxy=self._proxy,
                allow_redirects=False,
            ) as resp:
                if resp.status == 200:
                    if not _is_json(resp):
                        resp.close()  # not read: whatever it is, it is no answer
                        why = f"answer is {resp.content_type}, not JSON"
                        raise self.redact(MalformedBody(why))
                    return await self._read_capped(resp)
                payload = await self._read_capped(resp, limit=64 * 1024, strict=False)
                raise self.redact(self._status_error(resp, payload))
        except aiohttp.ClientConnectorCertificateError as exc:
            raise _untrusted(exc) from None
        except aiohttp.ConnectionTimeoutError:
            timeout = self.network.connect_timeout
            raise TransportError(f"timed out connecting ({timeout:g} s)") from None
        except aiohttp.SocketTimeoutError:
            timeout = self.network.read_timeout
            raise TransportError(
                f"timed out: the server sent nothing for {timeout:g} s (network.read_timeout)"
            ) from None
        except aiohttp.ServerDisconnectedError:
            # includes a stale keep-alive connection: aiohttp does not retry POSTs itself
            raise TransportError("server disconnected before answering") from None
        except aiohttp.ClientPayloadError:
            raise TransportError("answer body cut off (payload error)") from None
        except aiohttp.ClientConnectionError as exc:
            raise TransportError(f"connection failed: {type(exc).__name__}") from None
        except aiohttp.ClientResponseError as exc:
            raise self.redact(TransportError(f"bad HTTP response: {exc.message}")) from None
        except TimeoutError:
            timeout = self.network.total_timeout
            raise TransportError(
                f"timed out waiting for the answer ({timeout:g} s, network.total_timeout)"
            ) from None

    async def _read_capped(
        self, resp: aiohttp.ClientResponse, *, limit: int | None = None, strict: bool = True
    ) -> bytes:
        cap = limit or self.api.max_response_bytes
        declared = resp.content_length
        if strict and declared is not None and declared > cap:
            resp.close()  # refuse without reading it
            raise MalformedBody(f"answer of {declared} bytes is over the {cap}-byte cap")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > cap:
                resp.close()  # the rest is not read: the connection goes
                if not strict:
                    break
                raise MalformedBody(f"answer over the {cap}-byte cap")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _status_error(resp: aiohttp.ClientResponse, payload: bytes) -> Exception:
        status = resp.status
        if status == 429:
            return RateLimited(parse_retry_after(resp.headers.get("Retry-After")))
        if status == 413:
            return BatchTooLarge()
        if status == 400:
            return BadRequest(_cause(payload))
        if status in (401, 403):
            return AuthRefused(
                f"the server refused our credentials (HTTP {status}); check the auth settings"
            )
        if 300 <= status < 400:
            return HTTPStatusError(status, "redirect not followed")
        return HTTPStatusError(status)
