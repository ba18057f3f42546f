"""Enrichment from plain code (a script, a notebook cell): `enrich_sync`, no `await` needed.

Outside an event loop it runs one of its own. Inside a running loop, where `asyncio.run`
fails (a Jupyter notebook runs its cells in one), it runs the enrichment on a loop of its own
in another thread, and the calling thread waits for it. Either way Ctrl-C stops the run as
`Enricher.stop(now=True)` does, and `KeyboardInterrupt` is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .engine import Enricher
from .errors import UsageError
from .records import Deferred, Failure, Record, Reject
from .settings import Settings, load_settings
from .stats import RunStats

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


def enrich_sync(
    iocs: Iterable[str], settings: Settings | None = None, *, deadline: float | None = None
) -> Enriched:
    """Enrich `iocs` (an iterable of IOC strings) and return every item, in and out of a
    running event loop. `settings`: `load_settings()` (the shipped default profile and the
    `ENRICHER_*` variables) unless given. `deadline`: seconds for the whole run; what is
    not answered by then is in `deferred`.

    Raises `AuthRefused` when the credentials are refused, `InputError` when iterating
    `iocs` fails part way, `UsageError` for one string where an iterable is expected.
    """
    if isinstance(iocs, str | bytes | bytearray | memoryview):
        raise UsageError(
            "enrich_sync() takes an iterable of IOCs, not one string: enrich_sync([ioc])"
        )
    chosen = settings if settings is not None else load_settings()
    running: list[tuple[asyncio.AbstractEventLoop, Enricher]] = []

    async def main() -> Enriched:
        out = Enriched()
        async with Enricher(chosen) as e:
            running.append((asyncio.get_running_loop(), e))
            async for item in e.enrich(iocs, rejects=True, deadline=deadline):
                if "error" in item:
                    out.failures.append(item)
                elif "input" in item:
                    out.rejects.append(item)
                elif "reason" in item:
                    out.deferred.append(item)
                else:
                    out.records.append(item)
        return Enriched(out.records, out.failures, out.deferred, out.rejects, e.stats)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())  # Ctrl-C cancels it: the Enricher stops its run
    return _in_thread(main(), running)


def _in_thread(
    work: Coroutine[Any, Any, R], running: list[tuple[asyncio.AbstractEventLoop, Enricher]]
) -> R:
    """`work` run to its end on a loop of its own in another thread; this thread waits."""
    result: list[R] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(work))
        except BaseException as exc:  # raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="enrich_sync", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)  # with a timeout, so that Ctrl-C reaches this thread
    except KeyboardInterrupt:
        for loop, enricher in running:
            with contextlib.suppress(RuntimeError):  # that loop has closed: the run is over
                loop.call_soon_threadsafe(functools.partial(enricher.stop, now=True))
        thread.join()
        raise
    if error:
        raise error[0]
    return result[0]
