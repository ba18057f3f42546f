"""The limiter's policy, on a clock of its own (`FakeTime`): pacing and AIMD wait for nothing.
tests/api/test_pacing.py paces on the event loop's timers; tests/e2e/test_nginx.py against a
real server's limit."""

from __future__ import annotations

import asyncio
import itertools

from fake_time import FakeTime

from enricher.api.ratelimit import AdaptiveLimiter


def limiter_on(clock: FakeTime, rate: float, **knobs: float) -> AdaptiveLimiter:
    return AdaptiveLimiter(rate, clock=clock, sleep=clock.sleep, **knobs)


async def acquire_times(limiter: AdaptiveLimiter, n: int, clock: FakeTime) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(clock())

    await asyncio.gather(*(one() for _ in range(n)))
    return sorted(times)


async def test_no_start_up_burst_and_steady_pacing() -> None:
    rate = 200.0
    clock = FakeTime()
    times = await acquire_times(limiter_on(clock, rate), 60, clock)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # the bucket holds one request and at most half a request of catch-up slack: never two at
    # once, not even at start, and ten in a row take at least 8.5 intervals
    assert min(gaps) >= 0.5 / rate * 0.9
    assert times[9] - times[0] >= 8.5 / rate * 0.95
    # and the pace is the rate, not slower (no wake-up is late on this clock)
    assert (times[-1] - times[0]) <= 59 / rate * 1.001


async def test_any_one_second_window_stays_within_the_rate() -> None:
    rate = 40.0
    clock = FakeTime()
    times = await acquire_times(limiter_on(clock, rate, headroom=0.02), 45, clock)
    # count in every window that starts at an acquisition
    worst = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    assert worst <= rate


async def test_zero_rate_means_no_limit() -> None:
    clock = FakeTime()
    limiter = limiter_on(clock, 0)
    times = await acquire_times(limiter, 100, clock)
    assert times[-1] == times[0] and clock.slept == []
    limiter.rate_limited()  # nothing to adapt
    assert limiter.changes == []


async def test_a_lone_429_does_not_slow_the_run() -> None:
    now = [0.0]
    limiter = AdaptiveLimiter(100, window=10.0, clock=lambda: now[0])
    for t in (1.0, 12.0, 23.0):  # one 429 now and then, each long after the last
        now[0] = t
        limiter.rate_limited()
    assert limiter.rate == 100 and limiter.changes == []


async def test_aimd_halves_once_per_cooldown_then_climbs_back() -> None:
    now = [0.0]
    limiter = AdaptiveLimiter(100, cooldown=2.0, clock=lambda: now[0])
    limiter.rate_limited()
    limiter.rate_limited()  # 429s keep coming: halve
    limiter.rate_limited()  # more from requests already in flight: still one decrease
    assert limiter.rate == 50
    now[0] = 2.5
    limiter.rate_limited()
    assert limiter.rate == 25
    for _ in range(10_000):
        limiter.succeeded()
    assert limiter.rate == 100  # back to, never above, the configured rate
    reasons = [c.reason for c in limiter.changes]
    assert reasons[:2] == ["429s from server", "429s from server"]
    assert reasons[-1] == "recovering"


async def test_lowered_rate_really_slows_acquisition() -> None:
    clock = FakeTime()
    limiter = limiter_on(clock, 400, cooldown=0)
    await limiter.acquire()
    limiter.rate_limited()
    limiter.rate_limited()  # 200
    limiter.rate_limited()  # 100
    times = await acquire_times(limiter, 11, clock)
    assert times[-1] - times[0] >= 10 / 100 * 0.9
