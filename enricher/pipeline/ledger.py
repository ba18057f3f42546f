"""The ledger of a run: every unique IOC taken in, and the one outcome it leaves with.

    admit ──▶ open ──▶ settled: answered (fresh or from the cache), failed, or deferred
    withheld (internal, unsupported): settled as it comes in

The invariant a run prints is the ledger's: unique = ok + failed + unsupported + internal +
deferred, with nothing left open once the run is over. The stages do not count: they hand
the ledger what they produced in the same synchronous step in which they hand it on (settle,
then emit, no await between), so a stage cancelled half way leaves its keys open, and
`abandon` defers them. The outcome counters of `RunStats` (unique, ok, cached, failed,
unsupported, internal, deferred, verdicts, errors) are written here and nowhere else.

Counting is per call, not per key: a stage hands over a batch (or a chunk) at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..output.records import Deferred, Failure, deferred, failure
from .batcher import Key
from .stats import RunStats

__all__ = ["Ledger"]


class Ledger:
    """Admitted vs settled keys of one run, counted into `stats` (which other runs may
    share: the ledger's own counts are its run's alone)."""

    __slots__ = ("_open", "halted", "origins", "settled", "stats", "strays", "unique")

    def __init__(self, stats: RunStats, *, halted: str | None = None) -> None:
        self.stats = stats
        self._open: set[Key] = set()
        #: why keys are deferred instead of sent from now on (a budget spent, the run
        #: stopping, cache only), or None: the run's stages ask before they send
        self.halted = halted
        #: where each open key was first seen (`--with-source`), until it is settled
        self.origins: dict[str, tuple[str, int]] = {}
        #: unique keys this run took in, and those it settled (withheld ones included)
        self.unique = 0
        self.settled = 0
        #: keys settled that were not open: settled twice, or never admitted (a bug)
        self.strays = 0

    # -- in ------------------------------------------------------------------------------

    def admit(self, keys: Sequence[Key]) -> None:
        """New unique keys, open until settled."""
        self._open.update(keys)
        self.unique += len(keys)
        self.stats.unique += len(keys)

    def withheld(self, *, internal: int, unsupported: int) -> None:
        """Unique keys never to be asked, settled as they come in: `internal` ones the
        privacy rule withheld, `unsupported` ones (sha256 with `send_sha256` off)."""
        n = internal + unsupported
        self.unique += n
        self.settled += n
        stats = self.stats
        stats.unique += n
        stats.internal += internal
        stats.unsupported += unsupported

    # -- out -----------------------------------------------------------------------------

    def answered(self, keys: Sequence[Key], verdicts: Iterable[str], *, cached: bool) -> None:
        """Records made for `keys` (`verdicts`, theirs)."""
        self._close(keys)
        stats = self.stats
        stats.ok += len(keys)
        if cached:
            stats.cached += len(keys)
        stats.verdicts.update(verdicts)

    def fail(self, items: Sequence[tuple[Key, str, int]]) -> list[Failure]:
        """Keys given up on, as (key, error, attempts); their failure lines."""
        if not items:
            return []
        self._close([key for key, _, _ in items])
        stats = self.stats
        stats.failed += len(items)
        errors = stats.errors
        out: list[Failure] = []
        for (ioc_type, value), error, attempts in items:
            errors[error.split(":", 1)[0]] += 1
            out.append(failure(ioc_type, value, error, attempts))
        return out

    def defer(self, keys: Sequence[Key], why: str) -> list[Deferred]:
        """Keys not asked (nor to be, in this run); their deferred lines."""
        self._close(keys)
        self.stats.deferred += len(keys)
        return [deferred(t, v, why) for t, v in keys]

    def halt(self, why: str) -> None:
        """From now on nothing is sent: keys are deferred (for the first reason given)."""
        if self.halted is None:
            self.halted = why
            self.stats.stopped = self.stats.stopped or why

    def abandon(self, why: str) -> list[Deferred]:
        """Every key still open, deferred (in a stable order): the run is stopping."""
        return self.defer(sorted(self._open), why)

    # -- state ---------------------------------------------------------------------------

    @property
    def open(self) -> int:
        """Keys taken in and not yet settled."""
        return len(self._open)

    def is_open(self, key: Key) -> bool:
        return key in self._open

    @property
    def balanced(self) -> bool:
        """The run's invariant: every key it took in settled, once."""
        return not self._open and not self.strays and self.unique == self.settled

    def _close(self, keys: Sequence[Key]) -> None:
        still = self._open
        before = len(still)
        still.difference_update(keys)
        closed = before - len(still)
        self.settled += closed
        self.strays += len(keys) - closed
        origins = self.origins
        if origins:
            for _, value in keys:
                origins.pop(value, None)
