"""The work of a cluster's tasks, as plain functions of plain (picklable) data: nothing here
imports Dask, so Spark's `mapPartitions` or Ray can call them as well.

    read_input(path, Block or Chunk, options, parts=P) -> Read   on a worker, per input or block
        read_source (inputs/read.py: decompress, decode, format, extract) ─▶ Ingest.take
        (normalize, reject, dedupe within the input) ─▶ each canonical IOC into part
        part_of(value, P): its owner
    enrich_part(settings_wire(s), [Read.parts[p] for every input], ...) -> Outcome, counts
        the part's IOCs (deduped across inputs here) enriched by `Enricher` under the
        settings' state: with `state.url = redis://…` one limiter, answer cache and budget
        for every part on every worker

A read counts what the job's stats say about its input (lines, skipped, rejects, duplicates
within it); a part counts what became of each of its unique IOCs (and the duplicates across
inputs): added together they are the job's stats, and each part keeps the invariant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.identity import ApiIdentity
from ..config.settings import Settings
from ..errors import FatalError, InputError
from ..inputs import Chunk, InputOptions
from ..inputs.read import read_source
from ..ioc import ENDPOINT_OF, Endpoint, IocType
from ..output.records import Reject
from ..pipeline.dedupe import Deduper
from ..pipeline.ingest import Ingest
from ..pipeline.ledger import Ledger
from ..pipeline.normalize import normalize
from ..pipeline.outcome import Outcome
from ..pipeline.run import Enricher
from ..pipeline.stats import RunStats
from ..state.ports import AnswerStore
from .blocks import Block, block_chunks

__all__ = [
    "Part",
    "Read",
    "add_counts",
    "enrich_new",
    "enrich_part",
    "part_of",
    "read_input",
    "settings_from",
    "settings_wire",
]

#: what a read adds to the job's stats
_READ_COUNTS = ("lines_read", "skipped", "rejected", "duplicates", "bytes_read")
#: what an enriched part adds (`duplicates`: those across inputs)
_PART_COUNTS = (
    "duplicates",
    "already_done",
    "unique",
    "cached",
    "ok",
    "failed",
    "unsupported",
    "internal",
    "deferred",
    "requests",
    "retries",
    "rate_limited",
    "splits",
    "bisections",
    "requeued",
    "extra_entries",
    "secrets_replaced",
)
#: what a part's answer store counts, added up for the job's report (`ClusterEnricher`)
_CACHE_COUNTS = ("hits", "stored", "unreadable", "claimed", "claimed_elsewhere")
#: values a part hands its `Enricher` at a time
_SLICE = 5_000


def part_of(value: str, parts: int) -> int:
    """The part (0 to `parts` - 1) that owns a canonical IOC: the same on every process and
    host (CRC-32 of its UTF-8, not Python's salted `hash`)."""
    return zlib.crc32(value.encode()) % parts


@dataclass
class Read:
    """One input read on a worker."""

    source: str
    #: its unique canonical IOCs, by the part that owns them
    parts: list[list[str]]
    rejects: list[Reject]
    #: the input counters it adds to the job's stats (`add_counts`)
    counts: dict[str, Any]
    #: how it was read ("lines", "csv, gzip, auto"), by source
    read_as: dict[str, str]
    #: the `InputError` that stopped it part way (what came before counts), if any
    error: str | None = None
    #: rejects past `max_rejects` per source, counted and let go here (a garbage input's
    #: millions of them would fill this worker's and the client's memory)
    rejects_dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    #: the block of the input it read (its reject lines numbered from 1 within it), if not whole
    block: Block | None = None


@dataclass
class Part:
    """One part enriched on a worker: what to write, and what to count."""

    index: int
    outcome: Outcome
    counts: dict[str, Any]
    #: the fatal condition that stopped it (credentials refused, the state lost), if any
    fatal: str | None = None


def _counts(stats: RunStats, names: Sequence[str], *, requests: bool) -> dict[str, Any]:
    counts: dict[str, Any] = {name: getattr(stats, name) for name in names}
    counts["reject_reasons"] = dict(stats.reject_reasons)
    counts["inputs_damaged"] = list(stats.inputs_damaged)
    if requests:
        counts["verdicts"] = dict(stats.verdicts)
        counts["errors"] = dict(stats.errors)
        counts["by_status"] = {ep: dict(c) for ep, c in stats.by_status.items()}
        counts["latencies"] = list(stats.latencies)
    return counts


def add_counts(stats: RunStats, counts: dict[str, Any]) -> None:
    """Add what a read or a part counted (`Read.counts`, `Part.counts`) to the job's stats."""
    for name, value in counts.items():
        if isinstance(value, int):
            setattr(stats, name, getattr(stats, name) + value)
    stats.reject_reasons.update(counts["reject_reasons"])
    stats.inputs_damaged += counts["inputs_damaged"]
    if "verdicts" in counts:
        stats.verdicts.update(counts["verdicts"])
        stats.errors.update(counts["errors"])
        for endpoint, by in counts["by_status"].items():
            stats.by_status[endpoint].update(by)
        stats.latencies += counts["latencies"]


def _keep(ioc_type: IocType, value: str) -> str | None:
    return None  # what is withheld is decided by the part (its `Enricher`'s privacy rule)


def read_input(
    source: str | Chunk | Block,
    options: InputOptions,
    *,
    max_line: int,
    parts: int,
    max_rejects: int | None = None,
) -> Read:
    """Read one input (a path, a block of one, or a chunk of lines the client holds: IOCs an
    earlier run deferred) as a run reads it (`read_source`, then `Ingest.take`: normalized,
    rejects with their reasons, deduped within it), its unique IOCs hashed into `parts`; its
    first `max_rejects` rejects kept (all if None), the rest only counted."""
    stats = RunStats()
    # sha256 and internal IOCs pass here: the part's `Enricher` settles them, once per job
    ingest = Ingest(Ledger(stats), withhold=_keep, send_sha256=True)
    found: list[list[str]] = [[] for _ in range(parts)]
    rejects: list[Reject] = []
    kept: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    read_as: dict[str, str] = {}
    error = None
    block = source if isinstance(source, Block) else None
    if isinstance(source, Chunk):
        name, chunks = source.source, iter([source])
    elif isinstance(source, Block):
        name, chunks = source.path, block_chunks(source, max_line=max_line)
        read_as[name] = source.read_as
    else:
        name, chunks = source, read_source(source, options, max_line=max_line, read_as=read_as)
    try:
        for chunk in chunks:
            outcome, new = ingest.take(chunk)
            for reject in outcome.rejects:  # per source, as the job's writer counts them
                where = reject["source"]
                if max_rejects is None or kept[where] < max_rejects:
                    kept[where] += 1
                    rejects.append(reject)
                else:
                    dropped[where] += 1
            for _, value in new:
                found[part_of(value, parts)].append(value)
    except InputError as exc:
        error = str(exc)
    counts = _counts(stats, _READ_COUNTS, requests=False)
    return Read(
        name, found, rejects, counts, read_as, error, rejects_dropped=dict(dropped), block=block
    )


def settings_wire(settings: Settings) -> dict[str, Any]:
    """The settings as picklable data (their verdict table is a read-only mapping proxy,
    which pickle refuses); `settings_from` makes them again. Secrets are not in them: each
    worker reads its own from its environment or files, as the settings say."""
    wire: dict[str, Any] = {f.name: getattr(settings, f.name) for f in dataclasses.fields(Settings)}
    wire["verdicts"] = dict(settings.verdicts)
    return wire


def settings_from(wire: dict[str, Any]) -> Settings:
    return Settings(**wire)


async def _slices(parts: Iterable[list[str]], index: int) -> AsyncIterator[Chunk]:
    source = f"<part {index}>"
    for values in parts:
        for i in range(0, len(values), _SLICE):
            # canonical values, counted as no input line (the reads counted the lines)
            yield Chunk(source, 1, list(values[i : i + _SLICE]), lines_read=0)


def enrich_part(
    wire: dict[str, Any],
    index: int,
    parts: Sequence[list[str]],
    *,
    identity: ApiIdentity | None = None,
    done: Deduper | None = None,
    cache_only: bool = False,
) -> Part:
    """Enrich the IOCs of part `index` (its share of every input's read) with an `Enricher`
    of the settings (`settings_wire`) and their state, in an event loop of its own. What
    stopped it (credentials refused, the state lost) comes back as `Part.fatal`, with every
    IOC it had not answered deferred."""
    return asyncio.run(_enrich(settings_from(wire), index, parts, identity, done, cache_only))


def enrich_new(
    wire: dict[str, Any],
    index: int,
    values: Iterable[str],
    seen: set[str],
    *,
    held: list[str] | None = None,
    batches: Mapping[Endpoint, int] | None = None,
    identity: ApiIdentity | None = None,
    done: Deduper | None = None,
    cache_only: bool = False,
) -> Part:
    """`enrich_part` of the `values` not in `seen` (each added to it as it is met): part
    `index`'s IOCs of one more wave of reads, deduped across the waves before it (`seen`
    holds theirs) and within it, the values met again counted as duplicates. With `held`
    (the new values the waves before held back) and `batches` (keys per request, by
    endpoint): the new values join `held`, and of each endpoint's, those that do not fill
    a whole batch stay in it for a later wave (each request then filled, not one
    part-filled per wave); without `batches`, all are enriched and `held` emptied. With no
    new value to enrich, no `Enricher` is opened."""
    new: list[str] = held if held is not None else []
    again = 0
    for value in values:
        if value in seen:
            again += 1
        else:
            seen.add(value)
            new.append(value)
    if held is not None and batches:  # every new value is in it
        new = _whole_batches(held, batches)
    elif held is not None:
        new = list(held)
        held.clear()
    if new:
        part = enrich_part(wire, index, [new], identity=identity, done=done, cache_only=cache_only)
    else:
        part = Part(index, Outcome(), _counts(RunStats(), _PART_COUNTS, requests=True))
    part.counts["duplicates"] += again
    return part


def _whole_batches(held: list[str], batches: Mapping[Endpoint, int]) -> list[str]:
    """The values of `held` that fill whole batches of their endpoint, taken out of it."""
    by: dict[Endpoint | None, list[str]] = {}
    for value in held:
        ioc_type = normalize(value)[0]
        by.setdefault(ENDPOINT_OF[ioc_type] if ioc_type else None, []).append(value)
    taken: list[str] = []
    held.clear()
    for endpoint, values in by.items():
        whole = len(values) - len(values) % batches[endpoint] if endpoint else 0
        taken += values[:whole]
        held += values[whole:]
    return taken


async def _enrich(
    settings: Settings,
    index: int,
    parts: Sequence[list[str]],
    identity: ApiIdentity | None,
    done: Deduper | None,
    cache_only: bool,
) -> Part:
    stats = RunStats()
    outcome = Outcome()
    fatal: FatalError | None = None
    store: AnswerStore | None = None
    try:
        async with Enricher(
            settings, stats=stats, identity=identity, done=done, cache_only=cache_only
        ) as enricher:
            store = enricher.cache  # its counts are final once it is closed
            async for step in enricher.run(_slices(parts, index)):
                outcome.extend(step)
            fatal = enricher.fatal
    except FatalError as exc:  # the state lost as it closed
        fatal = fatal or exc
    cache = store.report() if store is not None else {}
    outcome.answered = []  # the part's own stats and cache have them: not sent back
    counts = _counts(stats, _PART_COUNTS, requests=True)
    # what its answer store counted (hits, stored, claims), added up into the job's report
    counts["cache"] = {k: v for k, v in cache.items() if isinstance(v, int) and k in _CACHE_COUNTS}
    return Part(index, outcome, counts, str(fatal) if fatal is not None else None)
