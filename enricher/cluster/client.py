"""The client side of a job over a Dask cluster: the tasks submitted, their results taken
as they complete, what they found handed to the job's writer as `Outcome`s.

Dask is imported as the cluster is opened, never before: a job of one process imports none.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import importlib.util
import logging
import os
import secrets
import sys
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from types import TracebackType
from typing import Any, Self

from ..api.identity import ApiIdentity
from ..api.ratelimit import RateLimiter
from ..config.settings import Settings
from ..errors import FatalError, InputError, SettingsError
from ..inputs import Chunk, InputOptions
from ..ioc import Endpoint, IocType
from ..pipeline.dedupe import Deduper
from ..pipeline.outcome import Outcome
from ..pipeline.stats import RunStats
from ..threads import Abandoned
from . import without_password
from .blocks import Block, plan_blocks
from .forkserver import START, start_fork_server
from .parts import Part, Read, add_counts, enrich_new, part_of, read_input, settings_wire

__all__ = ["DASK_MISSING", "ClusterEnricher"]

DASK_MISSING = "--workers/--cluster need Dask: pip install 'enricher[dask]'"
#: how the IOCs an earlier run deferred are named as an input
_FIRST = "<deferred by an earlier run>"
_DASK_LOG = logging.getLogger("distributed")
#: blocks no smaller than this for the balance: each block finds a log's vocabulary again
_SMALLEST_BLOCK = 2_000_000
#: how long a stop waits for the scheduler to take back the tasks not done (it may be gone)
_CANCEL_WAIT = 2.0


_LOCAL_CONFIG = {
    "distributed.worker.multiprocessing-method": START,
    # each worker's sampling of its task's call stack every 10 ms, for a dashboard's
    # profile that a job does not show
    "distributed.worker.profile.enabled": False,
    # the scheduler, the nannies (in the job's process) and the workers look at their
    # processes' memory every 100 ms, at the machine's every 500 ms and at their event loop
    # every 20 ms: at these, the job's CPU at 32.6 MB, load 13, 16.4 -> 13.7 s (its own
    # during the reads 2.5 -> 1.2 s). A worker past its memory limit is still stopped
    # within a second.
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.tick.interval": "1s",
}


def _file_size(path: str) -> int:
    """The size of the regular file at `path`; 0 for anything else (its read says why)."""
    try:
        return os.path.getsize(path) if os.path.isfile(path) else 0
    except OSError:
        return 0


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line (Dask's span several)."""
    return " ".join(str(exc).split()).rstrip(".") or type(exc).__name__


def _main_script_again() -> str:
    """Why a local cluster's workers may not have started, when the job was started by a
    script (not `enricher`, not `python -m`): each worker runs that script again as it
    starts, and one with no `if __name__ == "__main__":` guard starts the job again there
    (its workers stop at once: `app.cli.main`)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None:
        return ""
    if os.path.basename(path) in ("enricher", "enricher.exe"):
        return ""
    return (
        f" (each worker runs {path} again as it starts: start the job there under"
        ' `if __name__ == "__main__":`)'
    )


def _share(read: Read, index: int) -> bytes:
    """A read's IOCs of one part (a task of its own: only they travel to the part's task),
    as one buffer (a canonical IOC holds no line end): it moves between workers as one
    frame, where a list of strings is pickled item by item by the sending worker's event
    loop, which waits for the GIL its task thread holds (such transfers took 3-10 s at
    load 8: benchmarks/README.md)."""
    return "\n".join(read.parts[index]).encode()


@dataclasses.dataclass
class _Wave:
    """What a part's task of one wave of reads leaves on its worker: the part's IOCs met so
    far (the next wave's task dedupes against them), those of them held back for the next
    wave to enrich, and what to write (`_wave_part`)."""

    seen: set[str]
    held: list[str]
    part: Part


def _enrich_wave(
    wire: dict[str, Any],
    index: int,
    before: _Wave | None,
    shares: list[bytes],
    *,
    batches: dict[Endpoint, int] | None,
    **kwargs: Any,
) -> _Wave:
    """`enrich_new` of the shares `_share` made, against the IOCs of the part's waves before,
    with those they held back (both copied: the wave before is left as it is, for a task of
    this wave run again)."""
    seen = set(before.seen) if before is not None else set()
    held = list(before.held) if before is not None else []
    values = (value for share in shares if share for value in share.decode().split("\n"))
    part = enrich_new(wire, index, values, seen, held=held, batches=batches, **kwargs)
    return _Wave(seen, held, part)


def _wave_part(wave: _Wave) -> Part:
    """What the client takes of a wave's task: its `Part` (the IOCs met stay on the worker)."""
    return wave.part


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
        max_rejects: int | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.max_rejects = max_rejects
        #: whether the job is being stopped (a signal before `stop` can be called)
        self.stopping = stopping
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
        #: parts whose first wave's outcome was handed on: the IOCs an earlier run deferred
        #: (read in the first wave) were reached
        self._finished: set[int] = set()
        #: whether a part's task (by key) is of the first wave, until its result is taken
        self._first_wave: dict[str, bool] = {}
        self._threads = 1
        self._cluster: Any = None
        self._client: Any = None
        self._pending: list[Any] = []
        #: set by `stop`: the wait for the next result ends at once (with no worker left,
        #: or the scheduler gone, none may ever come)
        self._stopped = asyncio.Event()
        self._dask_level = _DASK_LOG.level
        #: an input read in blocks: the blocks' reads come in any order and are handed on
        #: in the input's order (its first rejects are the ones kept, its lines counted on)
        self._blocks: dict[str, _InOrder] = {}
        #: the parts' answer stores' counts (hits, stored, claims), added up
        self._cache_counts: Counter[str] = Counter()
        #: the sources the inputs are read as, once planned (`_planned`)
        self._sources: list[str | Block] | None = None

    #: how long a job waits for a worker when the cluster has none, at start or mid-run
    #: (Dask itself would wait for ever): then exit 1 at start, or 3 (--resume) mid-run
    no_workers_wait = 60.0
    #: the blocks a thread of the cluster reads, at least (inputs allowing): a worker whose
    #: reads end before another's waits at most one block (measured at 81 MB in 8 blocks
    #: of 10 MB: a worker idle 7.7 s at load 14 as the other read its last)
    balance = 8
    #: the waves the reads are taken in (at least as many reads a wave as the cluster has
    #: threads): each a task per part, its new IOCs enriched as the next wave is read
    waves = 8
    #: how often the cluster's workers are counted while no result comes
    _LOOK = 2.0
    #: a local cluster's worker silent this long (frozen: SIGSTOP, swapped out) is killed by
    #: its nanny and started again, its tasks redone elsewhere: Dask's default, 5 minutes,
    #: checked every 5 minutes, let a frozen worker hold its part for up to 10. The check
    #: runs every `worker_ttl`: dropped within 10-20 s (then 4 s for the nanny's kill)
    worker_ttl = 10.0

    async def _workers(self) -> int:
        """The cluster's worker threads now (0 if the scheduler does not say)."""
        try:
            threads = await asyncio.wait_for(self._client.nthreads(), self._LOOK)
        except Exception:
            return 0
        return sum(threads.values())

    async def __aenter__(self) -> Self:
        if not self.settings.cluster.address:
            # unless the command line's first look did (`forkserver`). The job reads nothing
            # itself meanwhile: a read in a thread of this process held the GIL the
            # scheduler's and nannies' start needs (start to cluster up 9.9 s against 1.6 s
            # without, idle machine, `benchmarks.workers --mb 100`)
            start_fork_server()
        return await self._open()

    async def _open(self) -> Self:
        try:
            # untyped: Any, rather than an ignore at each call
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise SettingsError(DASK_MISSING) from None
        Client, LocalCluster = distributed.Client, distributed.LocalCluster
        dask: Any = importlib.import_module("dask")
        c = self.settings.cluster
        # Dask's own INFO lines (workers starting, stopping) are not ours, nor its tracebacks
        # as it loses the scheduler (a task's failure says it, in one line; a local worker
        # losing it as the cluster closes logged one into a successful run's stderr): only
        # what it logs as critical comes through, here and in the local workers
        quiet = logging.CRITICAL
        self._dask_level = _DASK_LOG.level
        _DASK_LOG.setLevel(logging.CRITICAL)
        try:
            if c.address:
                self._client = await Client(c.address, asynchronous=True)
            else:
                with dask.config.set(_LOCAL_CONFIG):
                    self._cluster = await LocalCluster(
                        n_workers=c.workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        # a free port of this host alone: its HTTP server (health, metrics, the
                        # workers' logs and call stacks) starts even without a dashboard, and
                        # ":0" put it on every interface
                        dashboard_address="127.0.0.1:0",
                        silence_logs=quiet,
                        scheduler_kwargs={"worker_ttl": self.worker_ttl},
                        preload=["enricher.cluster.warm"],
                        # a password of the state URL reaches the workers in their
                        # environment, as the settings read it, never in a task (`_wire`)
                        env=self._worker_env(),
                        asynchronous=True,
                    )
                self._client = await Client(self._cluster, asynchronous=True)
        except Exception as exc:  # OSError, TimeoutError, a nanny that did not start
            await self._close()
            what = f"reach the scheduler at {c.address}" if c.address else "start a local one"
            why = "" if c.address else _main_script_again()
            raise SettingsError(f"cluster: cannot {what}: {_one_line(exc)}{why}") from None
        # workers started with the job may be on their way; a signal meanwhile stops the wait
        deadline = asyncio.get_running_loop().time() + self.no_workers_wait
        while not await self._workers():
            if self.stopping():
                await self._close()
                raise Abandoned
            if asyncio.get_running_loop().time() >= deadline:
                await self._close()
                raise SettingsError(
                    f"cluster: the scheduler at {c.address} has no workers (waited"
                    f" {self.no_workers_wait:g} s): start some (dask worker {c.address})"
                )
            await asyncio.sleep(self._LOOK)
        self._threads = await self._workers() or c.workers
        self.parts = self.parts or c.partitions or 2 * self._threads
        return self

    def _planned(self) -> list[str | Block]:
        """The sources the inputs are read as (`_plan`): each input, or its blocks."""
        sources: list[str | Block] = []
        for plan in self._plan(self.settings.pipeline.max_line_bytes):
            if isinstance(plan, list):
                self._blocks[plan[0].path] = _InOrder()
                sources += plan
            else:
                sources.append(plan)
        return sources

    def _plan(self, max_line: int) -> list[str | list[Block]]:
        """Each input whole, or its blocks: of `cluster.block_bytes` at most, and smaller for
        inputs that make fewer than `balance` blocks a thread of the cluster (down to
        `_SMALLEST_BLOCK`), so that the workers' last reads end close together."""
        size = self.settings.cluster.block_bytes
        total = sum(map(_file_size, self.inputs))
        if size:
            size = min(size, max(_SMALLEST_BLOCK, total // (self.balance * self._threads)))
        return [
            plan_blocks(path, self.reading, size=size, max_line=max_line) or path
            for path in self.inputs
        ]

    def _worker_env(self) -> dict[str, str]:
        """What a local cluster's workers get in their environment: the password of the
        state URL, under the name the settings read it from when the URL holds none."""
        state = self.settings.state
        password = without_password(state.url)[1]
        return {state.password_env: password} if password is not None else {}

    def _wire(self, claim_token: str) -> dict[str, Any]:
        """The settings a part's task carries (`settings_wire`), its claims taken under
        `claim_token`: the state URL without its password (a task's arguments are seen by
        the scheduler, its logs and dashboard); the workers read it from their environment
        (`_worker_env`; on a cluster of one's own, each host's: `check_job`)."""
        state = self.settings.state
        url, password = without_password(state.url)
        state = dataclasses.replace(state, claim_token=claim_token)
        if password is not None:  # the environment's, not a file the URL's overrode
            state = dataclasses.replace(state, url=url, password_file=None)
        return settings_wire(dataclasses.replace(self.settings, state=state))

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
        _DASK_LOG.setLevel(self._dask_level)  # as it was before the job

    def stop(self, *, now: bool = False) -> None:
        """Submit nothing more and take no more results: the parts not done are not
        written (a later `--resume` asks them again; their answers are in the shared
        cache). A task already running on a worker of another's cluster runs on."""
        self.interrupted = True
        # what the summary and the manifest say, as one process's run says it (they said
        # "done in …" and "stopped": null for a run stopped by SIGTERM, exit 3)
        self.stats.stopped = self.stats.stopped or "interrupted"
        self._stopped.set()

    def cache_report(self, state: dict[str, object]) -> dict[str, object]:
        """What the summary and the manifest say of the answers: the state's (`state`: its
        store's report, as one process gives it), with what the parts' stores counted."""
        return {**state, **self._cache_counts}

    @property
    def in_flight(self) -> int:
        return 0 if self.interrupted else len(self._pending)

    def reached(self, ioc_type: IocType, value: str) -> bool:
        """Whether this IOC, one an earlier run deferred, was accounted for: its part's first
        wave (which reads them) was done."""
        return bool(self.parts) and part_of(value, self.parts) in self._finished

    async def outcomes(self, first: Sequence[str] = ()) -> AsyncGenerator[Outcome, None]:
        """The job's outcomes, as its tasks complete: each input's rejects once it is read,
        each part's records, failures, skipped and deferred IOCs once it is enriched."""
        as_completed: Any = importlib.import_module("distributed").as_completed
        client, parts = self._client, self.parts
        max_line = self.settings.pipeline.max_line_bytes
        if self._sources is None:
            self._sources = await asyncio.to_thread(self._planned)
        sources: list[str | Chunk | Block] = list(self._sources)
        if first:
            sources.insert(0, Chunk(_FIRST, 1, list(first)))
        reads: list[Any] = [
            client.submit(
                read_input,
                s,
                self.reading,
                max_line=max_line,
                parts=parts,
                max_rejects=self.max_rejects,
                pure=False,
            )
            for s in sources
        ]
        # a read's shares and the parts' tasks go before the reads not started (Dask's
        # `priority`), so that the parts enrich as the reads come
        shares = [
            [client.submit(_share, r, p, pure=False, priority=1) for r in reads]
            for p in range(parts)
        ]
        # each part's claims are taken under its job and number: a part run again (its worker
        # lost) takes them over at once instead of waiting out their expiry (60 s)
        job = secrets.token_hex(8)
        wires = [self._wire(f"{job}.{p}") for p in range(parts)]
        try:  # to every worker: none there (all lost) is a failure, not a traceback
            done = await client.scatter(self.done, broadcast=True) if self.done else None
        except Exception as exc:
            self.fatal = FatalError(
                f"cluster: cannot hand the workers what is done: {_one_line(exc)}"
            )
            return
        # The reads in waves (in their order: the IOCs an earlier run deferred come in the
        # first), a task per part and wave: it enriches the part's IOCs of the wave's reads
        # that the part's waves before did not have (the task before hands it those), so a
        # part's IOCs are asked once whatever wave they are in, and once the last read is
        # in only its wave's new IOCs are left to enrich.
        size = max(self._threads, -(-len(reads) // self.waves))
        # a part's new IOCs that do not fill a batch of their endpoint are held back for its
        # next wave, up to the last: a request per part, wave and endpoint, part-filled,
        # sent 49 requests where one process sent 3 (365 IOCs). The first wave enriches all
        # when it holds the IOCs an earlier run deferred: `reached` says they are done once
        # it is.
        batches = self.settings.api.batch_sizes()
        starts = range(0, len(reads), size)
        waves: list[Any] = [None] * parts  # each part's latest
        enriched = []
        for k, start in enumerate(starts):
            flush = start == starts[-1] or (k == 0 and bool(first))
            for p in range(parts):
                waves[p] = client.submit(
                    _enrich_wave,
                    wires[p],
                    p,
                    waves[p],
                    shares[p][start : start + size],
                    batches=None if flush else batches,
                    identity=self.identity,
                    done=done,
                    cache_only=self.cache_only,
                    # named as the work it does, not the wrapper
                    key=f"enrich_part-{job}-{p}-{k}",
                    priority=1,
                )
                enriched.append(client.submit(_wave_part, waves[p], pure=False, priority=1))
                self._first_wave[enriched[-1].key] = k == 0
        # a read's head before all else: its counts (lines read) show as it is done
        heads = [client.submit(_head, r, pure=False, priority=2) for r in reads]
        self._pending = heads + enriched
        # each is let go once the tasks that need it have it, and each result once taken: a
        # result held would stay in its worker's memory, and be made again were it lost
        del shares, reads, waves, heads, enriched
        try:
            async for future in self._completed(as_completed(self._pending)):
                try:
                    result = await future
                except Exception as exc:
                    self.fatal = FatalError(
                        f"cluster: a task failed: {_one_line(exc)}; what is done is written:"
                        " run again with --resume"
                    )
                    break
                self._pending.remove(future)
                if isinstance(result, Read):
                    for read in self._in_order(result):
                        yield self._read(read)
                else:
                    yield self._part(result, self._first_wave.pop(future.key))
        finally:
            await self._cancel()
            self._in_inputs_order()

    def _in_inputs_order(self) -> None:
        """What the job says of each input (how it was read, its rejects not written) in the
        inputs' order, as one process says it, not in the order their reads completed."""
        order = {path: i for i, path in enumerate(self.inputs)}

        def key(name: str) -> int:
            return order.get(name, -1)

        # each emptied, then filled again in that order
        read_as, dropped = self.read_as, self.stats.rejects_not_written
        read_as.update({name: read_as.pop(name) for name in sorted(read_as, key=key)})
        dropped.update({name: dropped.pop(name) for name in sorted(dropped, key=key)})

    async def _completed(self, futures: Any) -> AsyncGenerator[Any, None]:
        """The futures as they complete, until `stop`: waiting for the next one ends at
        once then, whether or not it ever completes."""
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            while not self.interrupted:
                following = asyncio.ensure_future(anext(futures))
                idle = 0.0  # for how long the cluster has had no worker
                while not (following.done() or stopped.done()):
                    await asyncio.wait(
                        (following, stopped),
                        timeout=self._LOOK,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if following.done() or stopped.done():
                        break
                    idle = 0.0 if await self._workers() else idle + self._LOOK
                    if idle >= self.no_workers_wait:
                        self.fatal = FatalError(
                            f"cluster: no worker for {self.no_workers_wait:g} s; what is done is"
                            " written: run again with --resume once workers are back"
                        )
                        break
                if not following.done():
                    following.cancel()
                    break
                try:
                    future = following.result()
                except StopAsyncIteration:
                    break
                if self.interrupted:
                    break
                yield future
        finally:
            stopped.cancel()

    async def _cancel(self) -> None:
        """The tasks not done taken back from the scheduler (it frees their workers), as far
        as it answers within `_CANCEL_WAIT`: closing the client lets them go all the same."""
        pending, self._pending = self._pending, []
        if pending and self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.cancel(pending), _CANCEL_WAIT)

    def _in_order(self, read: Read) -> list[Read]:
        """The reads to hand on now: a whole input's at once, a block's once the blocks
        before it are, each with its reject lines counted on from theirs."""
        if read.block is None:
            return [read]
        order = self._blocks[read.source]
        order.waiting[read.block.index] = read
        ready = []
        while order.next in order.waiting:
            read = order.waiting.pop(order.next)
            for reject in read.rejects:
                reject["line"] += order.lines
            order.lines += read.counts["lines_read"]
            order.next += 1
            ready.append(read)
        return ready

    def _read(self, read: Read) -> Outcome:
        add_counts(self.stats, read.counts)
        self.read_as.update(read.read_as)
        # past --max-rejects: counted as the job's writer counts them
        self.stats.rejects_not_written.update(read.rejects_dropped)
        if read.error is not None and self.input_error is None:
            self.input_error = InputError(read.error)
            # as one process's run says it (the manifest's "stopped" was null)
            self.stats.stopped = self.stats.stopped or read.error
        return Outcome(rejects=read.rejects)

    def _part(self, part: Part, first_wave: bool) -> Outcome:
        add_counts(self.stats, part.counts)
        self._cache_counts.update(part.counts.get("cache", {}))
        if first_wave:
            self._finished.add(part.index)
        if part.fatal is not None and self.fatal is None:
            self.fatal = FatalError(part.fatal)
        return part.outcome


@dataclasses.dataclass
class _InOrder:
    """The blocks' reads of one input: those that came before their turn, and the lines of
    those handed on."""

    waiting: dict[int, Read] = dataclasses.field(default_factory=dict)
    next: int = 0
    lines: int = 0
