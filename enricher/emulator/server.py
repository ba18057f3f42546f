"""The emulator's HTTP face: the aiohttp app, its handlers, and the `Emulator` context manager.

Each API request is decided in one synchronous step once its body is read (rate window, auth,
validation, faults, answer), so the seeded choices follow arrival order and the stats are
recorded even if the client gives up during the configured latency.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from ..ioc import Endpoint
from .answers import answer_body
from .auth import SESSION_COOKIE, Authenticator
from .config import EmulatorConfig, RetryAfter
from .faults import FaultDrawer, Outcome, Plan, answer_entries, truncate
from .keys import InvalidRequest, normalize_keys, parse_body
from .stats import NO_RESPONSE, LogEntry, Stats
from .window import RateWindow, retry_after_seconds

__all__ = ["API_PREFIX", "Emulator", "EmulatorService"]

API_PREFIX = "/rest/classification_v1"
_JSON = "application/json"
_ENDPOINTS = {ep.value: ep for ep in Endpoint}
_SERVER_ERROR_BODIES: dict[int, tuple[bytes, str]] = {
    500: (b'{"error": "Internal Server Error"}', _JSON),
    502: (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    503: (b'{"error": "Service Unavailable"}', _JSON),
    504: (b"<html><body><h1>504 Gateway Time-out</h1></body></html>", "text/html"),
}
_ERROR_BODY = orjson.dumps(
    {"message": "Internal error while classifying the batch", "status": "ERROR"}
)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int  # NO_RESPONSE when the connection is dropped or left hanging
    body: bytes = b""
    content_type: str = _JSON
    headers: dict[str, str] | None = None
    hang: bool = False


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, orjson.dumps({"error": message}), headers=headers)


class EmulatorService:
    """The handlers and the state they share: rate window, sessions, faults, stats."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._clock = config.clock
        self._drawer = FaultDrawer(config)
        self._window = RateWindow(config.rate_limit)
        self._auth = Authenticator(config, config.clock)
        self.stats = Stats(config.log_size)
        self._closing = asyncio.Event()  # set at shutdown: releases hung requests

    def make_app(self) -> web.Application:
        # Big batches are the point of the API; aiohttp's default 1 MiB body cap would answer
        # them with its own 413 before the emulator's max_batch logic sees them.
        app = web.Application(client_max_size=256 * 1024 * 1024)
        self._closing.clear()
        app.router.add_post(API_PREFIX + "/{endpoint}", self.batch)
        if self._auth.login_enabled:
            app.router.add_post("/login.html", self.login)
        app.router.add_get("/emulator/stats", self.get_stats)
        app.router.add_get("/emulator/keys", self.get_keys)
        app.router.add_post("/emulator/reset", self.reset)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()

    # -- the API ---------------------------------------------------------------------------

    async def batch(self, request: web.Request) -> web.StreamResponse:
        endpoint = _ENDPOINTS.get(request.match_info["endpoint"])
        if endpoint is None:
            raise web.HTTPNotFound(text='{"error": "Not Found"}', content_type=_JSON)
        body = await request.read()
        plan, reply = self._decide(endpoint, request, body)
        if plan.latency > 0:
            await asyncio.sleep(plan.latency)
        if reply.hang:
            await self._closing.wait()
        if reply.status == NO_RESPONSE:
            # Close without a byte of response: the client sees the server disconnect.
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        response = web.Response(
            status=reply.status, body=reply.body, content_type=reply.content_type
        )
        if reply.headers:
            response.headers.update(reply.headers)
        return response

    def _decide(self, endpoint: Endpoint, request: web.Request, body: bytes) -> tuple[Plan, _Reply]:
        now = self._clock()
        plan = self._drawer.draw()
        stats = self.stats
        stats.arrived.add(now)
        wait = self._window.admit(now)
        if wait is not None:
            stats.rate_limited += 1
            reply = self._too_many(wait)
            n_keys = 0
        else:
            stats.accepted.add(now)
            reply, n_keys = self._answer(endpoint, request, body, plan)
        if reply.status != NO_RESPONSE:
            label = str(reply.status)
        else:
            label = "hung" if reply.hang else "dropped"
        stats.record(now, endpoint.value, reply.status, n_keys, label)
        return plan, reply

    def _too_many(self, wait: float) -> _Reply:
        seconds = retry_after_seconds(wait)
        headers: dict[str, str] = {}
        mode = self.config.retry_after
        if mode is RetryAfter.SECONDS:
            headers["Retry-After"] = str(seconds)
        elif mode is RetryAfter.HTTP_DATE:
            # An HTTP date has whole seconds; round up so the client never comes back early.
            headers["Retry-After"] = email.utils.formatdate(
                math.ceil(time.time() + wait), usegmt=True
            )
        message = f"rate limit of {self.config.rate_limit} requests per second exceeded"
        return _Reply(429, orjson.dumps({"error": message, "retryAfter": seconds}), headers=headers)

    def _answer(
        self, endpoint: Endpoint, request: web.Request, body: bytes, plan: Plan
    ) -> tuple[_Reply, int]:
        config = self.config
        stats = self.stats
        auth = self._auth
        if auth.required and not auth.allows(request.headers, request.cookies):
            headers = {"WWW-Authenticate": "Bearer"} if config.api_token is not None else None
            return _error(401, "Unauthorized", headers), 0
        try:
            objects = parse_body(body)
        except InvalidRequest as exc:
            return _error(400, str(exc)), 0
        n_keys = len(objects)
        if config.max_batch is not None and n_keys > config.max_batch:
            message = f"batch of {n_keys} keys exceeds the limit of {config.max_batch}"
            return _error(413, message), n_keys
        try:
            keys = normalize_keys(endpoint, objects, accept_sha256=config.accept_sha256)
        except InvalidRequest as exc:
            return _error(400, str(exc)), n_keys
        if config.refuse_keys and not config.refuse_keys.isdisjoint(keys):
            stats.faults["refused_batch"] += 1
            return _error(400, "Bad Request"), n_keys

        stats.keys_asked += n_keys
        stats.received(endpoint.value, keys)
        outcome = plan.outcome
        if outcome is not Outcome.ANSWER and outcome is not Outcome.MALFORMED_JSON:
            stats.faults[outcome.value] += 1
            if outcome is Outcome.SERVER_ERROR:
                text, content_type = _SERVER_ERROR_BODIES[plan.error_status]
                return _Reply(plan.error_status, text, content_type), n_keys
            if outcome is Outcome.ERROR_BODY:
                return _Reply(200, _ERROR_BODY), n_keys
            return _Reply(NO_RESPONSE, hang=outcome is Outcome.HANG), n_keys

        if outcome is Outcome.MALFORMED_JSON:
            stats.faults["malformed_json"] += 1
            # Content faults in a body nobody can parse are not worth counting.
            entries, _ = answer_entries(endpoint, keys, plan, config.missing_key_rate, Counter())
            text = truncate(answer_body(entries), plan)
            return _Reply(200, text), n_keys
        entries, answered = answer_entries(
            endpoint, keys, plan, config.missing_key_rate, stats.faults
        )
        stats.keys_answered += answered
        return _Reply(200, answer_body(entries)), n_keys

    # -- login and the emulator's own endpoints -------------------------------------------

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        username, password = form.get("username"), form.get("password")
        session = None
        if isinstance(username, str) and isinstance(password, str):
            session = self._auth.login(username, password)
        if session is None:
            self.stats.logins["failed"] += 1
            return web.Response(status=401, body=b'{"error": "Unauthorized"}', content_type=_JSON)
        self.stats.logins["ok"] += 1
        response = web.Response(
            text="<html><body>Logged in</body></html>", content_type="text/html"
        )
        response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True)
        return response

    async def get_stats(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=orjson.dumps(self.stats.as_dict()), content_type=_JSON)

    async def get_keys(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=orjson.dumps(self.stats.keys_dict()), content_type=_JSON)

    async def reset(self, request: web.Request) -> web.StreamResponse:
        self.stats.reset()
        return web.Response(body=b'{"reset": true}', content_type=_JSON)


class Emulator:
    """A running emulator on a loopback port, as an async context manager.

    >>> async with Emulator(EmulatorConfig(rate_limit=50)) as emu:
    ...     url = emu.base_url + "/file_batch"
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.host = host
        self._requested_port = port
        self._service = EmulatorService(self.config)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(
            self._service.make_app(),
            handle_signals=False,
            access_log=None,
            # Cancel a handler when its client goes away, so hung requests do not pile up.
            handler_cancellation=True,
            # Hung requests are released at shutdown; this bounds requests still in latency.
            shutdown_timeout=1.0,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def url(self) -> str:
        """The root, e.g. http://127.0.0.1:PORT (stats at /emulator/stats)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base, e.g. http://127.0.0.1:PORT/rest/classification_v1."""
        return self.url + API_PREFIX

    def stats(self) -> dict[str, Any]:
        """The same dict `GET /emulator/stats` returns."""
        return self._service.stats.as_dict()

    def reset_stats(self) -> None:
        self._service.stats.reset()

    def keys(self) -> dict[str, Any]:
        """The same dict `GET /emulator/keys` returns: the distinct keys received by endpoint
        (`file_batch`, `domain_batch`, `ip_batch`: up to `config.log_size` in all) and
        `truncated`."""
        return self._service.stats.keys_dict()

    @property
    def log(self) -> list[LogEntry]:
        """The most recent API requests, oldest first (bounded by `config.log_size`)."""
        return list(self._service.stats.log)
