"""The deferred list of each job, shared through Redis (`DeferredList`'s shape): the IOCs a
run of the job could not ask, which its next run (on any host) asks first.

What is shared: `NAMESPACE:deferred:JOB`, a list of `type TAB ioc TAB reason` entries.
Guarantees: `replace` is one transaction (MULTI/EXEC): a reader sees the old list or the new
one, never a mix. When Redis goes away: both calls raise `StateLost`; the run's deferred file
still has the IOCs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ...ioc import IocType
from .connection import SharedState

__all__ = ["RedisDeferred"]

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
