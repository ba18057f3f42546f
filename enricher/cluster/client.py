"""The client side of a job over a Dask cluster: the tasks submitted, their results taken
as they complete, what they found handed to the job's writer as `Outcome`s.

Dask is imported as the cluster is opened, never before: a job of one process imports none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from types import TracebackType
from typing import Any, Self

from ..api.identity import ApiIdentity
from ..api.ratelimit import RateLimiter
from ..config.settings import Settings
from ..errors import FatalError, InputError, SettingsError
from ..inputs import Chunk, InputOptions
from ..ioc import IocType
from ..pipeline.dedupe import Deduper
from ..pipeline.outcome import Outcome
from ..pipeline.stats import RunStats
from .parts import Part, Read, add_counts, enrich_part, part_of, read_input, settings_wire

__all__ = ["DASK_MISSING", "ClusterEnricher"]

DASK_MISSING = "--workers/--cluster need Dask: pip install 'enricher[dask]'"
#: how the IOCs an earlier run deferred are named as an input
_FIRST = "<deferred by an earlier run>"


def _share(read: Read, index: int) -> list[str]:
    """A read's IOCs of one part (a task of its own: only they travel to the part's task)."""
    return read.parts[index]


def _head(read: Read) -> Read:
    """A read without its IOCs: what the client takes of it (they stay on the workers)."""
    return dataclasses.replace(read, parts=[])


class ClusterEnricher:
    """One job's reading and enriching spread over a Dask cluster: a `LocalCluster` of
    `cluster.workers` processes started for the job, or the scheduler at `cluster.address`.
    Used by `enricher run` as it uses an `Enricher`: opened, iterated (`outcomes`), stopped
    by a signal; its counts go into `stats`."""

    def __init__(
        self,
        settings: Settings,
        *,
        stats: RunStats,
        inputs: Sequence[str],
        reading: InputOptions,
        read_as: dict[str, str],
        identity: ApiIdentity | None = None,
        done: Deduper | None = None,
        cache_only: bool = False,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.inputs = list(inputs)
        self.reading = reading
        self.read_as = read_as
        self.identity = identity
        self.done = done
        self.cache_only = cache_only
        # what `Enricher` offers the job, for the same code to report on either
        self.limiter: RateLimiter | None = None  # each part's own (shared through the state)
        self.occurrences: Counter[str] = Counter()
        self.with_source = False
        self.fatal: FatalError | None = None
        self.input_error: InputError | None = None
        self.interrupted = False
        self.parts = 0
        #: parts whose outcome was handed on: their IOCs were reached
        self._finished: set[int] = set()
        self._cluster: Any = None
        self._client: Any = None
        self._pending: list[Any] = []

    async def __aenter__(self) -> Self:
        try:
            # untyped: Any, rather than an ignore at each call
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise SettingsError(DASK_MISSING) from None
        Client, LocalCluster = distributed.Client, distributed.LocalCluster
        c = self.settings.cluster
        quiet = logging.ERROR  # Dask's own INFO lines (workers starting, stopping) are not ours
        try:
            if c.address:
                self._client = await Client(c.address, asynchronous=True)
            else:
                self._cluster = await LocalCluster(
                    n_workers=c.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    # a free port: its HTTP server starts even without a dashboard
                    dashboard_address=":0",
                    silence_logs=quiet,
                    asynchronous=True,
                )
                self._client = await Client(self._cluster, asynchronous=True)
        except Exception as exc:  # OSError, TimeoutError, a nanny that did not start
            await self._close()
            what = f"reach the scheduler at {c.address}" if c.address else "start a local one"
            raise SettingsError(f"cluster: cannot {what}: {exc}") from None
        threads = sum((await self._client.nthreads()).values()) or c.workers
        self.parts = c.partitions or 2 * threads
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                await cluster.close()

    def stop(self, *, now: bool = False) -> None:
        """Submit nothing more and take no more results: the parts not done are not
        written (a later `--resume` asks them again; their answers are in the shared
        cache). A task already running on a worker of another's cluster runs on."""
        self.interrupted = True
        pending, self._pending = self._pending, []
        if self._client is not None and pending:
            self._client.cancel(pending)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def reached(self, ioc_type: IocType, value: str) -> bool:
        """Whether this IOC's part was done (and so accounted for)."""
        return bool(self.parts) and part_of(value, self.parts) in self._finished

    async def outcomes(self, first: Sequence[str] = ()) -> AsyncGenerator[Outcome, None]:
        """The job's outcomes, as its tasks complete: each input's rejects once it is read,
        each part's records, failures, skipped and deferred IOCs once it is enriched."""
        as_completed: Any = importlib.import_module("distributed").as_completed
        client, parts = self._client, self.parts
        max_line = self.settings.pipeline.max_line_bytes
        sources: list[str | Chunk] = list(self.inputs)
        if first:
            sources.insert(0, Chunk(_FIRST, 1, list(first)))
        reads = [
            client.submit(read_input, s, self.reading, max_line=max_line, parts=parts, pure=False)
            for s in sources
        ]
        shares = [[client.submit(_share, r, p, pure=False) for r in reads] for p in range(parts)]
        wire = settings_wire(self.settings)
        done = await client.scatter(self.done, broadcast=True) if self.done else None
        enriched = [
            client.submit(
                enrich_part,
                wire,
                p,
                shares[p],
                identity=self.identity,
                done=done,
                cache_only=self.cache_only,
                pure=False,
            )
            for p in range(parts)
        ]
        heads = [client.submit(_head, r, pure=False) for r in reads]
        del shares, reads  # each is let go once the tasks that need it have it
        self._pending = heads + enriched
        if self.interrupted:  # a stop came while they were submitted
            self.stop()
        async for future in as_completed(self._pending):
            if self.interrupted:
                break
            try:
                result = await future
            except BaseException as exc:
                if self.interrupted and future.cancelled():  # by `stop`
                    break
                if not isinstance(exc, Exception):
                    raise
                self.fatal = FatalError(f"cluster: a task failed: {exc}")
                self.stop()
                self.interrupted = False  # stopped by the failure, not a signal
                break
            if future in self._pending:  # not if a stop came meanwhile (it is written all the same)
                self._pending.remove(future)
            if isinstance(result, Read):
                yield self._read(result)
            else:
                yield self._part(result)

    def _read(self, read: Read) -> Outcome:
        add_counts(self.stats, read.counts)
        self.read_as.update(read.read_as)
        if read.error is not None and self.input_error is None:
            self.input_error = InputError(read.error)
        return Outcome(rejects=read.rejects)

    def _part(self, part: Part) -> Outcome:
        add_counts(self.stats, part.counts)
        self._finished.add(part.index)
        if part.fatal is not None and self.fatal is None:
            self.fatal = FatalError(part.fatal)
        return part.outcome
