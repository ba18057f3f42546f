"""One rate limiter shared by every process and host that uses the same Redis and API identity.

What is shared: the pacing and the adaptive rate. Turns are handed out by the server, by a
short Lua script (GCRA, "virtual scheduling"): the key `NAMESPACE:limiter` holds when the
next turn is due (`tat`, microseconds of the server's `TIME`) and the AIMD `share`: the part
of each caller's own rate now in force (1: nothing taken off). A caller is given the turn
`max(tat, now)` and the script moves `tat` one interval (`1 / (share * its rate)`) on; the
caller sleeps until its turn on its own clock (only the wait, never a time of day, crosses
machines: host clocks do not matter). Turns are therefore exactly one interval apart in the
server's time, first asked first served across processes, with no start-up burst (the first
two turns are one interval apart too), and lateness does not add up (turns are absolute).

AIMD is shared the same way, with `AdaptiveLimiter`'s policy and defaults: a 429 within
`window` seconds of the previous one (from any job) halves the shared rate, at most once a
`cooldown`, and every answer without 429 adds `step / rate` (so the jobs together regain
`step` requests/s each second). One job's 429s slow every job. 429s go to the server at once
(a task of their own); successes ride along with the next `acquire()` (no round trip of
their own), and `aclose()` sends what is left.

Guarantees: no two turns handed out closer than the interval of the rate then in force; a
turn given up (a cancelled wait) is not handed out again. A job with a lower `rate` than
another's slows the others by the turns it takes (each spaced by its own rate) while it
runs, and leaves nothing behind: what is kept is a share, not a rate (a kept rate let one
`enricher lookup --rate 1` hold every job after it near 1/s, climbing back at `step` a
second: /tmp/attack15r/13_low_rate_poisons.sh, 60 requests at --rate 20 took 17 s). Give
every job of one API key the key's rate. The key expires after `_IDLE_MS` without a turn,
so the next night starts at the full rate.

When Redis goes away: `acquire()` (and `aclose()`) raise `StateLost`, as do later calls after
a 429 or a success could not be reported: the caller stops sending and defers the rest.

Why not a library: pyrate-limiter's Redis buckets (3.x `RedisBucket`: a sorted-set log per
window; 4.x `RedisStateStore` with `GCRA`) take `now` from the caller's clock (host clocks
would matter), and answer "admitted or retry in N ms": waiting callers poll and race, with
no first-come order, and a rate fixed per bucket leaves no way to share AIMD; the 3.x window
log also lets a whole window's count through at once (a start-up burst). Reserving a turn
in one round trip, from the server's clock, with the rate beside it, is the 40 lines below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

from ...api.ratelimit import RateChange, aimd_bounds
from .connection import SharedState, StateLost

__all__ = ["RedisLimiter"]

#: the limiter's key expires after this long without a turn (ms)
_IDLE_MS = 600_000
#: successes carried by one `acquire()` at most (more are carried by the next ones)
_CARRY = 1000
#: why the rate went down, in the summary: this job's 429s, or another's
_OURS = "429s from server"
_THEIRS = "429s from server (another job)"

# KEYS[1] the limiter's hash, KEYS[2] the key identities are hashed under (`PREFIX:key`);
# ARGV: max rate, recovery step, successes to apply, idle ms, that key. Each turn makes it
# again if it went (evicted by a full Redis under an allkeys-* policy, a FLUSHDB) and keeps
# it recently used: a job starting later must find the same one, or its fingerprint, hence
# its limiter, budget and answers, would not be the running jobs'. Returns {turn, now} in
# µs of the server's clock and the rate, as strings (a Lua number in a reply is cut to an
# integer, and %.0f keeps every digit of a µs time). `share` is the part of the caller's
# max rate in force (absent: 1), the same for callers of any rate.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_rate = tonumber(ARGV[1])
local step = tonumber(ARGV[2])
redis.call('SET', KEYS[2], ARGV[5], 'NX')
local s = redis.call('HMGET', KEYS[1], 'tat', 'share')
local tat = tonumber(s[1]) or 0
local rate = math.min(tonumber(s[2]) or 1, 1) * max_rate
for _ = 1, tonumber(ARGV[3]) do
    if rate >= max_rate then break end
    rate = math.min(max_rate, rate + step / rate)
end
local turn = math.max(tat, now)
local nxt = turn + math.floor(1000000 / rate + 0.5)
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', nxt),
    'share', string.format('%.17g', rate / max_rate))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {string.format('%.0f', turn), string.format('%.0f', now), string.format('%.17g', rate)}
"""

# KEYS[1] the limiter's hash; ARGV: max rate, min rate, window µs, cooldown µs, idle ms.
# Returns {1 if this call halved the rate else 0, the rate}.
_RATE_LIMITED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_rate = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'share', 'last429', 'lastdec', 'tat')
local rate = math.min(tonumber(s[1]) or 1, 1) * max_rate
local previous = tonumber(s[2])
local lastdec = tonumber(s[3])
redis.call('HSET', KEYS[1], 'last429', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if previous == nil or now - previous > tonumber(ARGV[3])
        or (lastdec ~= nil and now - lastdec < tonumber(ARGV[4])) then
    return {0, string.format('%.17g', rate)}
end
local new = math.max(rate / 2, tonumber(ARGV[2]))
local tat = tonumber(s[4])
if tat ~= nil and tat > now then
    -- what is left of the current interval is stretched to the new rate
    tat = now + (tat - now) * rate / new
    redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
end
redis.call('HSET', KEYS[1], 'share', string.format('%.17g', new / max_rate),
    'lastdec', string.format('%.0f', now))
return {1, string.format('%.17g', new)}
"""


class RedisLimiter:
    """`AdaptiveLimiter`'s shape (`acquire`, `ready`, `rate_limited`, `succeeded`,
    `changes`), its turns and rate shared through `state` under `namespace` (see
    `SharedState.admit`). `rate` is the configured rate of the API key (requests/s, less
    `headroom`); 0 means no limit (nothing is asked of the server). Make it inside the
    running event loop; `aclose()` it at the end."""

    def __init__(
        self,
        state: SharedState,
        namespace: str,
        rate: float,
        *,
        headroom: float = 0.0,
        adaptive: bool = True,
        min_rate: float = 0.2,
        cooldown: float = 2.0,
        window: float = 10.0,
        recovery: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.state = state
        self.key = f"{namespace}:limiter"
        self.max_rate, self.min_rate, self.step = aimd_bounds(
            rate, headroom=headroom, min_rate=min_rate, recovery=recovery
        )
        self.rate = self.max_rate
        self.limited = rate > 0
        self.adaptive = adaptive and self.limited
        self.cooldown = cooldown
        self.window = window
        self.changes: list[RateChange] = []
        #: the last turn this process was given, µs of the server's clock (for tests)
        self.last_turn = 0
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._successes = 0
        self._reports: set[asyncio.Task[None]] = set()
        self._lost: StateLost | None = None
        client = state.client
        self._acquire = client.register_script(_ACQUIRE)
        self._rate_limited = client.register_script(_RATE_LIMITED)

    def ready(self) -> bool:
        """Whether `acquire()` returns at once: only without a limit (a shared turn is the
        server's to give)."""
        return not self.limited

    async def acquire(self) -> None:
        """Wait for this attempt's turn. StateLost if the server is gone."""
        if not self.limited:
            return
        if self._lost is not None:
            raise self._lost
        carried = min(self._successes, _CARRY) if self.adaptive else 0
        self._successes -= carried
        reply = await self.state.call(
            self._acquire(
                keys=[self.key, f"{self.state.prefix}:key"],
                args=[self.max_rate, self.step, carried, _IDLE_MS, self.state.identity_key],
            )
        )
        turn, now, rate = int(reply[0]), int(reply[1]), float(reply[2])
        self.last_turn = turn
        self._observe(rate, halved=False)
        if turn > now:
            await self._sleep((turn - now) / 1e6)

    def rate_limited(self) -> None:
        """The server answered 429: told to the shared limiter at once (in a task)."""
        if not self.adaptive:
            return
        task = asyncio.get_running_loop().create_task(self._report_429())
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _report_429(self) -> None:
        args = [self.max_rate, self.min_rate, self.window * 1e6, self.cooldown * 1e6, _IDLE_MS]
        try:
            reply = await self.state.call(self._rate_limited(keys=[self.key], args=args))
        except StateLost as exc:
            self._lost = exc
            return
        self._observe(float(reply[1]), halved=bool(int(reply[0])))

    def succeeded(self) -> None:
        """An answer without 429: the shared rate creeps back up (with the next turn)."""
        if self.adaptive and self.rate < self.max_rate:
            self._successes += 1

    def _observe(self, rate: float, *, halved: bool) -> None:
        """The shared rate as the server just said it: a change is recorded for the summary
        (a climb in whole steps only, as AdaptiveLimiter does)."""
        old, self.rate = self.rate, rate
        if halved and rate >= old and self.changes and self.changes[-1].reason == _THEIRS:
            # a turn taken meanwhile saw the halving first, and took it for another job's
            self.changes[-1] = dataclasses.replace(self.changes[-1], reason=_OURS)
            return
        if rate < old:
            reason = _OURS if halved else _THEIRS
        elif rate > old and (
            int(rate / self.step) != int(old / self.step) or rate == self.max_rate
        ):
            reason = "recovering"
        else:
            return
        at = round(self._clock() - self._start, 3)
        self.changes.append(RateChange(at, rate, reason))

    async def aclose(self) -> None:
        """Wait for the 429s being reported, and report the successes not carried yet."""
        if self._reports:
            await asyncio.gather(*self._reports)
        while self.limited and self._successes and self._lost is None and self.rate < self.max_rate:
            carried = min(self._successes, _CARRY)
            self._successes -= carried
            # a turn's script with nothing to pace would take a turn: apply them alone
            await self.state.call(
                self.state.client.eval(
                    _RECOVER, 1, self.key, self.max_rate, self.step, carried, _IDLE_MS
                )
            )
        if self._lost is not None:
            raise self._lost


# the successes of `_ACQUIRE` without taking a turn (KEYS and ARGV as there)
_RECOVER = """
local s = redis.call('HGET', KEYS[1], 'share')
if not s then return 0 end
local max_rate = tonumber(ARGV[1])
local rate = math.min(tonumber(s), 1) * max_rate
for _ = 1, tonumber(ARGV[3]) do
    if rate >= max_rate then break end
    rate = math.min(max_rate, rate + tonumber(ARGV[2]) / rate)
end
redis.call('HSET', KEYS[1], 'share', string.format('%.17g', rate / max_rate))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
