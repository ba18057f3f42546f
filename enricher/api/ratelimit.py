"""The request-rate limiter: steady pacing with no start-up burst, adapted down on 429s.

`RateLimiter` is what the sender asks of one (a turn before each attempt, and what the server
said); `AdaptiveLimiter` is the one a run uses unless it is given another. Its `Pacer` spaces
requests `1 / rate` apart, `rate` being the configured one less a headroom
(`limits.rate_headroom`, 1.5%), so no 1-second window holds more than the rate, not even at
start, and a request held up on its way still cannot tip the server over. When 429s keep
coming anyway, the rate is halved (at most once a `limits.rate_cooldown`) and then climbs
back additively while answers come without 429 (AIMD; `limits.rate_window`,
`limits.rate_recovery`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config.settings import LimitSettings

__all__ = [
    "CATCH_UP",
    "AdaptiveLimiter",
    "Clock",
    "Pacer",
    "RateChange",
    "RateLimiter",
    "Sleep",
    "aimd_bounds",
]

#: How far (seconds) the pacing may catch up after a late wake-up. The event loop wakes a
#: waiter up to about a millisecond late (epoll rounds its timeout up to whole ms); without
#: catching up, that lateness adds up, and a run at 50/s used only 92-94% of its rate.
CATCH_UP = 0.002

#: the slowest climb back after 429s, requests per second each second
_MIN_STEP = 0.1

#: seconds, from any fixed point (the event loop's `time`, or a test's)
Clock = Callable[[], float]
#: waits that many seconds of that clock (`asyncio.sleep`, or a test's that moves its clock)
Sleep = Callable[[float], Awaitable[None]]


def aimd_bounds(
    rate: float, *, headroom: float, min_rate: float, recovery: float
) -> tuple[float, float, float]:
    """What AIMD works between, for a configured `rate` (0: no limit): the rate paced at
    (less `headroom`), the floor halving stops at, and the additive step (requests per
    second regained each second without 429: `recovery` of the paced rate, at least
    `_MIN_STEP`). One rule for every limiter, local or shared."""
    max_rate = rate * (1 - headroom)
    floor = min(min_rate, max_rate) if rate > 0 else min_rate
    return max_rate, floor, max(max_rate * recovery, _MIN_STEP)


@dataclass(frozen=True, slots=True)
class RateChange:
    at: float  # seconds since the limiter was made
    rate: float  # the new rate, requests per second
    reason: str


class RateLimiter(Protocol):
    """What the sender asks of a rate limiter. Made inside the running event loop."""

    @property
    def changes(self) -> Sequence[RateChange]:
        """The rate's changes so far, oldest first (the summary and the manifest list them)."""
        ...

    async def acquire(self) -> None:
        """Wait for this attempt's turn."""
        ...

    def ready(self) -> bool:
        """Whether `acquire()` would return at once (no wait for a turn)."""
        ...

    def rate_limited(self) -> None:
        """The server answered 429."""
        ...

    def succeeded(self) -> None:
        """The server answered without 429."""
        ...


def _ring(alarm: asyncio.Future[None]) -> None:
    if not alarm.done():
        alarm.set_result(None)


class Pacer:
    """Turns `1 / rate` apart, first come first served, with `slack` (< 1) of an interval
    of catch-up: a turn that was woken late (a busy event loop) lets the next one come that
    much sooner instead of the lateness adding up, yet no two turns are ever less than
    `1 - slack` intervals apart, not even the first two. (The generic cell rate algorithm,
    with a tolerance under one interval.) The rate may change while turns are waited for.

    aiolimiter's `AsyncLimiter` paced the same way until this replaced it: it has no public
    way to change a rate in use (aiolimiter#98), and writing its private fields would break
    on any release.

    `clock` and `sleep` go together: the event loop's time and timers by default; a test's
    clock with a sleep that moves it. Waits on the loop's timers end early when the rate
    changes (and are counted again at the new rate); a given `sleep` is waited out.
    """

    def __init__(
        self, rate: float, slack: float, *, clock: Clock | None = None, sleep: Sleep | None = None
    ) -> None:
        if not (rate > 0 and 0 <= slack < 1):
            raise ValueError(f"a pacer needs rate > 0 and 0 <= slack < 1 (got {rate}, {slack})")
        self._interval = 1 / rate
        self._slack = slack
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep
        #: when the last turn's interval ends: the next turn may start `slack` before it
        self._due = -math.inf
        #: held by the turn being waited for (the others queue behind it, in order)
        self._turn = asyncio.Lock()
        #: the wait of that turn on the loop's timers, ended early by a change of rate
        self._alarm: asyncio.Future[None] | None = None

    @property
    def rate(self) -> float:
        return 1 / self._interval

    def _wait(self, now: float) -> float:
        """How long a turn asked for at `now` must wait (<= 0: none)."""
        return self._due - self._slack * self._interval - now

    def ready(self) -> bool:
        """Whether `acquire()` would return at once."""
        return not self._turn.locked() and self._wait(self._clock()) <= 0

    async def acquire(self) -> None:
        async with self._turn:
            while (wait := self._wait(now := self._clock())) > 0:
                await self._pause(wait)
            self._due = max(self._due, now) + self._interval

    def set_rate(self, rate: float) -> None:
        """Pace at `rate` from now on: what is left of the current interval is stretched
        (or shrunk) to the new rate."""
        now = self._clock()
        interval = 1 / rate
        if self._due > now:
            self._due = now + (self._due - now) * interval / self._interval
        self._interval = interval
        if self._alarm is not None:
            _ring(self._alarm)  # the turn waited for counts its wait again, at the new rate

    async def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        loop = asyncio.get_running_loop()
        alarm = self._alarm = loop.create_future()
        timer = loop.call_later(seconds, _ring, alarm)
        try:
            await alarm
        finally:
            timer.cancel()
            self._alarm = None


class AdaptiveLimiter:
    """Paces requests at `rate` (minus headroom); `rate=0` means no limit at all.

    Create it inside the running event loop (`from_settings` for a run's). Call `acquire()`
    before every attempt, and `rate_limited()` / `succeeded()` with what the server said.
    `clock` and `sleep` are the pacing's (see `Pacer`); the clock also times the 429s.
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
        recovery: float = 0.05,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.max_rate, self.min_rate, self.step = aimd_bounds(
            rate, headroom=headroom, min_rate=min_rate, recovery=recovery
        )
        self.rate = self.max_rate
        self.adaptive = adaptive and rate > 0
        self.cooldown = cooldown
        self.window = window
        self._last_429 = -1e9
        self.changes: list[RateChange] = []
        self._clock = clock or asyncio.get_running_loop().time
        self._start = self._clock()
        self._last_decrease = -1e9
        # Any rate + 1 consecutive requests span at least (rate - slack) / max_rate seconds,
        # about 1 + headroom - CATCH_UP: what is left of the headroom, about 13 ms at the
        # default, is how long a request may be held up on its way before the server could
        # count rate + 1 in one second (on loopback we measured up to 6 ms).
        slack = min(0.5, CATCH_UP * self.max_rate)
        self._pacer = Pacer(self.rate, slack, clock=self._clock, sleep=sleep) if rate > 0 else None

    @classmethod
    def from_settings(
        cls, limits: LimitSettings, *, clock: Clock | None = None, sleep: Sleep | None = None
    ) -> AdaptiveLimiter:
        """The limiter `limits` describe (its rate, headroom and AIMD knobs)."""
        return cls(
            limits.rate,
            headroom=limits.rate_headroom,
            adaptive=limits.adaptive,
            min_rate=limits.min_rate,
            cooldown=limits.rate_cooldown,
            window=limits.rate_window,
            recovery=limits.rate_recovery,
            clock=clock,
            sleep=sleep,
        )

    async def acquire(self) -> None:
        if self._pacer is not None:
            await self._pacer.acquire()

    def ready(self) -> bool:
        """Whether `acquire()` would return at once (no wait for a turn)."""
        return self._pacer is None or self._pacer.ready()

    def rate_limited(self) -> None:
        """The server answered 429. When 429s keep coming (a second one within `window`
        seconds), halve the rate, at most once per cooldown. A lone 429 only costs its retry:
        one request bunched up on the way is no reason to slow the whole run."""
        if not self.adaptive or self._pacer is None:
            return
        now = self._clock()
        previous, self._last_429 = self._last_429, now
        if now - previous > self.window or now - self._last_decrease < self.cooldown:
            return
        self._last_decrease = now
        self._set(max(self.rate / 2, self.min_rate), "429s from server")

    def succeeded(self) -> None:
        """An answer without 429: creep back up towards the configured rate."""
        if not self.adaptive or self._pacer is None or self.rate >= self.max_rate:
            return
        new = min(self.max_rate, self.rate + self.step / self.rate)
        # report the climb in whole steps, not on every request
        crossed = int(new / self.step) != int(self.rate / self.step) or new == self.max_rate
        self._set(new, "recovering", record=crossed)

    def _set(self, rate: float, reason: str, *, record: bool = True) -> None:
        assert self._pacer is not None
        self.rate = rate
        self._pacer.set_rate(rate)
        if record:
            self.changes.append(RateChange(round(self._clock() - self._start, 3), rate, reason))
