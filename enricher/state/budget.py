"""The request budget: at most N requests this run, at most `daily_budget` a UTC day, and none
while the server says our quota is spent.

Every HTTP attempt takes one unit before it is sent, retries included. The day's count lives
in the cache database, per API identity, so runs on the same day share it: with a daily
budget each unit is reserved there in a transaction that checks and counts, so that runs
going at once never send more than the budget between them (without one, the count is kept
for later runs, written in the background). A quota the server said was spent (a 429 with a
Retry-After past `retry.max_wait`) is kept there too, so no run sends before it is open again.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from ..errors import BudgetSpent, QuotaExhausted, SettingsError
from ..threads import call_in_thread
from .answers import Cache
from .ports import BudgetStore

__all__ = ["Budget", "SqliteBudget", "quota_exhausted", "utc_time"]

SPENT = "the request budget is spent"


def utc_time(when: float) -> str:
    """Epoch seconds as an ISO-8601 UTC time (`2026-12-01T10:15:00Z`)."""
    try:
        text = datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):  # a time an earlier release stored
        return "a time out of range"
    return text.replace("+00:00", "Z")


def quota_exhausted(until: float) -> QuotaExhausted:
    """The error that stops sending until `until` (epoch seconds), saying when in UTC."""
    return QuotaExhausted(f"quota exhausted until {utc_time(until)}", until)


class SqliteBudget(BudgetStore):
    """The `BudgetStore` of the state file: its budget and quota tables, for the identity the
    cache is bound to; each call that may wait for another process's lock in a thread."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def reserve(self, daily: int) -> bool:
        # in a thread: the transaction may wait for another run's write (one a stop walks
        # away from: asyncio.to_thread's pool is joined at exit)
        cache = self._cache
        return await call_in_thread(lambda: cache.reserve_request(daily), name="budget")

    def count_soon(self, n: int) -> None:
        self._cache.count_soon(n)  # on the event loop: never waits for the writer

    async def quota_until(self, longest: float) -> float | None:
        cache = self._cache
        return await call_in_thread(lambda: cache.quota_until(longest), name="quota")

    async def set_quota_until(self, until: float) -> None:
        cache = self._cache
        await call_in_thread(lambda: cache.set_quota_until(until), name="quota")


class Budget:
    """What one owner's runs may send: `max_requests` of their own, `daily` a day in the
    store (`cache`: a `BudgetStore`, or the state file's `Cache`, whose tables are used),
    and nothing while the store says the quota is spent."""

    def __init__(
        self,
        *,
        max_requests: int | None = None,
        daily: int | None = None,
        cache: BudgetStore | Cache | None = None,
        longest_quota: float = 2 * 86400.0,
    ) -> None:
        if daily and cache is None:
            # a budget that is counted nowhere would not hold: never silently dropped
            raise SettingsError("limits.daily_budget is counted in the state file: give it one")
        self._store = SqliteBudget(cache) if isinstance(cache, Cache) else cache
        #: requests this run may still send (None: no limit of its own)
        self.remaining: int | None = max_requests
        self.daily = daily or None
        #: until when the server said the quota of this API identity is spent (at most
        #: `longest_quota` seconds from now: retry.max_quota_wait), once read from the store
        self.quota_until: float | None = None
        self._longest_quota = longest_quota
        self._stored_quota: asyncio.Task[float | None] | None = None
        self.used = 0
        self._unsaved = 0

    @property
    def limited(self) -> bool:
        return self.remaining is not None or self.daily is not None

    async def _read_quota(self, store: BudgetStore) -> None:
        """The spent quota the store holds, read once (by the first taker; the others wait
        for it: none may send before it is known)."""
        if self._stored_quota is None:
            self._stored_quota = asyncio.ensure_future(store.quota_until(self._longest_quota))
        stored = await asyncio.shield(self._stored_quota)
        if stored is not None:
            self.quota_until = max(stored, self.quota_until or 0.0)

    async def take(self) -> None:
        """One request's worth; BudgetSpent when there is none left (QuotaExhausted while
        the quota is spent)."""
        store = self._store
        if store is not None and (self._stored_quota is None or not self._stored_quota.done()):
            await self._read_quota(store)
        if self.quota_until is not None and time.time() < self.quota_until:
            raise quota_exhausted(self.quota_until)
        if self.remaining is not None:
            if self.remaining <= 0:
                raise BudgetSpent(SPENT)
            self.remaining -= 1  # before the await: concurrent takers see it gone
        if self.daily is not None and store is not None:
            try:
                reserved = await store.reserve(self.daily)
            except BaseException:
                self._give_back()
                raise
            if not reserved:
                self._give_back()
                raise BudgetSpent(SPENT)
        else:
            self._unsaved += 1
            if self._unsaved >= 50:
                self.save()
        self.used += 1

    def _give_back(self) -> None:
        if self.remaining is not None:
            self.remaining += 1

    async def quota_spent(self, until: float) -> None:
        """The server says the quota is spent until `until`: kept for the runs to come."""
        self.quota_until = max(until, self.quota_until or 0.0)
        if self._store is not None:
            await self._store.set_quota_until(until)

    def save(self) -> None:
        """Hand what was sent since the last save, and not reserved, to the store to add to
        today's count (never waits: the store counts it as it closes at the latest)."""
        if self._store is not None and self._unsaved:
            self._store.count_soon(self._unsaved)
        self._unsaved = 0
