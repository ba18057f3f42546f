"""The daily request budget and the spent quota, shared through Redis by every job of one API
identity (`BudgetStore`'s shape).

What is shared: `NAMESPACE:budget:YYYY-MM-DD`, the requests counted on that UTC day, and
`NAMESPACE:quota`, until when (epoch seconds) the server said the quota is spent.

Guarantees: `reserve(daily)` is one Lua script that reads, checks and counts, so jobs on any
number of hosts never count past `daily` between them; the day is the server's (its `TIME`),
so host clocks do not split a day, and each day's count expires at the day's end.
`count_soon` (requests sent without a daily budget, for the record) is counted in the
background, and by `aclose()` at the latest. The quota only ever moves later.

When Redis goes away: `reserve` raises `StateLost` (nothing may be sent without a
reservation), and so do `quota_until`, `set_quota_until`, `requests_today` and `aclose`.
"""

from __future__ import annotations

import asyncio
import time

from .connection import SharedState, StateLost

__all__ = ["RedisBudget"]

#: a spent quota's key outlives its time by this much (ms): the check is the caller's clock
_QUOTA_MARGIN_MS = 60_000

# KEYS[1] the budget's key prefix; ARGV[1] the daily budget (-1: none, count only), ARGV[2]
# how many to count. The UTC date from the days since 1970 (H. Hinnant's civil_from_days).
_COUNT = """
local t = redis.call('TIME')
local days = math.floor(tonumber(t[1]) / 86400)
local z = days + 719468
local era = math.floor(z / 146097)
local doe = z - era * 146097
local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
local mp = math.floor((5 * doy + 2) / 153)
local d = doy - math.floor((153 * mp + 2) / 5) + 1
local m = mp < 10 and mp + 3 or mp - 9
local y = yoe + era * 400 + (m <= 2 and 1 or 0)
local key = KEYS[1] .. ':' .. string.format('%04d-%02d-%02d', y, m, d)
local n = tonumber(ARGV[2])
if n == 0 then return tonumber(redis.call('GET', key) or '0') end
local daily = tonumber(ARGV[1])
if daily >= 0 and tonumber(redis.call('GET', key) or '0') + n > daily then return -1 end
local count = redis.call('INCRBY', key, n)
redis.call('EXPIREAT', key, (days + 1) * 86400)
return count
"""

# KEYS[1] the quota's key; ARGV[1] until (epoch s), ARGV[2] its expiry (epoch ms)
_QUOTA = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > now then
    redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
end
return 1
"""


class RedisBudget:
    """The `BudgetStore` of the identity whose namespace is `namespace`."""

    def __init__(self, state: SharedState, namespace: str) -> None:
        self.state = state
        self.key = f"{namespace}:budget"
        self.quota_key = f"{namespace}:quota"
        self._count = state.client.register_script(_COUNT)
        self._quota = state.client.register_script(_QUOTA)
        self._unsaved = 0
        self._saving: asyncio.Task[None] | None = None
        self._lost: StateLost | None = None

    async def reserve(self, daily: int) -> bool:
        """Count one request today if that keeps today's count within `daily`: False, and
        nothing counted, if not. StateLost if the server is gone."""
        got = await self.state.call(self._count(keys=[self.key], args=[daily, 1]))
        return int(got) >= 0

    def count_soon(self, n: int) -> None:
        """Count `n` requests sent today, in the background."""
        self._unsaved += n
        if self._saving is None or self._saving.done():
            self._saving = asyncio.get_running_loop().create_task(self._save())

    async def _save(self) -> None:
        while self._unsaved and self._lost is None:
            n, self._unsaved = self._unsaved, 0
            try:
                await self.state.call(self._count(keys=[self.key], args=[-1, n]))
            except StateLost as exc:
                self._lost = exc
                self._unsaved += n

    async def requests_today(self) -> int:
        """Requests counted today (the server's UTC day) by every job of the identity."""
        return int(await self.state.call(self._count(keys=[self.key], args=[-1, 0])))

    async def quota_until(self, longest: float) -> float | None:
        """Until when the quota is spent, if that is still ahead (at most `longest` s away)."""
        raw = await self.state.call(self.state.client.get(self.quota_key))
        if raw is None:
            return None
        now = time.time()
        until = float(raw)
        if until <= now:
            return None
        return until if until <= now + longest else now + longest

    async def set_quota_until(self, until: float) -> None:
        """The server said the quota is spent until `until` (epoch seconds)."""
        expires = int(until * 1000) + _QUOTA_MARGIN_MS
        await self.state.call(self._quota(keys=[self.quota_key], args=[repr(until), expires]))

    async def aclose(self) -> None:
        """Count what `count_soon` was given. StateLost if it could not be counted."""
        if self._saving is not None:
            await self._saving
        await self._save()
        if self._lost is not None:
            raise self._lost
