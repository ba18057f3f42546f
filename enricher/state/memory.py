"""The state in dicts, for tests and for library users who want no file: an `AnswerStore`,
a `BudgetStore` and a `DeferredList` that live as long as the process.

    store = MemoryAnswers()
    async with Enricher(settings, cache=store, cache_owner=False) as e:
        ...  # a second run with the same store asks nothing the first was answered

Answers expire as the SQLite cache's do (the API's `ttl`, capped by `max_ttl`; `max_age`),
and are served only to the API identity that fetched them. Nothing here blocks: every method
runs on the event loop.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from ..api.identity import ApiIdentity
from ..ioc import Endpoint, IocType
from ..output.records import CACHED_TAIL, FRESH_TAIL
from .ports import Answered, AnswerStore, BudgetStore, CachedAnswer, DeferredList

__all__ = ["MemoryAnswers", "MemoryBudget", "MemoryDeferred"]

_ANY = ApiIdentity("")  # the identity of a store used before it is bound to one


class MemoryAnswers(AnswerStore):
    """An `AnswerStore` in a dict: (identity, endpoint, key) → answer and when it expires."""

    def __init__(
        self,
        *,
        fmt: str = "",
        max_ttl: float = 30 * 86400.0,
        default_ttl: float = 86400.0,
        max_age: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fmt = fmt
        self.max_ttl = max_ttl
        self.default_ttl = default_ttl
        self.max_age = max_age
        self._clock = clock
        self._identity: ApiIdentity | None = None
        #: (identity, endpoint) → key → (verdict, fmt, line as served, fetched at, expires at)
        self._rows: dict[
            tuple[ApiIdentity, Endpoint], dict[str, tuple[str, str, bytes, float, float]]
        ] = {}
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self.closed = False

    @property
    def identity(self) -> ApiIdentity | None:
        return self._identity

    def admit(self, identity: ApiIdentity) -> None:
        """Nothing to do: any identity is known to a dict."""

    def bind(self, identity: ApiIdentity) -> None:
        self._identity = identity

    def _whose(self, identity: ApiIdentity | None) -> ApiIdentity:
        return identity or self._identity or _ANY

    async def unanswered_endpoints(self, *, identity: ApiIdentity | None) -> set[Endpoint]:
        who = self._whose(identity)
        return {ep for ep in Endpoint if not self._rows.get((who, ep))}

    async def answers(
        self, keys: Mapping[Endpoint, Sequence[str]], *, identity: ApiIdentity | None
    ) -> dict[Endpoint, dict[str, CachedAnswer]]:
        who = self._whose(identity)
        now = self._clock()
        oldest = (
            now - self.max_ttl if self.max_age is None else now - min(self.max_ttl, self.max_age)
        )
        found: dict[Endpoint, dict[str, CachedAnswer]] = {}
        asked = 0
        for endpoint, values in keys.items():
            rows = self._rows.get((who, endpoint), {})
            hits: dict[str, CachedAnswer] = {}
            for key in values:
                row = rows.get(key)
                if row is not None and row[4] > now and oldest < row[3] <= now:
                    hits[key] = row[:3]
            asked += len(values)
            found[endpoint] = hits
            self.hits += len(hits)
        self.misses += asked - sum(len(h) for h in found.values())
        return found

    async def store_soon(
        self, endpoint: Endpoint, items: Iterable[Answered], *, identity: ApiIdentity | None
    ) -> None:
        rows = self._rows.setdefault((self._whose(identity), endpoint), {})
        now = self._clock()
        for key, verdict, line, ttl_ms in items:
            ttl = ttl_ms / 1000 if ttl_ms is not None else self.default_ttl
            if line.endswith(FRESH_TAIL):  # as a hit is written
                line = line[: -len(FRESH_TAIL)] + CACHED_TAIL
            rows[key] = (verdict, self.fmt, line, now, now + min(self.max_ttl, ttl))
            self.stored += 1

    def tally(self, *, hits: int = 0, misses: int = 0) -> None:
        self.hits += hits
        self.misses += misses

    def report(self) -> dict[str, object]:
        return {
            "path": None,
            "identity": "",
            "size_bytes": None,
            "max_size_bytes": None,
            "hits": self.hits,
            "stored": self.stored,
            "purged": 0,
            "evicted": 0,
            "unreadable": 0,
            "broken": None,
            "not_kept": None,
        }

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    async def aclose(self) -> None:
        self.closed = True  # the answers stay: a store in memory is not given back


class MemoryBudget(BudgetStore):
    """A `BudgetStore` in a Counter: requests per UTC day, and the spent quota."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        #: requests counted per UTC day (`YYYY-MM-DD`)
        self.requests: Counter[str] = Counter()
        self.until: float | None = None

    def _today(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d")

    def requests_today(self) -> int:
        return self.requests[self._today()]

    async def reserve(self, daily: int) -> bool:
        day = self._today()
        # no await between the check and the count: atomic on the event loop
        if self.requests[day] >= daily:
            return False
        self.requests[day] += 1
        return True

    def count_soon(self, n: int) -> None:
        self.requests[self._today()] += n

    async def quota_until(self, longest: float) -> float | None:
        now = self._clock()
        if self.until is None or self.until <= now:
            return None
        return min(self.until, now + longest)

    async def set_quota_until(self, until: float) -> None:
        self.until = max(until, self.until or 0.0)


class MemoryDeferred(DeferredList):
    """A `DeferredList` in a dict: job → [(type, ioc, reason)]."""

    def __init__(self) -> None:
        self.jobs: dict[str, list[tuple[str, str, str]]] = {}

    async def read(self, job: str) -> list[tuple[IocType, str]]:
        return [(IocType(t), ioc) for t, ioc, _ in self.jobs.get(job, [])]

    async def replace(self, job: str, items: Sequence[tuple[str, str, str]]) -> None:
        if items:
            self.jobs[job] = list(items)
        else:
            self.jobs.pop(job, None)
