"""What a stage step produced, on its way to the writer (or the library's caller)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..output.records import Deferred, Failure, Reject, Skipped

__all__ = ["Outcome"]


@dataclass(slots=True)
class Outcome:
    """What one stage step produced, for the writer: records, failures, deferred IOCs and
    input rejects."""

    #: answered IOCs, as NDJSON record lines (what the writer writes)
    lines: list[bytes] = field(default_factory=list)
    #: (ioc, verdict, ttl in ms) for each of `lines`: what the stats and the cache keep
    answered: list[tuple[str, str, int | None]] = field(default_factory=list)
    #: records served from the cache, as NDJSON lines only
    cached_lines: list[bytes] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    #: IOCs the privacy rule withheld: never sent
    skipped: list[Skipped] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.lines
            or self.cached_lines
            or self.failures
            or self.rejects
            or self.deferred
            or self.skipped
        )

    def extend(self, other: Outcome) -> None:
        """Add what `other` produced to this."""
        self.lines += other.lines
        self.answered += other.answered
        self.cached_lines += other.cached_lines
        self.failures += other.failures
        self.rejects += other.rejects
        self.deferred += other.deferred
        self.skipped += other.skipped
