"""How a run is stopped from outside: SIGINT, SIGTERM and SIGHUP (a closed terminal, or a
scheduler's stop).

The first signal stops gracefully: read no more, send nothing new, let requests in flight
finish for the grace period, defer the rest. Past the grace period, or at a second signal,
the run stops at once, walking away from any output that cannot take what is left (a pipe
nobody reads, a stalled disk). Before the pipeline starts (opening the cache, reading what an
earlier run wrote), the blocking work runs in a thread the stop walks away from, so a signal
is answered within moments whatever the run is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType, TracebackType
from typing import Any, Protocol, Self, TypeVar

from ..threads import Abandoned, call_in_thread
from .lifecycle import SIGNALS

__all__ = ["SIGNALS", "Stopper"]

log = logging.getLogger("enricher")

R = TypeVar("R")


class _Stoppable(Protocol):
    def stop(self, *, now: bool = False) -> None: ...

    @property
    def in_flight(self) -> int: ...


class _Abandonable(Protocol):
    @property
    def busy(self) -> bool: ...

    @property
    def lines(self) -> int: ...

    def abandon(self) -> None: ...


#: once no request is in flight, how long outputs may go without taking a line before a
#: stopping run walks away from them (a reader that stopped reading will not start again)
STALL = 1.0

#: how long past its grace period a stop still waits for the state to close (a stop at once
#: walks away from the outputs, not from the state: its answers and counts are kept)
CLOSING = 1.0


class Stopper:
    """Signal handling for one run (a context manager on the running loop).

    `attach` hands it the pipeline and the outputs once they exist; until then a signal
    interrupts what `blocking` runs. `received` counts the signals.
    """

    def __init__(self, grace_period: float) -> None:
        self.grace_period = grace_period
        self.received = 0
        self._stopping = asyncio.Event()
        self._now = asyncio.Event()  # stopping at once: past the grace period, or signalled twice
        # signalled twice, or the grace period and `CLOSING` over: the state is walked away from
        self._give_up = asyncio.Event()
        self._closing: asyncio.TimerHandle | None = None
        self._pipeline: _Stoppable | None = None
        self._outputs: Sequence[_Abandonable] = ()
        self._deadline: asyncio.TimerHandle | None = None
        self._watch: asyncio.Task[None] | None = None
        self._installed: list[int] = []
        self._before: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._before = {sig: signal.getsignal(sig) for sig in SIGNALS}
        for sig in SIGNALS:
            # not on this platform, or not in the main thread (asyncio says RuntimeError,
            # uvloop ValueError): the run goes on without graceful stop
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal)
                self._installed.append(sig)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._closing is not None:
            self._closing.cancel()
        if self._watch is not None:
            self._watch.cancel()
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
            # remove_signal_handler leaves SIG_DFL (a SIGTERM would kill the process with no
            # word, exit 143): the handler from before comes back (see `lifecycle`)
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, self._before[sig])
        self._installed.clear()

    @property
    def stopping(self) -> bool:
        return self.received > 0

    def attach(self, pipeline: _Stoppable, outputs: Sequence[_Abandonable]) -> None:
        self._pipeline = pipeline
        self._outputs = outputs

    async def blocking(self, fn: Callable[[], R], *, name: str) -> R:
        """`fn()` in a thread; raises `threads.Abandoned` if a signal comes first."""
        return await call_in_thread(fn, name=name, until=self._stopping)

    async def awaiting(self, aw: Awaitable[R]) -> R:
        """`aw`'s result; raises `threads.Abandoned` (and `aw` is cancelled: a thread it
        waits for is left behind) if a signal comes first."""
        return await _unless(aw, self._stopping)

    async def finishing(self, aw: Awaitable[R]) -> R:
        """`aw`'s result, to finish the run (closing the state): waited for, unless a second
        signal comes, or the first one's grace period and `CLOSING` run out (whether the
        signal came before `finishing` or during it); then `threads.Abandoned` (and `aw` is
        cancelled). A run that stopped at once because its outputs took nothing (a pipe
        nobody reads) or its grace period ran out still closes its state: that waits for
        neither."""
        return await _unless(aw, self._give_up)

    def stop_now(self) -> None:
        """Stop every stage at once, and walk away from outputs still writing."""
        self._now.set()
        if self._pipeline is not None:
            self._pipeline.stop(now=True)
        for output in self._outputs:
            if output.busy:
                output.abandon()

    def _on_signal(self) -> None:
        self.received += 1
        self._stopping.set()
        if self.received > 1:
            self._give_up.set()
            self.stop_now()
            return
        self._closing = asyncio.get_running_loop().call_later(
            self.grace_period + CLOSING, self._give_up.set
        )
        if self._pipeline is None:
            log.error("stopping before the run started")
            return
        log.error(
            "stopping: letting requests in flight finish (up to %.0f s); "
            "signal again to stop at once",
            self.grace_period,
        )
        self._pipeline.stop()
        self._deadline = asyncio.get_running_loop().call_later(self.grace_period, self.stop_now)
        self._watch = asyncio.create_task(self._stop_when_stalled())

    async def _stop_when_stalled(self) -> None:
        """The grace period is for requests in flight: once there are none, stop as soon as
        the outputs have taken nothing for `STALL` seconds, rather than wait it out."""
        step = STALL / 4
        still = 0.0
        last: tuple[int, ...] = ()
        while True:
            await asyncio.sleep(step)
            taken = tuple(o.lines for o in self._outputs)
            pipeline = self._pipeline
            idle = pipeline is not None and pipeline.in_flight == 0
            still = still + step if idle and taken == last else 0.0
            last = taken
            if still >= STALL and any(o.busy for o in self._outputs):
                self.stop_now()
                return


async def _unless(aw: Awaitable[R], event: asyncio.Event) -> R:
    """`aw`'s result, unless `event` is set first: then `aw` is cancelled and `Abandoned`
    raised."""
    task = asyncio.ensure_future(aw)
    stop = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        raise Abandoned
    return task.result()
