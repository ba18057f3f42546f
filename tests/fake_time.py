"""A clock that moves only when something sleeps on it: tests of waits that wait for nothing.

`FakeTime()` is the clock (call it for the time) and `FakeTime.sleep` the sleep to give the
code under test beside it. A sleep moves the clock on by its length at once, then lets the
other tasks run: it stands for the event loop's clock wherever one task at a time sleeps (the
pacer's turn, one batch's backoff).
"""

from __future__ import annotations

import asyncio


class FakeTime:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        #: every sleep asked for, in order
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)
