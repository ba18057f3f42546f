"""Counters of one run, kept by the stages and printed as the summary. What becomes of each
unique IOC (unique, ok, cached, failed, unsupported, internal, deferred, verdicts, errors) is
counted by the run's `Ledger` alone, as it settles them."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunStats", "Timeline", "percentile"]


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by nearest rank, None for no values."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


class Timeline:
    """IOCs accounted for through a run: (seconds since its start, how many), a point at most
    every `interval` seconds and `size` points at most: when full, every other point is
    dropped and the interval doubles, so a run of any length keeps an even sample of itself
    in bounded memory (for the manifest, and the report's speed over time)."""

    def __init__(self, *, size: int = 512, interval: float = 1.0) -> None:
        self.points: list[tuple[float, int]] = []
        self.interval = interval
        self._size = size

    def add(self, t: float, done: int) -> None:
        if self.points and t - self.points[-1][0] < self.interval:
            return
        self.points.append((round(t, 3), done))
        if len(self.points) >= self._size:
            del self.points[1::2]
            self.interval *= 2


@dataclass
class RunStats:
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    first_record_at: float | None = None
    # input
    bytes_read: int = 0  # input bytes consumed, when the reader says (for an ETA)
    lines_read: int = 0
    skipped: int = 0  # blank and comment lines
    rejected: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    already_done: int = 0  # unique IOCs an earlier run already wrote (--resume)
    # what earlier runs of this job wrote (--resume): the job's summary covers every run
    earlier_ok: int = 0
    earlier_failed: int = 0
    earlier_unsupported: int = 0
    #: reject lines counted but not written, by input (past --max-rejects)
    rejects_not_written: Counter[str] = field(default_factory=Counter)
    #: inputs found in directories or by globs that could not be read, and why
    inputs_skipped: list[str] = field(default_factory=list)
    #: inputs not read to their end (a corrupt or truncated stream, broken JSON), and why
    inputs_damaged: list[str] = field(default_factory=list)
    #: the job the run belongs to (its deferred IOCs are kept for its next run), if any
    job: str | None = None
    unique: int = 0
    cached: int = 0  # records served from the cache
    # outcome, per unique IOC
    ok: int = 0
    failed: int = 0
    unsupported: int = 0
    #: withheld by the privacy rule (internal addresses and names, the organization's own)
    internal: int = 0
    deferred: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # requests
    requests: int = 0
    by_status: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    retries: int = 0
    rate_limited: int = 0
    splits: int = 0
    bisections: int = 0
    requeued: int = 0  # keys left out of an answer and asked again
    extra_entries: int = 0  # answer entries nobody asked for, duplicates, unusable ones
    latencies: list[float] = field(default_factory=list)
    #: occurrences of a configured secret replaced by `***` in answers before use
    secrets_replaced: int = 0
    stopped: str | None = None  # why the run stopped early, if it did
    #: the run stopped before the end of an iterator it was given (a generator): closed where
    #: it was; what it had yielded was accounted for, what it had not, no run saw
    input_unread: bool = False
    #: the cache's own report (path, identity, size, hits, ...), when there was one
    cache: dict[str, Any] | None = None
    timeline: Timeline = field(default_factory=Timeline)

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    @property
    def accounted(self) -> int:
        return self.ok + self.failed + self.unsupported + self.internal + self.deferred

    @property
    def invariant_holds(self) -> bool:
        return self.unique == self.accounted

    def request_done(self, endpoint: str, status: str, latency: float | None) -> None:
        self.requests += 1
        self.by_status[endpoint][status] += 1
        if latency is not None:
            self.latencies.append(latency)

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        elapsed = self.elapsed
        return {
            "lines_read": self.lines_read,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "reject_reasons": dict(self.reject_reasons.most_common()),
            "duplicates": self.duplicates,
            "already_done": self.already_done,
            "earlier_runs": {
                "ok": self.earlier_ok,
                "failed": self.earlier_failed,
                "unsupported": self.earlier_unsupported,
            },
            "rejects_not_written": dict(self.rejects_not_written),
            "inputs_skipped": list(self.inputs_skipped),
            "inputs_damaged": list(self.inputs_damaged),
            "job": self.job,
            "unique": self.unique,
            "cached": self.cached,
            "queried": self.unique - self.cached - self.unsupported - self.internal - self.deferred,
            "ok": self.ok,
            "failed": self.failed,
            "unsupported": self.unsupported,
            "internal": self.internal,
            "deferred": self.deferred,
            "verdicts": dict(self.verdicts.most_common()),
            "errors": dict(self.errors.most_common()),
            "requests": self.requests,
            "requests_by_status": {ep: dict(c) for ep, c in sorted(self.by_status.items())},
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "splits": self.splits,
            "bisections": self.bisections,
            "requeued": self.requeued,
            "extra_entries": self.extra_entries,
            "latency_ms": {
                f"p{q}": (round(v * 1000, 2) if (v := percentile(lat, q)) is not None else None)
                for q in (50, 95, 99)
            },
            "elapsed_s": round(elapsed, 3),
            "first_record_s": (
                round(self.first_record_at - self.started, 3)
                if self.first_record_at is not None
                else None
            ),
            "iocs_per_s": round(self.accounted / elapsed, 1) if elapsed > 0 else None,
            "invariant_holds": self.invariant_holds,
            "secrets_replaced": self.secrets_replaced,
            "stopped": self.stopped,
            "input_unread": self.input_unread,
            "cache": self.cache,
        }
