"""`enricher deferred`: what jobs deferred, and their next runs will ask first.

A run that cannot ask every IOC (the budget or the quota is spent, it was stopped) defers the
rest; the state file keeps them per job and API identity (`--job`, or the output file's path),
and the job's next run asks them before its inputs. This lists them: a line per job and
identity with counts by type and reason, or with `--job NAME` that job's IOCs as NDJSON;
and the spent quotas no run sends before, which `--clear-quota` forgets (a quota raised, a
server that said a wrong time).
"""

from __future__ import annotations

import os
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import orjson

from ..config.settings import Settings
from ..ioc import IocType
from ..threads import call_in_thread
from .answers import Cache, default_cache_path
from .budget import utc_time
from .ports import DeferredList

__all__ = ["SqliteDeferred", "list_deferred", "list_shared_deferred", "print_deferred"]


class SqliteDeferred(DeferredList):
    """The `DeferredList` of the state file: its deferred table, for the identity the cache
    is bound to, read and written in a thread."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def read(self, job: str) -> list[tuple[IocType, str]]:
        cache = self._cache
        return await call_in_thread(lambda: cache.deferred(job), name="deferred")

    async def replace(self, job: str, items: Sequence[tuple[str, str, str]]) -> None:
        cache = self._cache
        await call_in_thread(lambda: cache.set_deferred(job, items), name="deferred")


def _counts(c: Counter[str]) -> str:
    return ", ".join(f"{k} {n:,}" for k, n in c.most_common())


def list_deferred(
    path: str | Path | None, *, job: str | None = None, clear_quota: bool = False
) -> int:
    """Print the deferred IOCs of the state file at `path` (the default one if None), and
    the spent quotas (forgotten with `clear_quota`); 0."""
    where = Path(path).expanduser() if path else default_cache_path()
    if not where.exists():
        print(f"enricher: nothing is deferred (no state file at {where})", file=sys.stderr)
        return 0
    state = Cache(where, max_ttl=0, default_ttl=0)
    try:
        rows = state.waiting(job)
        quotas = state.clear_quotas() if clear_quota else state.quotas()
    finally:
        state.close()
    return print_deferred(str(where), rows, quotas, job=job, clear_quota=clear_quota)


async def list_shared_deferred(
    settings: Settings, *, job: str | None = None, clear_quota: bool = False
) -> int:
    """`list_deferred` of the Redis server `state.url` names: every identity's jobs."""
    from .open import connect

    state = await connect(settings)  # first: without redis-py, it says what to install
    try:
        from .redis.deferred import waiting

        rows, quotas = await waiting(state, job, clear_quota=clear_quota)
    finally:
        await state.aclose()
    return print_deferred(state.url, rows, quotas, job=job, clear_quota=clear_quota)


def print_deferred(
    where: str,
    rows: Sequence[tuple[str, str, str, str, str]],
    quotas: Sequence[tuple[str, float]],
    *,
    job: str | None,
    clear_quota: bool,
) -> int:
    """Print what `where` (a state file, a Redis server) holds: the spent `quotas`
    ((identity, until); forgotten, with `clear_quota`) and the deferred `rows` ((identity,
    job, type, ioc, reason)): `job`'s IOCs as NDJSON, else a line per job; 0."""
    for identity, until in quotas:
        said = "forgotten: was spent until" if clear_quota else "spent until"
        print(f"enricher: quota {said} {utc_time(until)} for {identity}", file=sys.stderr)
    if clear_quota and not quotas:
        print("enricher: no spent quota to forget", file=sys.stderr)
    if job is not None:
        out = sys.stdout.buffer
        try:
            for identity, _, t, ioc, reason in rows:
                line = {"ioc": ioc, "type": t, "reason": reason, "identity": identity}
                out.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
            out.flush()
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"enricher: {len(rows):,} IOCs deferred by job {job!r}", file=sys.stderr)
        return 0
    if not rows:
        print(f"enricher: nothing is deferred ({where})", file=sys.stderr)
        return 0
    types: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    reasons: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for identity, name, t, _, reason in rows:
        types[name, identity][t] += 1
        reasons[name, identity][reason] += 1
    for (name, identity), by_type in types.items():
        print(f"job {name or '(any: deferred before jobs)'}")
        print(f"  identity  {identity}")
        print(f"  waiting   {sum(by_type.values()):,} ({_counts(by_type)})")
        print(f"  why       {_counts(reasons[name, identity])}")
    return 0
