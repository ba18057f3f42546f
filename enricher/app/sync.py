"""Enrichment from plain code (a script, a notebook cell): `enrich_sync`, no `await` needed.

Outside an event loop it runs one of its own. Inside a running loop, where `asyncio.run`
fails (a Jupyter notebook runs its cells in one), it runs the enrichment on a loop of its own
in another thread, and the calling thread waits for it. Either way Ctrl-C stops the run as
`Enricher.stop(now=True)` does, and `KeyboardInterrupt` is raised (`CancelledError` when
`asyncio.run`'s handler took the signal and cancelled the calling task) once the run's last
items (the IOCs it had not answered) are collected; a second Ctrl-C gives up collecting them
(counted in the stats, not in the lists).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..config.settings import Settings, load_settings
from ..errors import UsageError
from ..output.records import Deferred, Failure, Record, Reject, Skipped
from ..pipeline.run import Enricher
from ..pipeline.stats import RunStats

__all__ = ["Enriched", "enrich_sync"]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Enriched:
    """What one `enrich_sync` run gave, by kind, and its stats."""

    records: list[Record] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    #: not asked (the deadline passed, a budget was spent): for a later run
    deferred: list[Deferred] = field(default_factory=list)
    #: items that are no IOC, and why
    rejects: list[Reject] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)
    #: withheld by the privacy rule (internal addresses and names): never sent
    skipped: list[Skipped] = field(default_factory=list)


def enrich_sync(
    iocs: Iterable[str], settings: Settings | None = None, *, deadline: float | None = None
) -> Enriched:
    """Enrich `iocs` (an iterable of IOC strings) and return every item, in and out of a
    running event loop. `settings`: `load_settings()` (the shipped default profile and the
    `ENRICHER_*` variables) unless given. `deadline`: seconds for the whole run; what is
    not answered by then is in `deferred`.

    Raises `AuthRefused` when the credentials are refused, `InputError` when iterating
    `iocs` fails part way, `UsageError` for one string where an iterable is expected. Any
    exception raised once the run has begun (those, `KeyboardInterrupt`, ...) carries what
    the run gave before it as its `enriched` attribute (an `Enriched`: records fetched,
    the IOCs not answered deferred): `getattr(exc, "enriched", None)`.
    """
    if isinstance(iocs, str | bytes | bytearray | memoryview):
        raise UsageError(
            "enrich_sync() takes an iterable of IOCs, not one string: enrich_sync([ioc])"
        )
    chosen = settings if settings is not None else load_settings()
    stopper = _Stopper()
    # filled as items come, so that an exception can carry what came before it
    out = Enriched()

    async def collect(items: AsyncIterator[Record | Failure | Deferred | Skipped | Reject]) -> None:
        async for item in items:
            if stopper.given_up:  # a second Ctrl-C: what is left is counted, not collected
                break
            if "error" in item:
                out.failures.append(item)
            elif "input" in item:
                out.rejects.append(item)
            elif "reason" in item:
                out.deferred.append(item)
            elif "skipped" in item:
                out.skipped.append(item)
            else:
                out.records.append(item)

    async def main() -> Enriched:
        async with Enricher(chosen) as e:
            items = e.enrich(iocs, rejects=True, deadline=deadline, stats=out.stats)
            stopper.started(asyncio.get_running_loop(), e)
            # in a task of its own, so that Ctrl-C (asyncio.run cancels this task) stops the
            # run and its last items, the IOCs not answered, are still collected
            collector = asyncio.ensure_future(collect(items))
            try:
                await asyncio.shield(collector)
            except asyncio.CancelledError:
                e.stop(now=True)
                await collector
                raise
        return out

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(main())  # Ctrl-C cancels it: the Enricher stops its run
        return _in_thread(main(), stopper, asyncio.current_task())
    except BaseException as exc:
        setattr(exc, _ENRICHED, out)  # not in the exception's text: only an attribute
        raise


#: the attribute of an exception `enrich_sync` raises that holds what the run gave before it
_ENRICHED = "enriched"


class _Stopper:
    """Stops the run of another thread's loop, whether it has started yet or not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = False
        #: stop collecting what the stopped run still hands over (a second Ctrl-C)
        self.given_up = False
        self._run: tuple[asyncio.AbstractEventLoop, Enricher] | None = None

    def started(self, loop: asyncio.AbstractEventLoop, enricher: Enricher) -> None:
        """The run has begun on `loop` (called there): stopped at once if `stop` came first."""
        with self._lock:
            self._run = (loop, enricher)
            stopped = self._stopped
        if stopped:
            enricher.stop(now=True)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            run = self._run
        if run is not None:
            loop, enricher = run
            with contextlib.suppress(RuntimeError):  # that loop has closed: the run is over
                loop.call_soon_threadsafe(functools.partial(enricher.stop, now=True))


def _in_thread(
    work: Coroutine[Any, Any, R], stopper: _Stopper, caller: asyncio.Task[Any] | None
) -> R:
    """`work` run to its end on a loop of its own in another thread; this thread waits.

    Ctrl-C stops the run: as `KeyboardInterrupt` here (a notebook kernel's interrupt), or as
    the cancellation of the `caller` task that `asyncio.run`'s own SIGINT handler requests
    (this thread blocks its loop, so only a look at the task sees it): `CancelledError`."""
    result: list[R] = []
    error: list[BaseException] = []

    # waited for on an Event, not by `Thread.join`: a join that Ctrl-C interrupts marks the
    # thread finished while it runs (CPython 3.11, bpo-45274's fix), and a second returns at once
    done = threading.Event()

    def target() -> None:
        try:
            result.append(asyncio.run(work))
        except BaseException as exc:  # raised in the caller's thread
            error.append(exc)
        finally:
            done.set()

    def stop() -> None:
        stopper.stop()
        try:
            done.wait()  # the run's last items (a long list's IOCs not reached) collected
        except KeyboardInterrupt:
            # a second Ctrl-C: give up collecting them, but leave no thread behind (a
            # third one walks away from it)
            stopper.given_up = True
            done.wait()
            raise
        finally:
            if done.is_set():
                thread.join()  # it has only to end

    thread = threading.Thread(target=target, name="enrich_sync", daemon=True)
    thread.start()
    try:
        while not done.wait(0.1):  # with a timeout, so that Ctrl-C reaches this thread
            if caller is not None and caller.cancelling():
                stop()
                raise asyncio.CancelledError("enrich_sync: the calling task was cancelled")
    except KeyboardInterrupt:
        stop()
        raise
    thread.join()
    if error:
        raise error[0]
    return result[0]
