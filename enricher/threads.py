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
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterable, Iterator
from typing import Generic, TypeVar

import janus

__all__ = ["Abandoned", "Drain", "batches_in_thread", "call_in_thread", "iterate_in_thread"]

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


async def batches_in_thread(
    items: Iterable[T], *, size: int, name: str, left: list[T] | None = None
) -> AsyncGenerator[list[T], None]:
    """The items of a blocking iterable (a generator reading a socket, a database cursor),
    pulled by a daemon thread: each list holds what has arrived, at most `size` items, so a
    fast iterable gives full lists and a slow one still flows item by item.

    The thread runs at most `2 * size` items ahead. An exception the iterable raises is
    raised here after every item before it. Leaving early stops the thread at its next item
    (a thread blocked inside the iterable is left to end with the process); the items it
    had pulled and not handed out are appended to `left`, if given (an item the iterable
    was producing as the consumer left is appended when it comes, if it comes).
    """
    loop = asyncio.get_running_loop()
    buf: deque[T] = deque()
    lock = threading.Condition()  # the thread waits on it while `buf` is full
    wake = asyncio.Event()  # set (from the thread) when the loop waits and something came
    # under `lock`: [loop waiting, thread finished, consumer gone]
    flags = [False, False, False]
    error: list[BaseException] = []

    def notify() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(wake.set)

    def produce() -> None:
        iterator: Iterator[T] | None = None
        try:
            iterator = iter(items)
            while True:
                # room first, then the next item: a thread waiting for room holds none
                with lock:
                    while len(buf) >= 2 * size and not flags[2]:
                        lock.wait()
                    if flags[2]:
                        break
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                with lock:
                    if flags[2]:
                        if left is not None:
                            left.append(item)  # pulled from the iterable: not to be lost
                        break
                    buf.append(item)
                    waiting, flags[0] = flags[0], False
                if waiting:
                    notify()
        except BaseException as exc:  # handed to the consumer, raised there
            error.append(exc)
        finally:
            if isinstance(iterator, Generator):
                iterator.close()
            with lock:
                flags[1] = True
                waiting, flags[0] = flags[0], False
            if waiting:
                notify()

    threading.Thread(target=produce, name=name, daemon=True).start()
    try:
        while True:
            with lock:
                batch = [buf.popleft() for _ in range(min(len(buf), size))]
                if batch:
                    lock.notify()
                elif flags[1]:
                    break
                else:
                    flags[0] = True
                    wake.clear()
            if batch:
                yield batch
            else:
                await wake.wait()
        if error:
            raise error[0]
    finally:
        with lock:
            flags[2] = True
            if left is not None:
                left.extend(buf)
                buf.clear()
            lock.notify()


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
