"""The HTTP edge and the sender's retries, against mocked responses (aioresponses)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import orjson
import pytest
from aioresponses import aioresponses

from enricher.api.ratelimit import AdaptiveLimiter
from enricher.api.sender import Sender
from enricher.api.transport import AiohttpTransport, _proxy_for, parse_retry_after
from enricher.config.settings import Settings, load_settings
from enricher.errors import (
    AuthRefused,
    BadRequest,
    BatchTooLarge,
    ErrorBody,
    HTTPStatusError,
    MalformedBody,
    RateLimited,
    TransportError,
)
from enricher.ioc import Endpoint, IocType
from enricher.pipeline.stats import RunStats

BASE = "http://gti.test/rest/classification_v1"
FILE_URL = f"{BASE}/file_batch"
MD5 = "92f44e405db16ac55d97e3bfe3b132fa"
ANSWER = orjson.dumps(
    {"classificationResponses": [{"requestKey": {"md5": MD5, "sha1": None}, "ttl": 5}]}
)


def settings(**retry: float) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "api": {"base_url": BASE, "max_response_bytes": 4096},
            "retry": {"backoff_base": 0.0, "backoff_max": 0.0, **retry},
            "limits": {"rate": 0},
        },
    )


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(date, now=now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=9), usegmt=True), now=now) == 0


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "retryable"),
    [
        (429, b"{}", {"Retry-After": "2"}, RateLimited, True),
        (413, b'{"error":"too many keys"}', {}, BatchTooLarge, False),
        (400, b'{"error":"Bad Request"}', {}, BadRequest, False),
        (401, b"{}", {}, AuthRefused, False),
        (403, b"", {}, AuthRefused, False),
        (503, b"busy", {}, HTTPStatusError, True),
        (302, b"", {"Location": "http://elsewhere.test/"}, HTTPStatusError, False),
        (404, b"", {}, HTTPStatusError, False),
    ],
)
async def test_status_mapping(
    status: int, body: bytes, headers: dict[str, str], error: type, retryable: bool
) -> None:
    with aioresponses() as m:
        m.post(FILE_URL, status=status, body=body, headers=headers)
        async with AiohttpTransport.from_settings(settings()) as t:
            with pytest.raises(error) as info:
                await t.post(Endpoint.FILE, b"{}")
    assert info.value.retryable is retryable
    if status == 429:
        assert info.value.retry_after == 2.0
    if status == 400:
        assert info.value.cause is None  # "Bad Request" names no cause


async def test_400_with_a_cause() -> None:
    with aioresponses() as m:
        m.post(FILE_URL, status=400, body=b'{"error": "invalid md5 at requestData[3]"}')
        async with AiohttpTransport.from_settings(settings()) as t:
            with pytest.raises(BadRequest) as info:
                await t.post(Endpoint.FILE, b"{}")
    assert info.value.cause == "invalid md5 at requestData[3]"


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientConnectionError("refused"),
        aiohttp.ClientPayloadError("cut"),
        TimeoutError(),
    ],
)
async def test_connection_errors_are_retryable_transport_errors(exc: Exception) -> None:
    with aioresponses() as m:
        m.post(FILE_URL, exception=exc)
        async with AiohttpTransport.from_settings(settings()) as t:
            with pytest.raises(TransportError) as info:
                await t.post(Endpoint.FILE, b"{}")
    assert info.value.retryable


async def test_answer_over_the_cap_is_refused() -> None:
    with aioresponses() as m:
        m.post(FILE_URL, status=200, body=b"x" * 10_000)
        async with AiohttpTransport.from_settings(settings()) as t:
            with pytest.raises(MalformedBody, match="cap"):
                await t.post(Endpoint.FILE, b"{}")


async def sender_fetch(s: Settings, stats: RunStats, waits: list[float] | None = None) -> object:
    """One batch of one key through the sender; the backoffs it waited go to `waits` (it
    waits for none of them)."""
    waited = [] if waits is None else waits

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    async with AiohttpTransport.from_settings(s) as t:
        sender = Sender(s.api, s.retry, t, AdaptiveLimiter(0), stats, sleep=sleep)
        return await sender.fetch(Endpoint.FILE, [(IocType.MD5, MD5)])


async def test_sender_retries_what_a_retry_can_fix() -> None:
    stats = RunStats()
    with aioresponses() as m:
        m.post(FILE_URL, status=503)
        m.post(FILE_URL, exception=aiohttp.ServerDisconnectedError())  # stale keep-alive
        m.post(FILE_URL, status=200, body=b'{"classificationResponses": [{"requestKey": {"md')
        m.post(FILE_URL, status=200, body=b'{"status": "ERROR", "message": "try later"}')
        m.post(FILE_URL, status=200, body=ANSWER)
        parsed = await sender_fetch(settings(), stats)
    assert MD5 in parsed.answers  # type: ignore[attr-defined]
    assert stats.retries == 4 and stats.requests == 5
    assert stats.by_status["file_batch"]["200"] == 1


async def test_sender_gives_up_after_the_attempts_and_says_how_many() -> None:
    stats = RunStats()
    with aioresponses() as m:
        m.post(FILE_URL, status=200, body=b"{}", repeat=True)
        with pytest.raises(ErrorBody) as info:
            await sender_fetch(settings(attempts=3), stats)
    assert info.value.attempts == 3 and stats.requests == 3


async def test_sender_does_not_retry_what_cannot_be_fixed() -> None:
    for status, error in ((413, BatchTooLarge), (400, BadRequest), (401, AuthRefused)):
        stats = RunStats()
        with aioresponses() as m:
            m.post(FILE_URL, status=status, repeat=True)
            with pytest.raises(error):
                await sender_fetch(settings(), stats)
        assert stats.requests == 1


async def test_sender_honours_retry_after() -> None:
    stats = RunStats()
    waits: list[float] = []
    with aioresponses() as m:
        m.post(FILE_URL, status=429, headers={"Retry-After": "0.3"})
        m.post(FILE_URL, status=200, body=ANSWER)
        await sender_fetch(settings(), stats, waits)
    # the server's wait, and a little jitter (so workers do not come back together)
    assert len(waits) == 1 and 0.3 <= waits[0] <= 0.3 + 0.08, waits
    assert stats.rate_limited == 1


async def test_every_attempt_pays_the_limiter() -> None:
    s = settings()
    acquired = 0

    class CountingLimiter(AdaptiveLimiter):
        async def acquire(self) -> None:
            nonlocal acquired
            acquired += 1

    with aioresponses() as m:
        m.post(FILE_URL, status=502)
        m.post(FILE_URL, status=502)
        m.post(FILE_URL, status=200, body=ANSWER)
        async with AiohttpTransport.from_settings(s) as t:
            await Sender(s.api, s.retry, t, CountingLimiter(0), RunStats()).fetch(
                Endpoint.FILE, [(IocType.MD5, MD5)]
            )
    assert acquired == 3


async def test_static_header_auth_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENRICHER_AUTH_HEADER", "Bearer sekret-token")
    s = settings().replace(auth={"mode": "header"})
    with aioresponses() as m:
        m.post(FILE_URL, status=200, body=ANSWER)
        async with AiohttpTransport.from_settings(s) as t:
            await t.post(Endpoint.FILE, b"{}")
        (call,) = m.requests[("POST", aiohttp.client.URL(FILE_URL))]
    assert call.kwargs["headers"]["Authorization"] == "Bearer sekret-token"


async def test_failed_login_is_fatal_and_says_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENRICHER_USERNAME", "analyst")
    monkeypatch.setenv("ENRICHER_PASSWORD", "pw-very-secret")
    s = settings().replace(auth={"mode": "session", "login_url": "http://tenant.test/login.html"})
    with aioresponses() as m:
        m.post(re.compile(r"http://tenant\.test/login\.html"), status=401)
        with pytest.raises(AuthRefused) as info:
            async with AiohttpTransport.from_settings(s):
                pass
    assert "pw-very-secret" not in str(info.value)


# -- proxies: looked up once, not per request ------------------------------------------------


def test_the_proxy_comes_from_settings_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    url = "https://gti.test/rest/classification_v1/file_batch"
    assert _proxy_for(url, None, True) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    assert _proxy_for(url, None, True) == "http://proxy.test:3128"
    assert _proxy_for(url, None, False) is None  # trust_env = false: the environment is ignored
    assert _proxy_for(url, "http://mine.test:8080", True) == "http://mine.test:8080"
    monkeypatch.setenv("HTTPS_PROXY", "proxy.test:3128")  # no scheme: http, as curl reads it
    assert _proxy_for(url, None, True) == "http://proxy.test:3128"
    assert _proxy_for(url, "mine.test:8080", False) == "http://mine.test:8080"
    monkeypatch.setenv("NO_PROXY", "gti.test")
    assert _proxy_for(url, None, True) is None


async def test_requests_go_through_the_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # the emulator stands in for a forward proxy: an absolute-form request for a host that
    # does not exist reaches it only through the proxy setting
    from enricher.emulator import Emulator, EmulatorConfig

    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with Emulator(EmulatorConfig()) as emu:
        monkeypatch.setenv("HTTP_PROXY", emu.base_url.split("/rest/")[0])
        s = load_settings(
            environ={},
            overrides={"api": {"base_url": "http://gti.invalid/rest/classification_v1"}},
        )
        async with AiohttpTransport.from_settings(s) as t:
            body = orjson.dumps({"requestData": [{"requestKey": {"md5": MD5}}]})
            raw = await t.post(Endpoint.FILE, body)
        assert MD5.encode() in raw
        assert emu.stats()["total_requests"] == 1
