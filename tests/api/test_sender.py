"""The sender's retry policy, through a transport of our own and on a clock of its own: the
backoffs, a 429's Retry-After and a spent quota are checked as the waits asked for, and
nothing waits."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from fake_api import FakeTransport, answers_for
from fake_time import FakeTime

from enricher.api.ratelimit import AdaptiveLimiter
from enricher.api.sender import Sender
from enricher.config.settings import ApiSettings, RetrySettings
from enricher.errors import (
    HTTPStatusError,
    QuotaExhausted,
    RateLimited,
    Stopping,
    TransportError,
)
from enricher.ioc import Endpoint, IocType
from enricher.pipeline.stats import RunStats
from enricher.state.budget import SPENT, Budget

MD5 = hashlib.md5(b"x").hexdigest()
KEYS = [(IocType.MD5, MD5)]


def failing(*errors: Exception) -> FakeTransport:
    """A transport that raises `errors` in turn, then answers."""
    todo = list(errors)
    return FakeTransport(answers_for([MD5]), fault=lambda *_: todo.pop(0) if todo else None)


def sender(transport: FakeTransport, clock: FakeTime, **retry: float) -> Sender:
    return Sender(
        ApiSettings(),
        RetrySettings(**retry),  # type: ignore[arg-type]
        transport,
        AdaptiveLimiter(0),
        RunStats(),
        clock=clock,
        sleep=clock.sleep,
    )


async def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    clock = FakeTime()
    s = sender(failing(*[HTTPStatusError(503)] * 7), clock, attempts=8, backoff_max=4.0)
    parsed = await s.fetch(Endpoint.FILE, KEYS)
    assert MD5 in parsed.answers
    # attempt n waits uniform(0, min(4, 0.5 * 2**n)): 0.5, 1, 2, 4, 4, 4, 4 at most
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert len(clock.slept) == 7
    assert all(0 <= w <= cap for w, cap in zip(clock.slept, caps, strict=True)), clock.slept
    assert s.stats.retries == 7 and s.stats.requests == 8


async def test_a_retry_after_is_waited_at_least_and_capped_at_retry_after_max() -> None:
    clock = FakeTime()
    s = sender(failing(RateLimited(20.0), RateLimited(250.0)), clock, retry_after_max=60.0)
    await s.fetch(Endpoint.FILE, KEYS)
    first, second = clock.slept
    assert 20.0 <= first <= 20.0 + 1.0  # the server's wait and a little jitter
    assert 60.0 <= second <= 61.0  # a Retry-After of 250 s waits retry_after_max (then jitter)
    assert s.stats.rate_limited == 2


async def test_a_retry_after_past_max_wait_is_a_spent_quota_and_no_wait() -> None:
    clock = FakeTime()
    transport = failing(RateLimited(3600.0))
    s = sender(transport, clock, max_wait=300.0)
    with pytest.raises(QuotaExhausted):
        await s.fetch(Endpoint.FILE, KEYS)
    assert clock.slept == [] and len(transport.posts) == 1
    # nothing more is sent, by any batch, until then
    with pytest.raises(QuotaExhausted):
        await s.fetch(Endpoint.FILE, KEYS)
    assert len(transport.posts) == 1


async def test_a_stop_cuts_a_backoff_short_on_a_given_sleep() -> None:
    halting = asyncio.Event()
    backing_off = asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        backing_off.set()
        await asyncio.sleep(3600)  # would hold the test for an hour: the stop must end it

    s = Sender(
        ApiSettings(),
        RetrySettings(backoff_base=100.0, backoff_max=100.0),
        failing(TransportError("dropped")),
        AdaptiveLimiter(0),
        RunStats(),
        sleep=slow_sleep,
    )
    reason = "interrupted"
    fetch = asyncio.ensure_future(
        s.fetch(
            Endpoint.FILE, KEYS, halt=lambda: reason if halting.is_set() else None, halting=halting
        )
    )
    await asyncio.wait_for(backing_off.wait(), 1)
    halting.set()
    with pytest.raises(Stopping, match=reason):
        await asyncio.wait_for(fetch, 1)


async def test_what_a_retry_cannot_fix_is_not_retried() -> None:
    clock = FakeTime()
    transport = failing(HTTPStatusError(404))
    s = sender(transport, clock)
    with pytest.raises(HTTPStatusError) as info:
        await s.fetch(Endpoint.FILE, KEYS)
    assert info.value.attempts == 1 and clock.slept == [] and len(transport.posts) == 1


async def test_a_request_that_took_the_budget_is_sent_though_it_is_spent_meanwhile() -> None:
    """Its share is counted (in a shared state, reserved): given up, it was spent for nothing
    (a daily budget of 7 counted 7 while 1 request was sent). A signal still stops it."""
    halting = asyncio.Event()

    class SpentMeanwhile(Budget):  # another request meets the budget spent as this one takes
        async def take(self) -> None:
            await super().take()
            halting.set()

    for reason, sent in [(SPENT, 1), ("interrupted", 0)]:
        halting.clear()

        def halt(why: str = reason) -> str | None:
            return why if halting.is_set() else None

        transport = failing()
        s = Sender(
            ApiSettings(),
            RetrySettings(),
            transport,
            AdaptiveLimiter(0),
            RunStats(),
            budget=SpentMeanwhile(max_requests=5),
        )
        fetch = s.fetch(Endpoint.FILE, KEYS, halt=halt, halting=halting)
        if sent:
            assert MD5 in (await fetch).answers
        else:
            with pytest.raises(Stopping, match=reason):
                await fetch
        assert len(transport.posts) == sent
