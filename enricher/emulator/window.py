"""Counting over a 1-second sliding window: the rate limit, and the peaks the stats report.

A window is half-open, (t - 1.0, t]: an event at exactly t - 1.0 has already left it. The
largest count over every possible window is reached by a window that ends at an event, so
checking at each event is enough to find the peak.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["WINDOW_SECONDS", "PeakCounter", "RateWindow", "retry_after_seconds"]

WINDOW_SECONDS = 1.0


class PeakCounter:
    """Remembers the largest number of events seen in any 1-second window."""

    __slots__ = ("_times", "peak")

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self.peak = 0

    def add(self, now: float) -> None:
        times = self._times
        times.append(now)
        horizon = now - WINDOW_SECONDS
        while times[0] <= horizon:
            times.popleft()
        if len(times) > self.peak:
            self.peak = len(times)

    def clear(self) -> None:
        self._times.clear()
        self.peak = 0


class RateWindow:
    """Admits at most `limit` requests in any 1-second window (no limit when None)."""

    __slots__ = ("_accepted", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._accepted: deque[float] = deque()

    def admit(self, now: float) -> float | None:
        """Accept a request arriving at `now` (None), or refuse it: the seconds until the
        oldest accepted request leaves the window and a slot frees up."""
        if self.limit is None:
            return None
        accepted = self._accepted
        horizon = now - WINDOW_SECONDS
        while accepted and accepted[0] <= horizon:
            accepted.popleft()
        if len(accepted) >= self.limit:
            return accepted[0] - horizon
        accepted.append(now)
        return None


def retry_after_seconds(wait: float) -> int:
    """The integer `Retry-After` for a wait: rounded up, and never 0 (which means "now")."""
    return max(1, math.ceil(wait))
