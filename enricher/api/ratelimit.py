"""The request-rate limiter: steady pacing with no start-up burst, adapted down on 429s.

An `aiolimiter.AsyncLimiter` leaky bucket of capacity one paces requests `1 / rate` apart,
`rate` being the configured one less a headroom (1.5%), so no 1-second window holds more than
the rate, not even at start, and a request held up on its way still cannot tip the server
over. When 429s keep coming anyway, the rate is halved (at most once a cooldown) and then
climbs back additively while answers come without 429 (AIMD).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

__all__ = ["CATCH_UP", "AdaptiveLimiter", "RateChange"]

#: How far (seconds) the pacing may catch up after a late wake-up. The event loop wakes a
#: waiter up to about a millisecond late (epoll rounds its timeout up to whole ms); without
#: catching up, that lateness adds up, and a run at 50/s used only 92-94% of its rate.
CATCH_UP = 0.002


@dataclass(frozen=True, slots=True)
class RateChange:
    at: float  # seconds since the limiter was made
    rate: float  # the new rate, requests per second
    reason: str


class _PacingLimiter(AsyncLimiter):
    """A leaky bucket of capacity 1 that each request fills by `amount` (<= 1).

    With amount 1 the gaps are at least 1 / rate. A slightly smaller amount leaves a little
    slack, `1 - amount`, so a request that was woken late (a busy event loop) lets the next
    one catch up instead of the lateness adding up, yet never more than one request starts
    from an empty bucket. The drain rate can be changed while in use.
    """

    def __init__(self, rate: float, amount: float) -> None:
        self.amount = amount
        super().__init__(1, 1 / (rate * amount))

    def set_rate(self, rate: float) -> None:
        # aiolimiter has no public setter; its leak rate is `_rate_per_sec` (aiolimiter 1.x).
        # Drain at the old rate up to now first, so the change applies from this moment on.
        self._leak()
        self.time_period = 1 / (rate * self.amount)
        self._rate_per_sec = rate * self.amount
        self._wake_next()

    async def acquire(self, amount: float | None = None) -> None:
        await super().acquire(self.amount if amount is None else amount)


class AdaptiveLimiter:
    """Paces requests at `rate` (minus headroom); `rate=0` means no limit at all.

    Create it inside the running event loop. Call `acquire()` before every attempt, and
    `rate_limited()` / `succeeded()` with what the server said.
    """

    def __init__(
        self,
        rate: float,
        *,
        headroom: float = 0.0,
        adaptive: bool = True,
        min_rate: float = 0.2,
        cooldown: float = 2.0,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rate = rate * (1 - headroom)
        self.rate = self.max_rate
        self.adaptive = adaptive and rate > 0
        self.min_rate = min(min_rate, self.max_rate) if rate > 0 else min_rate
        self.cooldown = cooldown
        self.window = window
        self._last_429 = -1e9
        # additive increase: regain 5% of the configured rate per second without 429
        self.step = max(self.max_rate * 0.05, 0.1)
        self.changes: list[RateChange] = []
        self._clock = clock
        self._start = clock()
        self._last_decrease = -1e9
        # Any rate + 1 consecutive requests span at least (rate - slack) / max_rate seconds,
        # about 1 + headroom - CATCH_UP: what is left of the headroom, about 13 ms at the
        # default, is how long a request may be held up on its way before the server could
        # count rate + 1 in one second (on loopback we measured up to 6 ms).
        slack = min(0.5, CATCH_UP * self.max_rate)
        self._limiter = _PacingLimiter(self.rate, 1 / (1 + slack)) if rate > 0 else None

    async def acquire(self) -> None:
        if self._limiter is not None:
            await self._limiter.acquire()

    def ready(self) -> bool:
        """Whether `acquire()` would return at once (no wait for a turn)."""
        return self._limiter is None or self._limiter.has_capacity(self._limiter.amount)

    def rate_limited(self) -> None:
        """The server answered 429. When 429s keep coming (a second one within `window`
        seconds), halve the rate, at most once per cooldown. A lone 429 only costs its retry:
        one request bunched up on the way is no reason to slow the whole run."""
        if not self.adaptive or self._limiter is None:
            return
        now = self._clock()
        previous, self._last_429 = self._last_429, now
        if now - previous > self.window or now - self._last_decrease < self.cooldown:
            return
        self._last_decrease = now
        self._set(max(self.rate / 2, self.min_rate), "429s from server")

    def succeeded(self) -> None:
        """An answer without 429: creep back up towards the configured rate."""
        if not self.adaptive or self._limiter is None or self.rate >= self.max_rate:
            return
        new = min(self.max_rate, self.rate + self.step / self.rate)
        # report the climb in whole steps, not on every request
        crossed = int(new / self.step) != int(self.rate / self.step) or new == self.max_rate
        self._set(new, "recovering", record=crossed)

    def _set(self, rate: float, reason: str, *, record: bool = True) -> None:
        assert self._limiter is not None
        self.rate = rate
        self._limiter.set_rate(rate)
        if record:
            self.changes.append(RateChange(round(self._clock() - self._start, 3), rate, reason))
