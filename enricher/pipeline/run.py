"""The pipeline: read → normalize → dedupe → batch → send → merge, as stages joined by queues.

    reader task ──chunk_q──▶ ingest task ──batch_q──▶ N worker tasks ──out_q──▶ consumer
                              ingest.py                 send.py                  writes NDJSON
                              (cache lookup)            (resolve.py: the policy)  (or yields to
                              batch                     merge answers             the library)

This module is `Enricher` and the coordination of one run (`_Run`): its queues, tasks, stop
and hand-offs. Every queue is bounded, so a slow API slows the reader and memory grows only
with the number of unique IOCs (the deduper). With a cache, ingest answers what it can before
batching. Each unique IOC leaves as exactly one record, failure, or deferred IOC (not sent:
budget spent, run stopped): the run's `Ledger` (ledger.py) holds it open from ingest until a
stage settles it, and defers what is still open when the run stops; `RunStats.invariant_holds`
checks unique = ok + failed + unsupported + internal + deferred.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import math
import time
import weakref
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, overload

from ..api.identity import ApiIdentity, identity_of
from ..api.protocol import read_entry
from ..api.ratelimit import AdaptiveLimiter, RateLimiter
from ..api.sender import Sender
from ..api.transport import AiohttpTransport, Transport
from ..config.settings import Settings
from ..errors import (
    FatalError,
    InputError,
    MalformedBody,
    UsageError,
)
from ..inputs import Chunk, suffixes
from ..ioc import ENDPOINT_OF, Endpoint, IocType
from ..output.records import (
    Deferred,
    Failure,
    Record,
    Reject,
    Skipped,
    read_record,
    record_format,
    record_line,
    response_bytes,
)
from ..state.budget import Budget
from ..state.hits import group as group_keys
from ..state.hits import servable, split
from ..state.open import OpenState, open_state
from ..state.ports import AnswerStore, CachedAnswer, Claims, store_lines
from ..threads import call_in_thread
from .batcher import Batch, Batcher, Key
from .dedupe import Deduper
from .ingest import Ingest
from .interrupt import at_exit, unwatch, watch
from .ledger import Ledger
from .outcome import Outcome
from .privacy import Privacy
from .resolve import Settled
from .send import Send
from .source import IocSource
from .stats import RunStats

__all__ = ["NOT_REACHED", "Enricher", "Item", "Outcome"]

#: why an IOC of the input is deferred when the run stopped before reading it
NOT_REACHED = "not reached: the run stopped before it"
#: seconds between two looks at the keys another job is asking (see `_Run.claim`)
_RECHECK = 0.5
#: chunks whose new keys may be looked up in the cache ahead of the one being served
_AHEAD = 4
#: a chunk's new keys being looked up in the cache, and those keys
Lookup = tuple[asyncio.Task[dict[Endpoint, dict[str, CachedAnswer]]], dict[Endpoint, list[Key]]]
_INTERRUPTED = "interrupted before it was sent"


@dataclass(slots=True, eq=False, weakref_slot=True)
class _Later:
    """An `enrich()` whose run starts when it is first iterated."""

    stats: RunStats | None
    deadline: float | None
    #: stop() came first: stop as it asked (`now`) once the run starts
    stopped: bool | None = None


#: what `Enricher.enrich` yields (and, with `rejects=True`, `Reject` items too). Spelled
#: out where it is joined with `Reject`: mypy narrows `"error" in item` on a flat union only
Item = Record | Failure | Deferred | Skipped


class Enricher:
    """Bulk enrichment against the GTI API (or anything that speaks its protocol).

        async with Enricher(load_settings()) as e:
            async for item in e.enrich(["evil.example", "1.2.3.4"]):
                ...  # a Record; a Failure has "error"; a Deferred has "reason"

    One instance holds one connection pool and one rate limiter, on the event loop it was
    opened in (it belongs to that loop: open another in another loop). Runs (`enrich`,
    `run`) may go at once and share them; each counts into its own `RunStats` (`stats`
    is the last one started's), unless `stats` is given here: then every run counts into it.

    Optional parts of a nightly job: `cache` (an `AnswerStore`, the SQLite `Cache` or
    another: answers served without a request, and stored; closed with the instance unless
    `cache_owner=False`, when it stays the caller's to close), `budget` (requests
    allowed), `done` (IOCs an earlier run already wrote: skipped), `cache_only` (no
    request at all: what the cache cannot answer is deferred). The cache serves an
    instance only the answers its own API identity fetched (`identity`: its settings'
    unless given), even a cache shared with other instances.

    What it sends through and what paces it: `transport` (an `AiohttpTransport` from the
    settings unless given; opened and closed with the instance) and `limiter`, which makes
    the `RateLimiter` inside the running loop as the instance opens (an `AdaptiveLimiter`
    from `limits` unless given).

    With `state.url` set in the settings and none of `cache`, `budget` and `limiter` given,
    the instance opens that state itself as it opens (`enricher.state.open`), and closes it
    as it closes: with `redis://…`, every instance and process of the same API identity
    shares one rate limiter, one answer cache and one daily budget; with `sqlite:///PATH`,
    that file's cache and budget.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        stats: RunStats | None = None,
        cache: AnswerStore | None = None,
        cache_owner: bool = True,
        budget: Budget | None = None,
        done: Deduper | None = None,
        cache_only: bool = False,
        with_source: bool = False,
        identity: ApiIdentity | None = None,
        transport: Transport | None = None,
        limiter: Callable[[], RateLimiter] | None = None,
    ) -> None:
        self.settings = settings
        self._given_transport = transport
        self._make_limiter = limiter or functools.partial(
            AdaptiveLimiter.from_settings, settings.limits
        )
        self._shared_stats = stats
        #: the stats of the last run started
        self.stats = stats or RunStats()
        #: the settings' state is opened with the instance (see the class's docstring)
        given = (cache, budget, limiter)
        self._opens_state = bool(settings.state.url) and all(x is None for x in given)
        #: the state it opened, while open
        self.state: OpenState | None = None
        #: whose answers this instance is served from the cache and stores in it: its own
        #: settings' identity unless given, whichever a shared cache is bound to
        self.identity = identity or (
            identity_of(settings) if cache is not None or self._opens_state else None
        )
        if cache is not None and self.identity is not None:
            cache.admit(self.identity)
            if cache_owner and cache.identity is None:
                cache.bind(self.identity)  # its own: the cache's report names the identity
        self.cache = cache
        #: whether the cache is closed (what it was given to store, written) as this closes
        self.cache_owner = cache_owner
        self.budget = budget
        self.done = done
        self.cache_only = cache_only
        p = settings.privacy
        #: what is never sent (internal addresses and names, the organization's own)
        self.privacy = Privacy(
            send_internal=p.send_internal,
            internal_domains=p.internal_domains,
            internal_networks=p.internal_networks,
        )
        #: records say where their IOC was first seen, and occurrences are counted
        self.with_source = with_source
        # what the last run to finish found (for the job, which runs one at a time)
        #: with `with_source`: how often each IOC occurred across the inputs
        self.occurrences: Counter[str] = Counter()
        self.fatal: FatalError | None = None
        #: reading the input failed part way (what was read was enriched)
        self.input_error: InputError | None = None
        #: stopped by `stop()` (a signal), not by a budget, a deadline or an error
        self.interrupted = False
        self._transport: Transport | None = None
        self.limiter: RateLimiter | None = None
        self._sender: Sender | None = None
        self._runs: set[_Run] = set()
        #: enrich() generators not yet iterated (held weakly: one dropped holds nothing)
        self._later: weakref.WeakSet[_Later] = weakref.WeakSet()
        self._seen: Deduper | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # while open
        self._cache_closed = False

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        if self._loop is not None:
            raise UsageError("this Enricher is open already: one `async with` at a time")
        if self._cache_closed:
            raise UsageError(
                "the cache given to this Enricher was closed as it closed: give a new "
                "Enricher a new Cache, or pass cache_owner=False and close it yourself"
            )
        self._loop = loop
        try:
            if not suffixes.tables_built():
                # built off the loop: judging the first name would take 0.3 s of it
                await call_in_thread(suffixes.build_tables, name="suffix tables")
        except BaseException:
            self._loop = None
            raise
        make_limiter = self._make_limiter
        transport = self._given_transport or AiohttpTransport.from_settings(self.settings)
        try:
            if self._opens_state:
                make_limiter = await self._open_state() or make_limiter
            if not self.cache_only:
                await transport.open()
        except BaseException:
            self._loop = None
            await self._close_state()
            raise
        self._transport = transport
        try:
            # made here, inside the running loop: its waits are on the loop's timers
            self.limiter = make_limiter()
        except BaseException:  # a factory of the caller's that fails: nothing stays open
            self._transport = None
            self._loop = None
            try:
                if not self.cache_only:
                    await transport.close()
            finally:
                await self._close_state()
            raise
        s = self.settings
        self._sender = Sender(
            s.api, s.retry, transport, self.limiter, self.stats, budget=self.budget
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # runs still going (another task's, or one left without `aclosing`) stop now:
            # what they had not answered is deferred, and nothing more is sent
            await self._close_runs()
            if self.budget is not None:
                # never waits: the store counts what it cannot take now as it closes
                self.budget.save()
        finally:
            self._loop = None
            self._sender = None
            transport, self._transport = self._transport, None
            try:
                if transport is not None:
                    await transport.close()
            finally:
                if self.state is not None:
                    await self._close_state()
                elif self.cache is not None and self.cache_owner and not self._cache_closed:
                    self._cache_closed = True
                    # what the runs stored is written, then the store let go
                    await self.cache.aclose()

    async def _open_state(self) -> Callable[[], RateLimiter] | None:
        """Open the settings' state: its answers and budget are this instance's until it
        closes; the factory of its shared limiter, if it has one."""
        s = self.settings
        assert self.identity is not None
        self.state = state = await open_state(
            s,
            self.identity,
            fmt=record_format(s.verdicts, s.api.ttl_unit, self.with_source),
        )
        self.cache = state.answers
        if state.budget is not None:
            self.budget = Budget(
                daily=s.limits.daily_budget or None,
                cache=state.budget,
                longest_quota=s.retry.max_quota_wait,
            )
        return state.limiter

    async def _close_state(self) -> None:
        """Close the state `_open_state` opened (what was stored written, the limiter's
        last reports made); StateLost if Redis went away."""
        state, self.state = self.state, None
        if state is not None:
            self.cache = None
            self.budget = None
            await state.aclose()

    @overload
    def enrich(
        self,
        iocs: Iterable[str] | AsyncIterable[str],
        *,
        rejects: Literal[False] = False,
        deadline: float | None = None,
        stats: RunStats | None = None,
    ) -> AsyncGenerator[Item, None]: ...

    @overload
    def enrich(
        self,
        iocs: Iterable[str] | AsyncIterable[str],
        *,
        rejects: Literal[True],
        deadline: float | None = None,
        stats: RunStats | None = None,
    ) -> AsyncGenerator[Record | Failure | Deferred | Skipped | Reject, None]: ...

    @overload
    def enrich(
        self,
        iocs: Iterable[str] | AsyncIterable[str],
        *,
        rejects: bool,
        deadline: float | None = None,
        stats: RunStats | None = None,
    ) -> AsyncGenerator[Record | Failure | Deferred | Skipped | Reject, None]: ...

    def enrich(
        self,
        iocs: Iterable[str] | AsyncIterable[str],
        *,
        rejects: bool = False,
        deadline: float | None = None,
        stats: RunStats | None = None,
    ) -> AsyncGenerator[Record | Failure | Deferred | Skipped | Reject, None]:
        """A `Record`, `Failure` (it has "error"), `Skipped` IOC (it has "skipped": withheld
        by the privacy rule, never sent) or `Deferred` IOC (it has "reason": not asked, the
        run was stopped) for each unique valid IOC among `iocs`, as they complete; with
        `rejects`, a `Reject` (it has "input") for each item that is no IOC.

        The run starts when the first item is asked for (a generator never iterated sends
        nothing and holds nothing); `stop()` before then stops it as it starts. `iocs` is an
        iterable of strings (not one string): a list is read as it is, any other iterable (a
        generator that blocks, say) in a thread of its own, an async iterable on the loop.
        `deadline`: seconds for the whole run, after which what is not answered is deferred.
        `stats`: count into these (else a new `RunStats`, which `self.stats` then is).

        A run that stops before the input's end (a deadline, `stop()`, refused credentials,
        the instance closed) still yields an item for every IOC of a collection (a list, a
        set: anything with a length): what it had not read is deferred ("not reached"), never
        sent. An iterator (a generator, sync or async) may be endless: what it had yielded
        comes out, then a generator is closed, not drained (one blocked in a read, as that
        read returns: the item it gives then is dropped), and `stats.input_unread` is set.

        After the last item: raises the `FatalError` that stopped the run (`AuthRefused`:
        credentials refused; what finished was yielded, the rest deferred), else
        `InputError` if reading `iocs` failed part way (what was read was enriched).
        Leave early with `contextlib.aclosing` (or `break` inside it): the run stops, and
        what it had not answered is counted deferred.
        """
        if isinstance(iocs, str | bytes | bytearray | memoryview):
            raise UsageError(
                "enrich() takes an iterable of IOCs, not one string: enrich([ioc]) for one"
            )
        if not isinstance(iocs, Iterable | AsyncIterable):
            raise UsageError(
                f"enrich() takes an iterable of IOC strings, not {type(iocs).__name__}"
            )
        self._usable(deadline)
        later = _Later(stats, deadline)
        self._later.add(later)
        return self._items(later, rejects, IocSource(iocs))

    async def _items(
        self, later: _Later, rejects: bool, source: IocSource
    ) -> AsyncGenerator[Record | Failure | Deferred | Skipped | Reject, None]:
        # the run starts as the first item is asked for: a generator never iterated holds
        # no run (and sends nothing)
        self._later.discard(later)
        if self._loop is None:
            raise UsageError(
                "the Enricher was closed before this enrich() was iterated: nothing was read"
                " or sent; iterate it inside the `async with`"
            )
        run = self._start(source.chunks(), later.stats, later.deadline)
        if later.stopped is not None:  # stop() came between enrich() and the first item
            run.interrupted = True
            run.stop(now=later.stopped, why="interrupted", reason=_INTERRUPTED)
        async with contextlib.aclosing(self._drive(run)) as outcomes:
            async for outcome in outcomes:
                if run.stats.first_record_at is None and (outcome.lines or outcome.cached_lines):
                    run.stats.first_record_at = time.monotonic()  # as the job's, when given
                for item in _items_of(outcome, rejects):
                    yield item
        # stopped before the input's end (a deadline, a stop, refused credentials): what the
        # run did not read still comes out, deferred and counted, never sent
        for chunk in run.unread:
            for item in _items_of(run.not_reached(chunk), rejects):
                yield item
        run.unread.clear()
        async for chunk in source.rest():
            for item in _items_of(run.not_reached(chunk), rejects):
                yield item
        if source.unread:
            run.stats.input_unread = True
        if run.interrupt is not None:
            raise run.interrupt
        if run.fatal is not None:
            raise run.fatal
        if run.input_error is not None:
            raise run.input_error

    def reached(self, ioc_type: IocType, value: str) -> bool:
        """Whether the last run took this IOC in (and so accounted for it)."""
        return self._seen is not None and (ioc_type, value) in self._seen

    @property
    def in_flight(self) -> int:
        """Batches being sent (or waiting to be sent again) right now, by every run."""
        return sum(len(run.inflight) for run in self._runs)

    def stop(self, *, now: bool = False) -> None:
        """Stop every run going: read no more, send nothing new (not even a request waiting
        for the rate limiter), and let requests in flight finish within
        `pipeline.grace_period` (at once with `now`). What was not answered comes out as
        deferred. A run started later is not affected.

        Safe from any thread (a signal handler's, an admin endpoint's, a notebook widget's):
        called from another thread than the event loop's, the stop is handed to the loop and
        takes effect there a moment later."""
        loop = self._loop
        if loop is not None and not _on(loop):
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing runs
                loop.call_soon_threadsafe(functools.partial(self._stop, now=now))
            return
        self._stop(now=now)

    def _stop(self, *, now: bool) -> None:
        for later in self._later:
            later.stopped = now
        for run in list(self._runs):
            run.interrupted = True
            run.stop(now=now, why="interrupted", reason=_INTERRUPTED)

    async def _close_at_exit(self) -> None:
        """The interpreter exits with a run of this instance going: closed as an `async
        with` would close it (the runs stopped, the connections and an own cache closed)."""
        if self._loop is not None:
            await self.__aexit__(None, None, None)

    def _ctrl_c(self, run: _Run) -> None:
        """Ctrl-C (see `interrupt`): the run stops at once, and its consumer gets the
        `KeyboardInterrupt` after the last item."""
        if run in self._runs:
            run.interrupt = run.interrupt or KeyboardInterrupt()
            run.interrupted = True
            run.stop(now=True, why="interrupted", reason=_INTERRUPTED)

    def run(
        self,
        chunks: AsyncIterable[Chunk],
        *,
        stats: RunStats | None = None,
        deadline: float | None = None,
    ) -> AsyncGenerator[Outcome, None]:
        """Start the whole pipeline over `chunks`; yields what completes, as it completes.

        On a fatal condition (credentials refused) the run stops: what finished has been
        yielded, the keys not yet answered are yielded as deferred, and `self.fatal` is set.
        """
        return self._drive(self._start(chunks, stats, deadline))

    def _usable(self, deadline: float | None) -> asyncio.AbstractEventLoop:
        """The loop a run would start in; UsageError if this instance cannot start one there,
        or for a `deadline` that is no number of seconds > 0."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise UsageError(
                "an Enricher runs inside an event loop: `async with Enricher(settings) as e`"
                " in a coroutine (or enricher.enrich_sync from plain code)"
            ) from None
        if self._sender is None or self._loop is None:
            raise UsageError("open the Enricher first: `async with Enricher(settings) as e`")
        if loop is not self._loop:
            raise UsageError(
                "this Enricher belongs to the event loop it was opened in; open another one"
                " in this loop"
            )
        if deadline is not None and (
            isinstance(deadline, bool)
            or not isinstance(deadline, int | float)
            or not (0 < deadline < math.inf)
        ):
            raise UsageError(f"deadline: seconds for the whole run, > 0 (got {deadline!r})")
        return loop

    def _start(
        self, chunks: AsyncIterable[Chunk], stats: RunStats | None, deadline: float | None
    ) -> _Run:
        loop = self._usable(deadline)
        assert self._sender is not None  # open, as `_usable` found
        stats = stats or self._shared_stats or RunStats()
        self.stats = stats
        run = _Run(self, self._sender, stats)
        self._runs.add(run)
        run.task = loop.create_task(run.main(chunks), name="enricher run")
        # Ctrl-C in a loop the caller keeps stops the run, and so does the interpreter's exit
        run.ctrl_c = watch(functools.partial(self._ctrl_c, run))
        at_exit(run, self._close_at_exit)
        if deadline is not None:
            run.timers.append(
                loop.call_later(
                    deadline,
                    functools.partial(
                        run.stop,
                        now=True,
                        why=f"deadline: {deadline:g} s passed",
                        reason=f"deadline: the run's {deadline:g} s were up before it was answered",
                    ),
                )
            )
        return run

    async def _drive(self, run: _Run) -> AsyncGenerator[Outcome, None]:
        assert run.task is not None
        try:
            while (item := await run.out_q.get()) is not None:
                run.room.release()
                yield item
            await run.task
        finally:
            if not run.task.done():
                # the consumer left early (break, a timeout, Ctrl-C): stop, count the rest
                run.stop(
                    now=True,
                    why="left early: the consumer stopped reading",
                    reason="not answered: the consumer stopped reading first",
                )
                await asyncio.gather(run.task, return_exceptions=True)
            self._finish(run)

    async def _close_runs(self) -> None:
        runs = list(self._runs)
        for run in runs:
            run.stop(
                now=True,
                why="closed: the Enricher was closed while it ran",
                reason="not answered: the Enricher was closed first",
            )
        tasks = [run.task for run in runs if run.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        for run in runs:
            self._finish(run)

    def _finish(self, run: _Run) -> None:
        """What a finished run found, kept on the instance (once)."""
        if run not in self._runs:
            return
        self._runs.discard(run)
        unwatch(run.ctrl_c)
        at_exit(run, None)
        for timer in run.timers:
            timer.cancel()
        run.stats.finished = time.monotonic()
        self.fatal = run.fatal
        self.input_error = run.input_error
        self.interrupted = run.interrupted
        self._seen = run.deduper
        self.occurrences = run.occurrences


class _Run:
    """The state of one pipeline run: its queues, stages and the keys not yet resolved."""

    def __init__(self, owner: Enricher, sender: Sender, stats: RunStats) -> None:
        settings = owner.settings
        self.settings = settings
        self.sender = sender
        self.stats = stats
        self.cache = owner.cache
        #: endpoints the cache has no answer for as the run starts: their lookups are skipped
        self.identity = owner.identity
        #: (read as ingest begins)
        self.cache_empty: set[Endpoint] = set()
        #: a store shared with other jobs at once: the keys a run misses are claimed first
        self.claims = self.cache if isinstance(self.cache, Claims) else None
        #: keys another job claimed (is asking), looked up again now and then (`recheck`)
        self.elsewhere: list[Key] = []
        #: keys this run claimed and has not answered yet, by endpoint (given back at the end)
        self.claimed: dict[Endpoint, set[str]] = {}
        self.recheck_at = 0.0
        self.with_source = owner.with_source
        #: every unique key taken in, until settled; why keys are deferred instead of sent
        #: (cache only, a budget spent, stopping), once they are
        self.ledger = Ledger(
            stats, halted="cache only: not in the cache" if owner.cache_only else None
        )
        self.origins = self.ledger.origins  # key -> where first seen, until settled
        #: the stage that takes lines in (normalize, dedupe, admit)
        self.admission = Ingest(
            self.ledger,
            withhold=owner.privacy.reason,
            done=owner.done,
            send_sha256=settings.api.send_sha256,
            with_source=owner.with_source,
        )
        self.deduper = self.admission.deduper
        self.occurrences = self.admission.occurrences
        conc = settings.limits.concurrency
        self.chunk_q: asyncio.Queue[Chunk | None] = asyncio.Queue(settings.pipeline.read_queue)
        self.batch_q: asyncio.Queue[Batch | None] = asyncio.Queue(conc)
        # unbounded, so that the last hand-offs (what a stop leaves) never wait; `room`
        # bounds what the stages hand on ahead of the consumer
        self.out_q: asyncio.Queue[Outcome | None] = asyncio.Queue()
        self.room = asyncio.Semaphore(conc * 2)
        self.batcher = Batcher({ep: settings.api.batch_size(ep) for ep in Endpoint})
        self.progress = asyncio.Event()
        self.inflight: dict[int, Batch] = {}  # worker number -> the batch it is working on
        self.fatal: FatalError | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.task: asyncio.Task[None] | None = None  # `main`
        self.timers: list[asyncio.TimerHandle] = []  # a deadline, the end of a grace period
        self.stopping = False
        #: set as the run begins to stop: waits for the limiter, the budget or a backoff end
        self.halting = asyncio.Event()
        #: stopped by `Enricher.stop()` (a signal)
        self.interrupted = False
        self.input_error: InputError | None = None
        #: a KeyboardInterrupt or SystemExit that landed in a stage (see `guard`), or Ctrl-C
        self.interrupt: BaseException | None = None
        #: what `interrupt.watch` gave, to stop watching for Ctrl-C as the run ends
        self.ctrl_c: object | None = None
        #: the chunk `read` is handing to ingest, and chunks read that ingest never took (a
        #: stop came first): what a library run then gives as deferred
        self.reading: Chunk | None = None
        self.unread: list[Chunk] = []
        # outcomes settled and not yet in `out_q` (waiting for room): handed on by `main`
        # if a stop cuts in
        self.unsent: list[Outcome] = []
        #: the stage that sends batches and carries out what `resolve` makes of the answers
        self.send = Send(
            settings, sender, self.ledger, self.batcher, halting=self.halting, make_line=record_line
        )
        self.ttl_factor = self.send.ttl_factor
        self.verdicts = settings.verdicts

    async def main(self, chunks: AsyncIterable[Chunk]) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                if self.stopping:  # stopped before it began: nothing is read
                    if self.chunk_q.empty():  # (a first stop() has said so already)
                        self.chunk_q.put_nowait(None)
                else:
                    self.tasks["read"] = tg.create_task(self.guard(self.read(chunks)), name="read")
                self.tasks["ingest"] = tg.create_task(self.guard(self.ingest()), name="ingest")
                for n in range(self.settings.limits.concurrency):
                    self.tasks[f"send-{n}"] = tg.create_task(
                        self.guard(self.worker(n)), name=f"send-{n}"
                    )
        except* FatalError as group:
            fatal = group.exceptions[0]
            assert isinstance(fatal, FatalError)
            self.fatal = fatal
            self.stats.stopped = str(fatal)
            self.ledger.halted = f"run stopped: {fatal}"
        finally:
            # whatever is still open (stopped, or a fatal error) is deferred, not lost, and
            # handed on without waiting: if the consumer has gone, it is still counted, so
            # that the stats add up
            leftover = self.abandon(self.ledger.halted or "run stopped")
            self.keep_unread()
            if self.reading is not None:
                self.unread.append(self.reading)
                self.reading = None
            for outcome in self.unsent:
                self.out_q.put_nowait(outcome)
            self.unsent.clear()
            if leftover:
                self.out_q.put_nowait(leftover)
            # the consumer stops at None, then awaits this task to see any error
            self.out_q.put_nowait(None)
            await self.release()

    def stop(self, *, now: bool, why: str, reason: str) -> None:
        """First: read no more, send nothing new, defer what is not in flight, give
        in-flight requests the grace period. Then (or `now`): stop every stage; `abandon`
        defers the rest. `why` is the run's (`stats.stopped`), `reason` each deferred IOC's
        (unless the run was deferring for a reason already: a budget spent)."""
        first = not self.stopping
        self.stopping = True
        self.halting.set()
        if self.stats.stopped is None:
            self.stats.stopped = why
        self.ledger.halt(reason)
        if now:
            for task in self.tasks.values():
                task.cancel()
            return
        if not first:
            return
        read = self.tasks.get("read")
        if read is not None:
            read.cancel()
        # chunks read and not yet taken in are not counted: kept aside (the library gives
        # them as deferred), and ingest is told the input ended
        self.keep_unread()
        self.chunk_q.put_nowait(None)
        self.timers.append(
            asyncio.get_running_loop().call_later(
                self.settings.pipeline.grace_period,
                functools.partial(self.stop, now=True, why=why, reason=reason),
            )
        )

    async def guard(self, stage: Coroutine[Any, Any, None]) -> None:
        """Run a stage; a `KeyboardInterrupt` (or `SystemExit`) raised inside it stops the
        run instead of escaping the task. In a loop kept across notebook cells, Ctrl-C lands
        in whatever code runs, often a stage: escaping, it would leave the run going into the
        next cell and come back there. Here it is kept for the consumer, raised after the
        last item (`Enricher.enrich`)."""
        try:
            await stage
        except (KeyboardInterrupt, SystemExit) as exc:
            self.interrupt = self.interrupt or exc
            self.interrupted = True
            self.stop(now=True, why="interrupted", reason=_INTERRUPTED)

    def keep_unread(self) -> None:
        """Chunks read and not taken in, out of `chunk_q` into `unread`."""
        while not self.chunk_q.empty():
            chunk = self.chunk_q.get_nowait()
            if chunk is not None:
                self.unread.append(chunk)

    def not_reached(self, chunk: Chunk) -> Outcome:
        """A chunk the run did not reach before it stopped, taken in now and deferred (never
        sent): its IOCs are counted as any others, so the stats still add up."""
        outcome, new = self.admission.take(chunk)
        outcome.deferred += self.ledger.defer(new, NOT_REACHED)
        return outcome

    async def emit(self, outcome: Outcome) -> None:
        """Hand an outcome to the consumer, once it has room; if this is cancelled, `main`
        hands it on later. Its first step is synchronous: what a stage settled in the ledger
        just before is on record at once."""
        self.unsent.append(outcome)
        await self.deliver(outcome)

    async def deliver(self, outcome: Outcome) -> None:
        """Hand on an outcome already in `unsent`, once the consumer has room."""
        await self.room.acquire()
        self.unsent.remove(outcome)
        self.out_q.put_nowait(outcome)

    # -- stage: read ---------------------------------------------------------------------

    async def read(self, chunks: AsyncIterable[Chunk]) -> None:
        try:
            async for chunk in chunks:
                self.reading = chunk
                await self.chunk_q.put(chunk)
                self.reading = None
        except Exception as exc:
            # an input that breaks part way: enrich what was read, then say so
            self.input_error = (
                exc
                if isinstance(exc, InputError)
                else InputError(f"reading the input failed: {exc!r}")
            )
            self.stats.stopped = self.stats.stopped or str(self.input_error)
        await self.chunk_q.put(None)

    # -- stage: normalize, dedupe, (cache), batch -------------------------------------------

    async def ingest(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = self.settings.pipeline.batch_deadline
        batcher = self.batcher
        oldest: float | None = None  # when the oldest key now waiting in the batcher came
        if self.cache is not None and self.claims is None:
            # (a shared store fills as other jobs run: every key is looked up)
            self.cache_empty = await self.cache.unanswered_endpoints(identity=self.identity)
        # chunks' new keys being looked up (off the event loop, one lookup at a time) while
        # the next chunks are taken in and the hits of earlier ones written: the three
        # overlap rather than add up. `_AHEAD` chunks ahead at most, each served in its turn
        # (the records' order is kept)
        ahead: collections.deque[Lookup] = collections.deque()
        try:
            while True:
                timeout = deadline if oldest is None else max(0.0, oldest + deadline - loop.time())
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for can miss a cancellation
                    async with asyncio.timeout(timeout):
                        chunk = await self.chunk_q.get()
                except TimeoutError:
                    # keys have waited a deadline: send partial batches, so a slow stdin flows
                    await self.dispatch(list(batcher.drain()))
                    oldest = None
                    await self.recheck()
                    continue
                if chunk is None:
                    break
                # the new keys are open in the ledger from here until settled (a stop defers
                # them)
                outcome, new = self.admission.take(chunk)
                if self.cache is not None and new:
                    if outcome:
                        # what the chunk settled as it came in follows the chunks before it
                        await self.serve_all(ahead)
                        await self.emit(outcome)
                    elif len(ahead) >= _AHEAD:
                        await self.serve_first(ahead)
                    groups, values = group_keys(new, ENDPOINT_OF)
                    ahead.append((asyncio.ensure_future(self.lookup(groups, values)), groups))
                    # the lookup's thread starts now, before the next chunk is taken in (a
                    # queue's get does not yield while it holds a chunk)
                    await asyncio.sleep(0)
                else:
                    await self.serve_all(ahead)
                    full = self.batch(new, outcome)
                    if outcome:
                        await self.emit(outcome)
                    await self.dispatch(full)
                await self.recheck()
                while ahead and self.chunk_q.empty():
                    # no chunk to take in meanwhile: the ones looked up go on now, the oldest
                    # first (no chunk waits on the queue while lookups are ahead)
                    await self.serve_first(ahead)
                if not len(batcher):
                    oldest = None
                elif oldest is None:
                    oldest = loop.time()
            await self.serve_all(ahead)
        finally:
            for task, _ in ahead:
                task.cancel()
        # input done: flush, then keep flushing keys sent back for a later batch until every
        # key is resolved
        while True:
            await self.recheck()
            await self.dispatch(list(batcher.drain()))
            if not self.ledger.open:
                break
            self.progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline):
                    await self.progress.wait()
        for _ in range(self.settings.limits.concurrency):
            await self.batch_q.put(None)

    async def serve_all(self, ahead: collections.deque[Lookup]) -> None:
        """The chunks looked up ahead served, in their order."""
        while ahead:
            await self.serve_first(ahead)

    async def serve_first(self, ahead: collections.deque[Lookup]) -> None:
        """The oldest chunk looked up ahead served (left in `ahead` until it is, so that a
        stop meanwhile cancels its lookup)."""
        await self.served(*ahead[0])
        ahead.popleft()

    async def served(
        self,
        looked_up: Awaitable[dict[Endpoint, dict[str, CachedAnswer]]],
        keys: dict[Endpoint, list[Key]],
    ) -> None:
        """`keys` (by endpoint) served from the store's answers (`looked_up`): the hits
        emitted, the others claimed and batched (the full batches handed to the workers)."""
        outcome = Outcome()
        hits = await looked_up
        new = await self.claim(self.from_cache(keys, hits, outcome))
        full = self.batch(new, outcome)
        if outcome:
            await self.emit(outcome)
        await self.dispatch(full)

    async def claim(self, keys: list[Key]) -> list[Key]:
        """The keys among `keys` (missed by the store) this run asks: with a store shared
        with other jobs, those no other job claimed; the rest wait in `elsewhere`.

        Why claims, not duplicates: two `enricher run` jobs over the same 500 IOCs at once
        (one Redis state, 20/s shared) asked 1,000 keys in the same order and 895 shuffled
        without claims, 500 with: without, a job reads ahead of the rate, so both miss
        nearly every key before either is answered. A claim costs one SET NX per key, in
        the pipeline of its batch of keys (`RedisAnswers.claim`). A claim not answered
        (failed, deferred, a job that died) expires after `claim_ttl` (60 s): the other job
        then asks it."""
        if self.claims is None or not keys or self.ledger.halted is not None:
            return keys
        values: dict[Endpoint, list[str]] = {}
        for t, value in keys:
            values.setdefault(ENDPOINT_OF[t], []).append(value)
        ours: dict[Endpoint, set[str]] = {}
        for endpoint, wanted in values.items():
            got = await self.claims.claim(endpoint, wanted, identity=self.identity)
            ours[endpoint] = set(got)
            self.claimed.setdefault(endpoint, set()).update(got)
        mine: list[Key] = []
        for key in keys:
            (mine if key[1] in ours[ENDPOINT_OF[key[0]]] else self.elsewhere).append(key)
        return mine

    async def release(self) -> None:
        """Give back the claims on the keys this run did not answer (failed, deferred), so
        that another job asks them now, not once the claims expire. Redis gone: they
        expire."""
        claimed, self.claimed = self.claimed, {}
        if self.claims is None:
            return
        for endpoint, keys in claimed.items():
            if keys:
                with contextlib.suppress(Exception):
                    await self.claims.release(endpoint, list(keys), identity=self.identity)

    async def recheck(self) -> None:
        """The keys another job was asking, looked up again (at most every `_RECHECK` s):
        served if answered since, asked if their claim has gone, else left waiting."""
        now = asyncio.get_running_loop().time()
        if not self.elsewhere or now < self.recheck_at:
            return
        self.recheck_at = now + _RECHECK
        groups, values = group_keys(self.elsewhere, ENDPOINT_OF)
        self.elsewhere = []
        await self.served(self.lookup(groups, values), groups)

    async def dispatch(self, batches: Sequence[Batch]) -> None:
        """Hand batches to the workers (or defer them, when the run is halted)."""
        if not batches:
            return
        if (why := self.ledger.halted) is not None:
            keys = [k for b in batches for k in b.keys]
            await self.emit(Outcome(deferred=self.ledger.defer(keys, why)))
            return
        for batch in batches:
            await self.batch_q.put(batch)

    def batch(self, new: list[Key], outcome: Outcome) -> list[Batch]:
        """Hand new keys to the batcher (or defer them, when the run is halted); the batches
        filled."""
        full: list[Batch] = []
        if (why := self.ledger.halted) is not None:
            outcome.deferred += self.ledger.defer(new, why)
        else:
            full = self.batcher.add_all(new)
        return full

    async def lookup(
        self, keys: dict[Endpoint, list[Key]], values: dict[Endpoint, list[str]]
    ) -> dict[Endpoint, dict[str, CachedAnswer]]:
        """The store's answers for `keys` (by endpoint; `values`: their values), in one call
        (the store reads off the event loop: a read may wait for another process's lock)."""
        cache = self.cache
        assert cache is not None
        by_endpoint: dict[Endpoint, list[str]] = {}
        skipped = 0
        for endpoint, group in keys.items():
            if endpoint in self.cache_empty:
                # nothing to find: each key is asked once in a run, before it is stored
                skipped += len(group)
            else:
                by_endpoint[endpoint] = values[endpoint]
        if skipped:
            cache.tally(misses=skipped)
        if not by_endpoint:
            return {}
        return await cache.answers(by_endpoint, identity=self.identity)

    def from_cache(
        self,
        by_endpoint: dict[Endpoint, list[Key]],
        found: dict[Endpoint, dict[str, CachedAnswer]],
        outcome: Outcome,
    ) -> list[Key]:
        """Record lines for the keys (by endpoint) the cache answered (`found`); the keys it
        did not."""
        assert self.cache is not None
        misses: list[Key] = []
        hits_keys: list[Key] = []
        hits_verdicts: list[str] = []
        lines = outcome.cached_lines
        fmt = self.cache.fmt
        whole = not self.with_source
        for endpoint, group in by_endpoint.items():
            hits = found.get(endpoint)
            if not hits:
                misses.extend(group)
                continue
            if whole and (ordered := getattr(hits, "served", None)) is not None:
                # each key hit by a line served as it is (a warm run), in the order asked: the
                # group in one step (`Cache.lookup`)
                lines += ordered[0]
                hits_verdicts += ordered[1]
                hits_keys += group
                continue
            if whole and (served := split(hits, group, fmt)) is not None:
                # each hit's line served as it is (a warm run): the group in one step
                lines += served[0]
                hits_verdicts += served[1]
                hits_keys += served[2]
                misses += served[3]
                continue
            for key in group:
                hit = hits.get(key[1])
                if hit is None:
                    misses.append(key)
                    continue
                verdict, _, line = hit
                if whole and servable(hit, fmt):
                    lines.append(line)  # made just as this run would make it, and served
                else:
                    origin = self.origins.get(key[1]) if self.with_source else None
                    made = self.recache(key, line, origin)
                    if made is None:
                        misses.append(key)  # a cached line that cannot be read: ask again
                        self.cache.tally(hits=-1, misses=1)
                        continue
                    line, verdict = made
                    lines.append(line)
                hits_keys.append(key)
                hits_verdicts.append(verdict)
        self.ledger.answered(hits_keys, hits_verdicts, cached=True)
        return misses

    def recache(
        self, key: Key, line: bytes, origin: tuple[str, int] | None = None
    ) -> tuple[bytes, str] | None:
        """A cached record made anew, and its verdict: under other settings (a changed
        verdict table), or to say where this run saw its IOC. None if it cannot be read."""
        try:
            entry, raw = read_entry(response_bytes(line))
        except (ValueError, RecursionError, MalformedBody):  # msgspec's errors: ValueErrors
            return None
        line, verdict, _ = record_line(
            key[0], key[1], entry, raw, self.verdicts, self.ttl_factor, True, origin
        )
        return line, verdict

    # -- stage: send and merge ----------------------------------------------------------------

    async def worker(self, n: int) -> None:
        while (batch := await self.batch_q.get()) is not None:
            self.inflight[n] = batch
            done = Settled()
            if (why := self.ledger.halted) is not None:
                done.deferred.append((batch.keys, why))
            else:
                await self.send.resolve(batch.endpoint, batch.keys, done)
            # the batch is settled only now, in one step with handing it on: a stop before
            # this point leaves its keys open in the ledger, and `abandon` defers them
            del self.inflight[n]
            outcome = self.send.settle(done)
            if outcome:
                self.unsent.append(outcome)
            answered = outcome.answered
            if answered and (claimed := self.claimed.get(batch.endpoint)):
                claimed.difference_update(ioc for ioc, _, _ in answered)
            if answered and self.cache is not None:
                # the lists as they are: no tuple an answer on the event loop
                await store_lines(
                    self.cache, batch.endpoint, answered, outcome.lines, identity=self.identity
                )
            self.progress.set()
            if outcome:
                await self.deliver(outcome)

    def abandon(self, why: str) -> Outcome:
        """Every key not yet settled, deferred: the run is stopping."""
        return Outcome(deferred=self.ledger.abandon(why))


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether this thread is running `loop`."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _items_of(
    outcome: Outcome, rejects: bool
) -> Iterator[Record | Failure | Deferred | Skipped | Reject]:
    """What `Enricher.enrich` yields for one outcome (its rejects, only when asked for)."""
    for line in outcome.lines:
        yield read_record(line)
    for line in outcome.cached_lines:
        yield read_record(line)
    yield from outcome.failures
    yield from outcome.deferred
    yield from outcome.skipped
    if rejects:
        yield from outcome.rejects
