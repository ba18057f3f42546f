"""The library's input: an iterable of IOC strings read as numbered chunks, and, when a run
stops before the input's end, what the run did not read.

A collection (a list, a tuple, a set: anything with a length) is finite and can be walked
again: what a stopped run did not read is walked, so that each IOC in it still comes out
(deferred, never sent). An iterator (a generator, a cursor, an async generator) may be
endless and cannot be walked again: a stopped run gives back what it had pulled from it and
not read, then closes it; what the iterator never yielded, the run never saw (`unread`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterable, Collection, Iterable, Sequence

from ..inputs import Chunk
from ..threads import batches_in_thread

__all__ = ["IocSource"]


class IocSource:
    """`iocs` as chunks of at most `size` items, numbered by their position (`chunks`); once
    the run is over, what it did not take (`rest`)."""

    def __init__(self, iocs: Iterable[str] | AsyncIterable[str], size: int = 1000) -> None:
        self._iocs = iocs
        self._size = size
        #: items handed out in chunks
        self._taken = 0
        #: items pulled from an iterator and not handed out, when the run stopped first
        self._pulled: list[object] = []
        self._ended = False  # read to its end (or to the error it raised)
        self._gen: AsyncGenerator[Chunk, None] | None = None

    @property
    def unread(self) -> bool:
        """Whether an iterator was closed before its end (what it did not yield, no run saw)."""
        return not self._ended and not isinstance(self._iocs, Collection)

    def chunks(self) -> AsyncGenerator[Chunk, None]:
        """The input as chunks, for the run to read.

        A list or tuple is sliced as it is. Any other iterable may block (a generator reading
        a socket): it is pulled in a thread of its own, never on the event loop. An async
        source is pumped by a task into a queue. Either way each chunk takes whatever has
        arrived: a fast source fills whole chunks, a slow one still flows item by item, and
        what came before a source raised is enriched before the error is.
        """
        self._gen = self._read()
        return self._gen

    def _chunk(self, items: Sequence[object]) -> Chunk:
        chunk = _chunk_of(items, self._taken + 1)
        self._taken += len(items)
        return chunk

    async def _read(self) -> AsyncGenerator[Chunk, None]:
        iocs, size = self._iocs, self._size
        if isinstance(iocs, list | tuple):
            while self._taken < len(iocs):
                yield self._chunk(iocs[self._taken : self._taken + size])
            self._ended = True
            return
        if not isinstance(iocs, AsyncIterable):
            batches = batches_in_thread(iocs, size=size, name="enrich input", left=self._pulled)
            async with contextlib.aclosing(batches):
                try:
                    async for items in batches:
                        yield self._chunk(items)
                except Exception:
                    self._ended = True
                    raise
            self._ended = True
            return
        async with contextlib.aclosing(self._pump(iocs)) as pumped:
            async for chunk in pumped:
                yield chunk

    async def _pump(self, iocs: AsyncIterable[str]) -> AsyncGenerator[Chunk, None]:
        end = object()
        size = self._size
        q: asyncio.Queue[object] = asyncio.Queue(size * 2)
        failure: list[BaseException] = []
        holding: list[object] = []  # the item `pump` waits to put

        async def pump() -> None:
            try:
                async for item in iocs:
                    holding.append(item)
                    await q.put(item)
                    holding.clear()
            except (Exception, KeyboardInterrupt, SystemExit) as exc:
                # raised by the reader, after what came before (Ctrl-C: the run stops)
                failure.append(exc)
            # not on cancellation: then nobody is left to take it
            await q.put(end)

        task = asyncio.create_task(pump())
        try:
            while True:
                batch: list[object] = [await q.get()]
                while len(batch) < size and not q.empty():
                    batch.append(q.get_nowait())
                done = batch[-1] is end
                if done:
                    batch.pop()
                if batch:
                    yield self._chunk(batch)
                if done:
                    break
            self._ended = True
            await task
            if failure:
                raise failure[0]
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            while not q.empty():
                item = q.get_nowait()
                if item is not end:
                    self._pulled.append(item)
            self._pulled += holding
            if isinstance(iocs, AsyncGenerator) and not self._ended:
                await iocs.aclose()  # as a generator read in a thread is closed

    async def rest(self) -> AsyncGenerator[Chunk, None]:
        """Once the run is over (its reading stopped), what it did not take, as chunks
        numbered on from what it took: the rest of a collection, what was pulled from an
        iterator. Nothing when the input was read to its end."""
        if self._gen is not None:
            await self._gen.aclose()
        if self._ended:
            return
        iocs = self._iocs
        if isinstance(iocs, list | tuple):
            while self._taken < len(iocs):
                yield self._chunk(iocs[self._taken : self._taken + self._size])
                await asyncio.sleep(0)  # a long rest lets the loop run between chunks
            return
        if isinstance(iocs, Collection):
            rest = itertools.islice(iocs, self._taken, None)
            while items := list(itertools.islice(rest, self._size)):
                yield self._chunk(items)
                await asyncio.sleep(0)
            return
        # the list itself, not a copy: the reader thread adds the item it was pulling, if
        # it comes meanwhile
        pulled = self._pulled
        start = 0
        while start < len(pulled):
            yield self._chunk(pulled[start : start + self._size])
            start += self._size


def _chunk_of(items: Sequence[object], first: int) -> Chunk:
    chunk = Chunk("<iterable>", first, [])
    for item in items:
        if isinstance(item, str):
            chunk.lines.append(item)
        else:
            chunk.errors[len(chunk.lines)] = f"not a string: {type(item).__name__}"
            chunk.lines.append(None)
    return chunk
