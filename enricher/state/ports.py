"""The seams of the state that outlives a run: the answer store, the budget store, the
deferred list.

A run reaches its state only through these three Protocols, so that the same pipeline runs
over the SQLite file (`answers.Cache`, `budget.SqliteBudget`, `deferred.SqliteDeferred`), over
dicts (`memory`), or over a shared server. Every call that may block (a disk, a lock held by
another process, a network) is a coroutine, and every read is batch-shaped: many keys per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..api.identity import ApiIdentity
from ..ioc import Endpoint, IocType

__all__ = [
    "AnswerStore",
    "Answered",
    "BudgetStore",
    "CachedAnswer",
    "Claims",
    "DeferredList",
    "store_lines",
]

#: a stored answer as a hit is served: (verdict, record format, record line with
#: `"cached":true`)
CachedAnswer = tuple[str, str, bytes]
#: an answer to store: (key, verdict, record line as written, ttl in ms or None)
Answered = tuple[str, str, bytes, int | None]


class AnswerStore(Protocol):
    """Answers by (identity, endpoint, key), each served only to the identity that fetched it."""

    #: the record format of the lines this store is given (a hit of another format is made anew)
    fmt: str

    @property
    def identity(self) -> ApiIdentity | None:
        """The identity the store is bound to (its report names it), if any."""

    def admit(self, identity: ApiIdentity) -> object:
        """Make `identity` known, so that it may be given to the methods below (at setup)."""

    def bind(self, identity: ApiIdentity) -> None:
        """Serve, store and report for `identity` when none is given."""

    async def unanswered_endpoints(self, *, identity: ApiIdentity | None) -> set[Endpoint]:
        """The endpoints the store holds no answer of `identity` for, once what was given to
        `store_soon` so far is stored."""

    async def answers(
        self, keys: Mapping[Endpoint, Sequence[str]], *, identity: ApiIdentity | None
    ) -> dict[Endpoint, dict[str, CachedAnswer]]:
        """The live answers of `identity` among `keys`, by endpoint and key (absent: a miss)."""

    async def store_soon(
        self, endpoint: Endpoint, items: Iterable[Answered], *, identity: ApiIdentity | None
    ) -> None:
        """Keep answers of `identity` (stored by `aclose()` at the latest); waits, without
        blocking the loop, while the store is behind."""

    async def store_lines_soon(
        self,
        endpoint: Endpoint,
        answered: Sequence[tuple[str, str, int | None]],
        lines: Sequence[bytes],
        *,
        identity: ApiIdentity | None,
    ) -> None:
        """`store_soon` of answers as the pipeline holds them: (key, verdict, ttl in ms or
        None) and their record lines, in one order (the caller may add to both later).
        Optional: a store without it (one written before it) is given `store_soon`'s
        answers (`store_lines`); one subclassing this Protocol gets this, which does so."""
        items = [(k, v, line, t) for (k, v, t), line in zip(answered, lines, strict=True)]
        await self.store_soon(endpoint, items, identity=identity)

    def tally(self, *, hits: int = 0, misses: int = 0) -> None:
        """Add to the hit and miss counts of `report()` (keys the run did not look up, hits it
        could not use)."""

    def report(self) -> dict[str, object]:
        """What the summary and the manifest say of the store."""

    async def aclose(self) -> None:
        """Store what was given, then let go of the store's resources."""


async def store_lines(
    store: AnswerStore,
    endpoint: Endpoint,
    answered: Sequence[tuple[str, str, int | None]],
    lines: Sequence[bytes],
    *,
    identity: ApiIdentity | None,
) -> None:
    """`store.store_lines_soon`, or, for an `AnswerStore` without it (a library user's,
    written to the Protocol as it was before it), `store_soon` of the same answers: the
    pipeline's call to a member such a store lacks failed the run."""
    own = getattr(store, "store_lines_soon", None)
    if own is None:  # the Protocol's own: store_soon of the same answers
        await AnswerStore.store_lines_soon(store, endpoint, answered, lines, identity=identity)
    else:
        await own(endpoint, answered, lines, identity=identity)


@runtime_checkable
class Claims(Protocol):
    """An answer store shared with other jobs that may be asking the same IOCs at the same
    time (Redis's): a run claims the keys it missed before asking them, and leaves to the
    others the keys they claimed (their answers come to the store)."""

    async def claim(
        self, endpoint: Endpoint, keys: Sequence[str], *, identity: ApiIdentity | None = None
    ) -> list[str]:
        """The keys among `keys` this store now asks, and no other job (for a while)."""

    async def release(
        self, endpoint: Endpoint, keys: Sequence[str], *, identity: ApiIdentity | None = None
    ) -> None:
        """Give back the claims on `keys` (not answered: another job may ask them)."""


class BudgetStore(Protocol):
    """Requests counted per identity and UTC day, across runs, and the spent quota."""

    async def reserve(self, daily: int) -> bool:
        """Count one request today if today's count stays within `daily`: False, and nothing
        counted, if not. Atomic: runs sharing the store never count past `daily` between them.
        Raises `BudgetSpent` when the count cannot be kept."""

    def count_soon(self, n: int) -> None:
        """Count `n` requests sent today (not reserved), without waiting: counted by the
        store's close at the latest."""

    async def quota_until(self, longest: float) -> float | None:
        """Until when the server said the quota is spent, if that is still ahead (at most
        `longest` seconds from now)."""

    async def set_quota_until(self, until: float) -> None:
        """The server said the quota is spent until `until` (epoch seconds)."""


class DeferredList(Protocol):
    """The IOCs each job could not ask, which its next run asks first."""

    async def read(self, job: str) -> list[tuple[IocType, str]]:
        """The IOCs earlier runs of `job` deferred."""

    async def replace(self, job: str, items: Sequence[tuple[str, str, str]]) -> None:
        """`job`'s list becomes `items`: (type, ioc, reason)."""
