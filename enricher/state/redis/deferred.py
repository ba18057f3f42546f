"""The deferred list of each job, shared through Redis (`DeferredList`'s shape): the IOCs a
run of the job could not ask, which its next run (on any host) asks first.

What is shared: `NAMESPACE:deferred:JOB`, a list of `type TAB ioc TAB reason` entries.
Guarantees: `replace` is one transaction (MULTI/EXEC): a reader sees the old list or the new
one, never a mix. When Redis goes away: both calls raise `StateLost`; the run's deferred file
still has the IOCs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from ...ioc import IocType
from .connection import SharedState

__all__ = ["RedisDeferred", "waiting"]

#: entries pushed by one RPUSH
_CHUNK = 1000


class RedisDeferred:
    """The deferred lists of the identity whose namespace is `namespace`, by job name."""

    def __init__(self, state: SharedState, namespace: str) -> None:
        self.state = state
        self.namespace = namespace

    def _key(self, job: str) -> str:
        return f"{self.namespace}:deferred:{job}"

    async def read(self, job: str) -> list[tuple[IocType, str]]:
        """The IOCs earlier runs of `job` deferred, in the order they were deferred."""
        rows = await self.state.call(self.state.client.lrange(self._key(job), 0, -1))
        out: list[tuple[IocType, str]] = []
        for row in rows:
            t, ioc, _ = (row if isinstance(row, str) else row.decode()).split("\t", 2)
            with contextlib.suppress(ValueError):  # a type a later release added
                out.append((IocType(t), ioc))
        return out

    async def replace(self, job: str, items: Sequence[tuple[str, str, str]]) -> None:
        """`job`'s list becomes `items`: (type, ioc, reason)."""
        key = self._key(job)
        entries = [f"{t}\t{ioc}\t{reason}" for t, ioc, reason in items]
        async with self.state.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            for i in range(0, len(entries), _CHUNK):
                pipe.rpush(key, *entries[i : i + _CHUNK])
            await self.state.call(pipe.execute())


def _glob(text: str) -> str:
    """`text` matched literally by a Redis glob pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode()


async def _keys(state: SharedState, pattern: str) -> list[str]:
    return sorted([_text(k) async for k in state.client.scan_iter(match=pattern, count=1000)])


async def waiting(
    state: SharedState, job: str | None = None, *, clear_quota: bool = False
) -> tuple[list[tuple[str, str, str, str, str]], list[tuple[str, float]]]:
    """What every identity's jobs deferred, for `enricher deferred`: (identity, job, type,
    ioc, reason) rows, of one job or of all, and the spent quotas, (identity, until),
    deleted with `clear_quota`."""
    client = state.client
    found = await state.call(client.hgetall(f"{state.prefix}:identities"))
    names = {_text(k): _text(v) for k, v in found.items()}
    head = f"{_glob(state.prefix)}:*:"
    rows: list[tuple[str, str, str, str, str]] = []
    pattern = head + "deferred:" + (_glob(job) if job is not None else "*")
    for key in await state.call(_keys(state, pattern)):
        # PREFIX:FINGERPRINT:deferred:JOB (a prefix holds no colon, a fingerprint is hex)
        fp, _, name = key[len(state.prefix) + 1 :].split(":", 2)
        for entry in await state.call(client.lrange(key, 0, -1)):
            t, ioc, why = _text(entry).split("\t", 2)
            rows.append((names.get(fp, f"#{fp}"), name, t, ioc, why))
    quotas: list[tuple[str, float]] = []
    now = time.time()
    for key in await state.call(_keys(state, head + "quota")):
        until = await state.call(client.get(key))
        if until is not None and float(until) > now:
            fp = key[len(state.prefix) + 1 :].split(":", 1)[0]
            quotas.append((names.get(fp, f"#{fp}"), float(until)))
        if clear_quota:
            await state.call(client.delete(key))
    return rows, sorted(quotas, key=lambda q: q[1])
