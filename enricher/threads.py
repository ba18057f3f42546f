"""Blocking work in daemon threads, joined to the event loop by bounded queues.

Reading a pipe, writing a file and parsing a block all block; none of it may run on the event
loop, or a signal would wait for it (a `tail -f` on stdin, a reader that stopped reading our
stdout, a disk that stalls). Each such job runs in a daemon thread of its own and talks to the
loop through a bounded `janus` queue (a blocking face for the thread, an awaitable one for the
loop), so:

- back-pressure still works both ways (a full queue blocks the thread, or suspends the
  coroutine without blocking the loop);
- a stop never waits for the thread: the queue is shut down, which wakes a thread blocked on
  it, and a thread blocked in the operating system (a read with nothing to read, a write to a
  full pipe) is left behind; being a daemon, it does not keep the process alive.

`asyncio.to_thread` would not do: its pool's threads are joined when the loop closes, so a
thread stuck in `read()` would keep the process alive after the run is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Generic, TypeVar

import janus

__all__ = ["Abandoned", "Drain", "call_in_thread", "iterate_in_thread"]

T = TypeVar("T")
R = TypeVar("R")


class Abandoned(Exception):
    """A call in a thread was walked away from (the run was stopped meanwhile)."""


class _End:
    """The producer's last item: its generator ended, or raised `error`."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def iterate_in_thread(gen: Iterator[T], *, name: str, maxsize: int = 2) -> AsyncIterator[T]:
    """The items of a blocking generator, made ahead (up to `maxsize`) by a daemon thread.

    An exception the generator raises is raised here, after the items before it. Leaving the
    loop early (break, cancellation) shuts the queue down: the thread stops at its next item
    and closes the generator; if it is blocked in a read, it is left to end with the process.
    """
    q: janus.Queue[T | _End] = janus.Queue(maxsize)

    def produce() -> None:
        end = _End()
        try:
            for item in gen:
                q.sync_q.put(item)
        except janus.SyncQueueShutDown:
            pass  # the consumer has gone
        except BaseException as exc:  # handed to the consumer, raised there
            end = _End(exc)
        finally:
            if isinstance(gen, Generator):
                gen.close()
        with contextlib.suppress(janus.SyncQueueShutDown):
            q.sync_q.put(end)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = await q.async_q.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        q.shutdown(immediate=True)


class Drain(Generic[T]):
    """Items handed over by the loop (`await put`) and consumed by `handle` in a daemon thread,
    in order.

    The first exception `handle` raises is kept in `error` (and passed to `on_error`, called
    on the loop); later items are dropped. `close()` waits until everything handed over is
    handled; `abandon()` shuts the queue at once, leaving a thread blocked in `handle` behind.
    """

    def __init__(
        self,
        handle: Callable[[T], None],
        *,
        name: str,
        maxsize: int = 8,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle = handle
        self._on_error = on_error
        self._q: janus.Queue[T] = janus.Queue(maxsize)
        self.error: BaseException | None = None
        self.abandoned = False
        self._abandon = asyncio.Event()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        get, done = self._q.sync_q.get, self._q.sync_q.task_done
        while True:
            try:
                item = get()
            except janus.SyncQueueShutDown:
                return
            if self.error is None:
                try:
                    self._handle(item)
                except BaseException as exc:
                    self.error = exc
                    if self._on_error is not None and not self._loop.is_closed():
                        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                            self._loop.call_soon_threadsafe(self._on_error, exc)
            done()

    async def put(self, item: T) -> None:
        """Hand an item over; waits (without blocking the loop) while the queue is full.
        Raises the error `handle` met, if it met one, and `janus.AsyncQueueShutDown` once
        abandoned."""
        if self.error is not None:
            raise self.error
        await self._q.async_q.put(item)

    async def close(self) -> None:
        """Wait until every item handed over is handled (at once, if abandoned), then let
        the thread end."""
        if not self.abandoned:
            joined = asyncio.ensure_future(self._q.async_q.join())
            abandoned = asyncio.ensure_future(self._abandon.wait())
            try:
                await asyncio.wait((joined, abandoned), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for f in (joined, abandoned):
                    f.cancel()
                await asyncio.gather(joined, abandoned, return_exceptions=True)
        self._q.shutdown()

    @property
    def pending(self) -> int:
        """Items handed over and not yet handled (0 once abandoned)."""
        return 0 if self.abandoned else self._q.sync_q.unfinished_tasks

    def abandon(self) -> None:
        """Stop now: items not yet handled are dropped, a `put` or `close` waiting returns or
        raises, and a thread blocked in `handle` is left behind."""
        self.abandoned = True
        self._abandon.set()
        self._q.shutdown(immediate=True)


async def call_in_thread(
    fn: Callable[[], R], *, name: str, until: asyncio.Event | None = None
) -> R:
    """`fn()` in a daemon thread; its result, or `Abandoned` as soon as `until` is set first.
    Cancelled, or abandoned, the caller goes on at once and the thread is left to finish (or
    to end with the process): unlike `asyncio.to_thread`, whose pool is joined when the loop
    closes, nothing waits for it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[R] = loop.create_future()

    def settle(result: R | None, error: BaseException | None) -> None:
        if not done.done():
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    if until is not None and until.is_set():
        raise Abandoned
    threading.Thread(target=work, name=name, daemon=True).start()
    if until is None:
        return await done
    stopped = asyncio.ensure_future(until.wait())
    try:
        await asyncio.wait((done, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if done.done():
        return done.result()
    done.cancel()
    raise Abandoned
