"""Batch stage: keys gathered per endpoint into requests of the configured size.

A plain, synchronous object: the dispatcher adds keys and takes full batches; on a pause in
the input (or at its end) it takes the partial ones. After a 413 the endpoint's size shrinks
for the rest of the run. `add_all` of a list appends in C where the deduper's module was built
(`_dedupe.fill`), a run of keys at a time up to one that fills a batch; the Python loop is the
reference, and the step where it was not built (or with ENRICHER_NO_C=1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ..ioc import ENDPOINT_OF, Endpoint, IocType
from .dedupe import C_FILL as _fill

__all__ = ["Batch", "Batcher", "Key"]

Key = tuple[IocType, str]


@dataclass(frozen=True, slots=True)
class Batch:
    endpoint: Endpoint
    keys: list[Key]


class Batcher:
    def __init__(self, sizes: Mapping[Endpoint, int]) -> None:
        self.sizes = dict(sizes)
        self._pending: dict[Endpoint, list[Key]] = {ep: [] for ep in Endpoint}

    def add_all(self, keys: Iterable[Key]) -> list[Batch]:
        """Add keys (one or many: one call, not a call per key); the full batches they made,
        each as a key completes it."""
        full: list[Batch] = []
        if _fill is not None and type(keys) is list:
            # in C, a run of keys at a time: each run ends with a key that fills a batch
            at, count = 0, len(keys)
            while at < count:
                at = _fill(keys, at, ENDPOINT_OF, self._pending, self.sizes)
                if at < count:
                    full.append(self._take(ENDPOINT_OF[keys[at][0]]))
                    at += 1
            return full
        pending_of, sizes = self._pending, self.sizes
        for key in keys:
            endpoint = ENDPOINT_OF[key[0]]
            pending = pending_of[endpoint]
            pending.append(key)
            if len(pending) >= sizes[endpoint]:
                full.append(self._take(endpoint))
        return full

    def _take(self, endpoint: Endpoint) -> Batch:
        """A full batch of the endpoint's pending keys (the rest stay pending)."""
        pending, size = self._pending[endpoint], self.sizes[endpoint]
        if len(pending) == size:
            self._pending[endpoint] = []
            return Batch(endpoint, pending)
        # keys sent back by `requeue` (or a shrink after a 413) made it longer than a batch
        self._pending[endpoint] = pending[size:]
        return Batch(endpoint, pending[:size])

    def requeue(self, key: Key) -> None:
        """Take a key back for a later batch (it was left out of an answer)."""
        self._pending[ENDPOINT_OF[key[0]]].append(key)

    def shrink(self, endpoint: Endpoint, size: int) -> None:
        """Use at most `size` keys per batch for this endpoint from now on."""
        self.sizes[endpoint] = max(1, min(self.sizes[endpoint], size))

    def drain(self) -> Iterator[Batch]:
        """Every pending key, in batches no larger than the current sizes."""
        for endpoint, pending in self._pending.items():
            if not pending:
                continue
            self._pending[endpoint] = []
            size = self.sizes[endpoint]
            for i in range(0, len(pending), size):
                yield Batch(endpoint, pending[i : i + size])

    def __len__(self) -> int:
        return sum(len(p) for p in self._pending.values())
