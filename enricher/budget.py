"""The request budget: at most N requests this run, and at most `daily_budget` a UTC day.

Every HTTP attempt takes one unit before it is sent, retries included. The day's count lives
in the cache database, so runs on the same day share it.
"""

from __future__ import annotations

from .cache import Cache

__all__ = ["Budget"]


class Budget:
    def __init__(
        self,
        *,
        max_requests: int | None = None,
        daily: int | None = None,
        cache: Cache | None = None,
    ) -> None:
        self._cache = cache
        limits = []
        if max_requests is not None:
            limits.append(max_requests)
        if daily and cache is not None:
            self.used_before_today = cache.requests_today()
            limits.append(max(0, daily - self.used_before_today))
        self.remaining: int | None = min(limits) if limits else None
        self.used = 0
        self._unsaved = 0

    @property
    def limited(self) -> bool:
        return self.remaining is not None

    def take(self) -> bool:
        """One request's worth, or False when the budget is spent."""
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
        self.used += 1
        self._unsaved += 1
        if self._unsaved >= 50:
            self.save()
        return True

    def save(self) -> None:
        """Add what was used since the last save to today's count in the cache."""
        if self._cache is not None and self._unsaved:
            self._cache.add_requests(self._unsaved)
        self._unsaved = 0
