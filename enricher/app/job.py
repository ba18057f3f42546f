"""`enricher run`: one job from input files to NDJSON files, as a nightly scheduler runs it.

Around the engine it adds what an unattended run needs: outputs that are never silently
overwritten and can be resumed after a crash, the persistent cache, the request budget,
deferred IOCs picked up first by the next run, signals, progress, the manifest and exit codes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..api.identity import EMBEDDED_EMULATOR, identity_of
from ..config.settings import Settings
from ..errors import (
    EXIT_FAILURES,
    EXIT_FATAL,
    EXIT_OK,
    EXIT_USAGE,
    FatalError,
    OutputError,
    SettingsError,
)
from ..inputs import STDIN, Chunk, InputOptions, check_columns, find_inputs, read_inputs
from ..inputs.files import utf8_name
from ..output.console import Progress
from ..output.files import (
    Mode,
    OutputFile,
    OutputLock,
    OutputPaths,
    check_new,
    is_file_path,
    plan_outputs,
)
from ..output.formats import RESUMABLE, RecordWriter, check_resumable, first_line, record_writer
from ..output.manifest import build_manifest, write_manifest
from ..output.records import Deferred, Reject, record_format
from ..output.records import deferred as deferred_record
from ..output.summary import format_summary
from ..output.writer import encode_lines
from ..pipeline.dedupe import Deduper
from ..pipeline.normalize import normalize
from ..pipeline.run import Enricher, Outcome
from ..pipeline.stats import RunStats
from ..state.answers import Cache
from ..state.budget import Budget
from ..state.open import OpenState, file_state, state_path
from ..state.open import open_state as open_any_state
from ..state.ports import AnswerStore, DeferredList
from ..state.resume import read_deferred, read_deferred_items, read_failed, read_written, repair
from ..threads import Abandoned
from . import lifecycle
from .signals import Stopper

if TYPE_CHECKING:  # a cluster's modules are imported for a job run over one alone
    from ..cluster.client import ClusterEnricher

__all__ = [
    "EXIT_FAILURES",
    "EXIT_FATAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "Job",
    "caches_answers",
    "embedded_emulator",
    "open_job_state",
    "open_state",
    "run_job",
    "save_state",
    "warn_send_internal",
]

log = logging.getLogger("enricher")


@dataclass(frozen=True, kw_only=True)
class Job:
    inputs: Sequence[str]
    reading: InputOptions = field(default_factory=InputOptions)
    output: str = "-"
    failed: str | None = None
    rejects: str | None = None
    deferred: str | None = None
    skipped: str | None = None
    emulator: bool = False
    quiet: bool = False
    resume: bool = False
    force: bool = False
    use_cache: bool = True
    cache_path: str | None = None
    cache_only: bool = False
    max_age: float | None = None
    max_requests: int | None = None
    #: the job this run belongs to (`--job`): its deferred IOCs are its own; None: the
    #: output file's path names it (and a run on standard output belongs to no job)
    job: str | None = None
    #: reject lines written per input at most; the rest are counted only
    max_rejects: int = 100_000
    manifest: str | None = None
    log_json: bool = False
    progress: bool | None = None  # None: on a terminal only
    with_source: bool = False
    #: the records file's format (`--output-format`); the side files are NDJSON
    output_format: str = "ndjson"

    def __post_init__(self) -> None:
        if self.resume and self.force:
            raise SettingsError("--resume and --force contradict each other: choose one")
        if self.cache_only and not self.use_cache:
            raise SettingsError("--cache-only and --no-cache contradict each other")
        if self.cache_path is not None and not self.use_cache:
            raise SettingsError("--cache and --no-cache contradict each other")
        if self.max_rejects < 0:
            raise SettingsError("--max-rejects must be at least 0")
        if self.job is not None and not (0 < len(self.job) <= 200 and self.job.isprintable()):
            raise SettingsError("--job: a name of 1 to 200 printable characters")
        if self.resume:
            check_resumable(self.output_format)


def _check_manifest(job: Job) -> None:
    if job.manifest:
        # found out now, not after a night's work
        where = os.path.dirname(os.path.abspath(job.manifest))
        if os.path.isdir(job.manifest):
            raise SettingsError(f"--manifest {job.manifest} is a directory; give a file path")
        if not os.path.isdir(where) or not os.access(where, os.W_OK | os.X_OK):
            raise SettingsError(f"--manifest: cannot write in {where}")


def _locked_paths(job: Job, paths: OutputPaths) -> list[str]:
    """The files no other run may write while this one does: every file of the set, but
    standard output, /dev/null or a pipe, and the side files named for this run alone."""
    if paths.regular:
        locked = [paths.records, *paths.side]
    else:
        named = (job.failed, job.rejects, job.deferred, job.skipped)
        locked = [p for p, flag in zip(paths.side, named, strict=True) if flag]
    return [p for p in locked if is_file_path(p)]


@dataclass
class _Files:
    """The open output set of a run."""

    records: OutputFile
    failed: OutputFile
    rejects: OutputFile
    deferred: OutputFile  # this run's list, made beside the old one (see `_replace_deferred`)
    skipped: OutputFile  # withheld by the privacy rule

    def all(self) -> list[OutputFile]:
        return [self.records, self.failed, self.rejects, self.deferred, self.skipped]


def _open_files(job: Job, paths: OutputPaths, writer: RecordWriter) -> _Files:
    """The output set opened as the job says: new files (never over an existing one), or
    replaced (--force), or continued (--resume). Side files of a run on standard output are
    made only when there is a line to write."""
    if not (job.resume or job.force):
        # under the lock: no other enricher makes them meanwhile
        check_new(([paths.records, paths.failed] if paths.regular else []) + list(paths.side))
    mode: Mode = "append" if job.resume else "replace" if job.force else "new"
    lazy = paths.per_run
    side: Mode = "new" if lazy and not job.force else mode
    # what to do after an error: `--resume` only where the whole job can be resumed
    resumable = paths.regular and writer.resumable
    return _Files(
        records=OutputFile(paths.records, mode=mode, resumable=resumable, writer=writer),
        failed=OutputFile(paths.failed, mode=side, lazy=lazy, resumable=resumable),
        # rejects and withheld IOCs are found again by a resumed run (it reads the inputs
        # from the start)
        rejects=OutputFile(
            paths.rejects, mode="new" if lazy and not job.force else "replace", lazy=lazy,
            resumable=resumable,
        ),
        skipped=OutputFile(
            paths.skipped, mode="new" if lazy and not job.force else "replace", lazy=lazy,
            resumable=resumable,
        ),
        deferred=OutputFile(
            _pending(paths), mode="replace", lazy=True, resumable=resumable
        ),
    )  # fmt: skip


def _cluster_enricher() -> type[ClusterEnricher]:
    from ..cluster.client import ClusterEnricher

    return ClusterEnricher


def _pending(paths: OutputPaths) -> str:
    """Where this run's deferred list is made until it replaces the job's list. A list of
    this run's own (a run on standard output), or a path that is no regular file (/dev/null)
    is written as it is, never replaced."""
    path = paths.deferred
    if paths.per_run or not is_file_path(path):
        return path
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.new")


@contextlib.asynccontextmanager
async def embedded_emulator(settings: Settings, on: bool) -> AsyncIterator[Settings]:
    if not on:
        yield settings
        return
    from ..emulator import Emulator, EmulatorConfig

    async with Emulator(EmulatorConfig()) as emu:
        yield settings.replace(api={"base_url": emu.base_url})


def caches_answers(job: Job, settings: Settings) -> bool:
    """The job reads and stores answers in the state file (not `--no-cache`)."""
    return job.use_cache and bool(settings.cache.enabled or job.cache_path or job.cache_only)


def open_state(job: Job, settings: Settings) -> Cache | None:
    """The state file: the answer cache, the daily request count and the jobs' deferred
    IOCs. `--no-cache` (or `cache.enabled = false`) reads and stores no answer, but the job's
    deferred IOCs and the day's count are still kept, unless the file cannot be used (a
    warning says so: then only the deferred file beside the output carries them). A daily
    budget is counted there: a run with one refuses to start without it. Answers fetched
    with TLS verification off are not stored (they could come from anyone on the path)."""
    answers = caches_answers(job, settings)
    c = settings.cache
    # answers are served to the API identity that fetched them (the embedded emulator is
    # one identity, whatever port it gets); reading the credentials may refuse them
    identity = EMBEDDED_EMULATOR if job.emulator else identity_of(settings)
    try:
        state = Cache(
            state_path(settings, job.cache_path),
            max_ttl=c.max_ttl,
            default_ttl=c.default_ttl,
            max_age=job.max_age,
            fmt=record_format(settings.verdicts, settings.api.ttl_unit, job.with_source),
            identity=identity,
            max_size=c.max_size,
        )
    except SettingsError as exc:
        if answers:
            raise
        if settings.limits.daily_budget:
            raise SettingsError(
                f"limits.daily_budget is counted in the state file, which cannot be used: {exc}"
            ) from None
        log.warning(
            "warning: %s; this run keeps no state (deferred IOCs: only in the deferred file)",
            exc,
        )
        return None
    if not settings.network.verify_tls and settings.api.base_url.startswith("https:"):
        state.keep_no_answers("TLS verification is off")
    purged = state.purge()
    if purged:
        log.info("cache: purged %s expired answers", f"{purged:,}")
    return state


async def open_job_state(
    job: Job,
    settings: Settings,
    blocking: Callable[[Callable[[], Cache | None]], Awaitable[Cache | None]],
) -> OpenState | None:
    """The job's state, as `state.url` names it: the state file (`open_state`, opened by
    `blocking`, which runs it in a thread), or a Redis server shared with other jobs
    (`--state redis://…`; `--cache` names a file: both are refused). None: no state."""
    if not settings.state.shared:
        cache = await blocking(lambda: open_state(job, settings))
        return file_state(cache) if cache is not None else None
    if job.cache_path is not None:
        raise SettingsError("--cache names a state file, --state a Redis server: give one")
    answers = caches_answers(job, settings)
    if answers and not settings.network.verify_tls and settings.api.base_url.startswith("https:"):
        # as the state file: answers that could come from anyone on the path are not shared
        log.warning("warning: TLS verification is off: no answer is read or kept in the state")
        answers = False
    identity = EMBEDDED_EMULATOR if job.emulator else identity_of(settings)
    return await open_any_state(
        settings,
        identity,
        answers=answers,
        fmt=record_format(settings.verdicts, settings.api.ttl_unit, job.with_source),
        max_age=job.max_age,
    )


def _job_key(job: Job, paths: OutputPaths) -> str | None:
    """The name a job's deferred IOCs are kept under: `--job NAME`, else the output file (so
    `--resume` of the same output is the same job); a run on standard output without `--job`
    belongs to no job (its deferred IOCs are in its own file, taken up by no later run)."""
    if job.job is not None:
        key = job.job
    elif paths.regular:
        key = f"output {os.path.realpath(paths.records)}"
    else:
        return None
    # kept in SQLite (or Redis) as UTF-8: bytes of a name that are not UTF-8 (surrogates)
    # are kept as `\xff` escapes
    return utf8_name(key)


def _prepare(
    job: Job,
    paths: OutputPaths,
    first: list[str],
    stats: RunStats,
    writer: RecordWriter,
) -> tuple[Deduper | None, list[str]]:
    """What an earlier run left: IOCs it already wrote (with --resume: counted in `stats`, so
    the summary and the exit code cover the whole job), and IOCs it deferred, to be asked
    first (`first`, from the state's deferred list, then those of its deferred file)."""
    first = [*first, *read_deferred(paths.deferred)]
    done: Deduper | None = None
    if job.resume:
        try:
            for path, cut in (
                (paths.records, writer.repair(paths.records)),
                (paths.failed, repair(paths.failed)),
            ):
                if cut:
                    log.info("resume: cut a torn last line (%d bytes) off %s", cut, path)
            head = first_line(paths.records)
            if head and not writer.recognizes(head):
                raise SettingsError(
                    f"--resume: {paths.records} is no {writer.name} output of these "
                    "settings; resume it with the --output-format (and --with-source) it was "
                    "written with"
                )
            done = Deduper()
            stats.earlier_ok = read_written([paths.records], done, keys=writer.keys)
            stats.earlier_failed, stats.earlier_unsupported = read_failed(paths.failed, done)
        except OSError as exc:
            raise SettingsError(
                f"cannot resume from {exc.filename}: {exc.strerror or exc}"
            ) from None
        found = stats.earlier_ok + stats.earlier_failed + stats.earlier_unsupported
        log.info("resume: %s IOCs already written", f"{found:,}")
    return done, first


async def _with_deferred_first(
    first: list[str], chunks: AsyncIterator[Chunk]
) -> AsyncIterator[Chunk]:
    """IOCs deferred by an earlier run come before the inputs."""
    if first:
        yield Chunk("<deferred by an earlier run>", 1, list(first))
    async for chunk in chunks:
        yield chunk


def _input_size(inputs: Sequence[str]) -> int | None:
    total = 0
    for path in inputs:
        if path == STDIN:
            return None
        try:
            total += os.path.getsize(path)
        except OSError:
            return None
    return total


def warn_send_internal(settings: Settings) -> None:
    """Say on stderr, even with --quiet, that the privacy rule is off: a cron job's log must
    show that internal data went out."""
    if settings.privacy.send_internal:
        log.error(
            "warning: privacy.send_internal is on: private addresses, internal names and"
            " your own domains are sent to the API like any other IOC"
        )


#: the cyclic collector's first threshold while a job runs (`_run_locked`)
_GC_YOUNG = 100_000
#: the thresholds before the first of the jobs running in this process raised it, and how
#: many run: jobs that overlap (a library running two) give them back when the last ends
_gc_saved: tuple[int, ...] | None = None
_gc_jobs = 0
_gc_lock = threading.Lock()


def _gc_young_begin() -> None:
    """The collector's first threshold raised for a job that starts (the first of those
    running saves the thresholds)."""
    global _gc_saved, _gc_jobs
    with _gc_lock:
        if _gc_jobs == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(_GC_YOUNG, *_gc_saved[1:])
        _gc_jobs += 1


def _gc_young_end() -> None:
    """A job that raised the threshold ends: the last of those running gives it back."""
    global _gc_saved, _gc_jobs
    with _gc_lock:
        _gc_jobs -= 1
        if _gc_jobs == 0 and _gc_saved is not None:
            gc.set_threshold(*_gc_saved)
            _gc_saved = None


async def run_job(job: Job, settings: Settings) -> int:
    """Run one job; its exit code. The summary goes to stderr unless quiet."""
    started_at = time.time()
    settings.auth.check_secrets()  # before anything is opened
    warn_send_internal(settings)
    if settings.cluster.on:
        from ..cluster import check_job

        check_job(
            settings,
            inputs=job.inputs,
            with_source=job.with_source,
            max_requests=job.max_requests,
            use_cache=job.use_cache,
        )
    # a format whose library is missing stops the run before anything is touched
    writer = record_writer(job.output_format, with_source=job.with_source)
    with Stopper(settings.pipeline.grace_period) as stopper:
        inputs, skipped = find_inputs(job.inputs)
        paths = plan_outputs(
            job.output,
            failed=job.failed,
            rejects=job.rejects,
            deferred=job.deferred,
            skipped=job.skipped,
            inputs=inputs,
            sources=job.inputs,
            manifest=job.manifest,
            resume=job.resume,
        )
        _check_manifest(job)
        # before anything is opened, repaired or read: an overlapping run stops here, at once
        with OutputLock(_locked_paths(job, paths)):
            code = await _run_locked(
                job, settings, stopper, inputs, skipped, paths, started_at, writer
            )
        lifecycle.finished(code)  # a signal from now on exits with it
        return code


class _Rejects:
    """Reject lines written per input, up to `--max-rejects`; past it they are only counted
    (random bytes must not fill a disk with rejects)."""

    def __init__(self, limit: int, stats: RunStats) -> None:
        self.limit = limit
        self.stats = stats
        self.written: Counter[str] = Counter()

    def keep(self, rejects: list[Reject]) -> list[Reject]:
        kept = []
        for reject in rejects:
            source = reject["source"]
            if self.written[source] < self.limit:
                self.written[source] += 1
                kept.append(reject)
            else:
                self.stats.rejects_not_written[source] += 1
        return kept


async def _run_locked(
    job: Job,
    settings: Settings,
    stopper: Stopper,
    inputs: list[str],
    skipped: list[str],
    paths: OutputPaths,
    started_at: float,
    writer: RecordWriter,
) -> int:
    stats = RunStats()
    stats.inputs_skipped = skipped
    stats.job = _job_key(job, paths)
    read_as: dict[str, str] = {}  # input -> how it was read, filled in as it is
    abandoned = False  # the state file's last writes left to a thread, past the grace period
    state: OpenState | None = None
    cache: AnswerStore | None = None  # the state's answers, when answers are cached
    budget: Budget | None = None
    deferred: DeferredList | None = None
    key = stats.job
    enricher: Enricher | ClusterEnricher | None = None
    fatal: FatalError | None = None
    files: _Files | None = None
    first: list[str] = []
    gc_young = False
    try:
        if stopper.stopping:  # a signal came while the run was being checked
            raise Abandoned
        # blocking work before the pipeline starts, in threads a signal walks away from;
        # first, every CSV's header: a column missing from the last file is found now
        max_line = settings.pipeline.max_line_bytes
        await stopper.blocking(
            lambda: check_columns(inputs, job.reading, max_line=max_line), name="columns"
        )
        state = await stopper.awaiting(
            open_job_state(job, settings, lambda fn: stopper.blocking(fn, name="state"))
        )
        # a cluster's parts read and store the answers, each its own (their counts are the job's)
        if state is not None and caches_answers(job, settings) and not settings.cluster.on:
            cache = state.answers
        if state is not None:
            deferred = state.deferred
            if key and deferred is not None:
                first = [ioc for _, ioc in await stopper.awaiting(deferred.read(key))]
        done, first = await stopper.blocking(
            lambda: _prepare(job, paths, first, stats, writer), name="resume"
        )
        files = _open_files(job, paths, writer)
        if job.max_requests is not None or settings.limits.daily_budget or state is not None:
            budget = Budget(
                max_requests=job.max_requests,
                daily=settings.limits.daily_budget or None,
                cache=state.budget if state is not None else None,
                longest_quota=settings.retry.max_quota_wait,
            )
        # What exists now (modules, settings) lives as long as the run: keep it out of the
        # cyclic collector, whose full passes stalled the loop 10-25 ms, which showed as
        # requests bunched up at the server (measured at 50 requests/s).
        gc.freeze()
        # and the young objects of the run (a batch's keys, entries, lines: hundreds of
        # thousands a minute, nearly all gone within a batch) collected every 100,000
        # allocations rather than 700: 891 fewer instructions per unique IOC on 100,000 tidy
        # lines at 20,000 (benchmarks.instructions), 122 tidy and 208 messy fewer again at
        # 100,000 (peak RSS within the runs' spread, 1,000,000 lines); the thresholds are
        # given back as the job ends
        _gc_young_begin()
        gc_young = True
        live = job.progress if job.progress is not None else sys.stderr.isatty()
        progress = Progress(
            stats,
            live=live and not job.quiet and not job.log_json,
            json=job.log_json and not job.quiet,
            total_bytes=_input_size(inputs),
        )
        rejects = _Rejects(job.max_rejects, stats)
        async with (
            embedded_emulator(settings, job.emulator) as settings,
            (
                Enricher(
                    settings,
                    stats=stats,
                    cache=cache,
                    cache_owner=False,  # the state file is closed in `save_state`
                    identity=cache.identity if cache is not None else None,
                    budget=budget,
                    limiter=state.limiter if state is not None else None,
                    done=done,
                    cache_only=job.cache_only,
                    with_source=job.with_source,
                )
                if not settings.cluster.on
                else _cluster_enricher()(
                    settings,
                    stats=stats,
                    inputs=inputs,
                    reading=job.reading,
                    read_as=read_as,
                    identity=EMBEDDED_EMULATOR if job.emulator else None,
                    done=done,
                    cache_only=job.cache_only,
                    max_rejects=job.max_rejects,
                    stopping=lambda: stopper.stopping,
                )
            ) as enricher,
        ):
            chunks = read_inputs(
                inputs, job.reading, max_line=settings.pipeline.max_line_bytes, read_as=read_as
            )
            stopper.attach(enricher, files.all())
            progress.start()
            try:
                async with contextlib.aclosing(
                    enricher.run(_with_deferred_first(first, chunks))
                    if isinstance(enricher, Enricher)
                    else enricher.outcomes(first)
                ) as outcomes:
                    if stopper.stopping:  # a signal came while the run was being set up
                        enricher.stop()
                    async for outcome in outcomes:
                        await _write(outcome, files, rejects, stats)
            except FatalError as exc:
                fatal = exc
            finally:
                await progress.stop()
                # what earlier runs deferred and this one did not reach stays deferred
                fatal = await _close_files(files, first, enricher, fatal)
            fatal = fatal or enricher.fatal
    except Abandoned:
        stats.stopped = "interrupted before the run started"
    except FatalError as exc:
        fatal = fatal or exc
    finally:
        if gc_young:
            _gc_young_end()
        waiting: list[tuple[str, str, str]] | None = None  # the job's list, for the state
        try:
            if files is not None and files.deferred.complete:
                waiting = _replace_deferred(paths.deferred, files.deferred)
        except FatalError as exc:
            fatal = fatal or exc
        finally:
            if state is not None:
                try:
                    # the job's deferred list, and what is queued (answers, the day's count),
                    # written (in threads): unless the run is stopping and another process
                    # holds the file past the grace period
                    await stopper.finishing(save_state(state, budget, deferred, key, waiting))
                except Abandoned:
                    abandoned = True
                    log.error("error: the state %s was not closed in time: the last"
                              " answers, request counts and deferred IOCs of this run are"
                              " not kept in it", state.url)  # fmt: skip
                except FatalError as exc:  # the shared state was lost
                    fatal = fatal or exc
                if isinstance(cache, Cache):
                    stats.cache = cache.report(measure=not abandoned)
                elif cache is not None:
                    stats.cache = cache.report()
                elif (
                    caches_answers(job, settings)
                    and state.answers is not None
                    and enricher is not None
                    and not isinstance(enricher, Enricher)
                ):  # a cluster's: its parts' stores, added up
                    stats.cache = enricher.cache_report(state.answers.report())
    if fatal is not None:
        stats.stopped = stats.stopped or str(fatal)
    interrupted = stopper.stopping or (enricher is not None and enricher.interrupted)
    input_error = enricher.input_error if enricher is not None else None
    input_failed = input_error is not None or bool(skipped) or bool(stats.inputs_damaged)
    code = _exit_code(stats, fatal, interrupted, input_failed)
    if not _report(
        job,
        settings,
        stats,
        enricher,
        fatal,
        files,
        paths,
        started_at,
        code,
        inputs,
        read_as,
        interrupted,
    ):
        code = max(code, EXIT_FATAL)  # a nightly job's record of itself is an output too
    return code


async def _write(outcome: Outcome, files: _Files, rejects: _Rejects, stats: RunStats) -> None:
    """One outcome into the output set."""
    n = len(outcome.lines) + len(outcome.cached_lines)
    if n:
        await files.records.write(b"".join(outcome.lines) + b"".join(outcome.cached_lines), n)
        if stats.first_record_at is None:
            stats.first_record_at = time.monotonic()
        stats.timeline.add(stats.elapsed, stats.accounted)
    if outcome.failures:
        await files.failed.write(encode_lines(outcome.failures), len(outcome.failures))
    if outcome.rejects and (kept := rejects.keep(outcome.rejects)):
        await files.rejects.write(encode_lines(kept), len(kept))
    if outcome.deferred:
        await files.deferred.write(encode_lines(outcome.deferred), len(outcome.deferred))
    if outcome.skipped:
        await files.skipped.write(encode_lines(outcome.skipped), len(outcome.skipped))


async def _close_files(
    files: _Files,
    first: list[str],
    enricher: Enricher | ClusterEnricher | None,
    fatal: FatalError | None,
) -> FatalError | None:
    """Write what is pending and close every file; the first error (if any)."""
    left = _not_reached(first, enricher)
    for f in files.all():
        try:
            if f is files.deferred and left:
                await f.write(encode_lines(left), len(left))
            await f.close()
        except FatalError as exc:
            fatal = fatal or exc
    return fatal


def _not_reached(first: list[str], enricher: Enricher | ClusterEnricher | None) -> list[Deferred]:
    left = []
    for text in first:
        ioc_type, value = normalize(text)
        if ioc_type is not None and (enricher is None or not enricher.reached(ioc_type, value)):
            left.append(deferred_record(ioc_type, value, "not reached: the run stopped before it"))
    return left


def _replace_deferred(path: str, new: OutputFile) -> list[tuple[str, str, str]]:
    """This run's deferred list becomes the file beside the output; its items (type, ioc,
    reason), for the job's list in the state file, which its next run asks first."""
    if new.path != path:  # this run's own, or not a regular file: written as it is
        try:
            if os.path.lexists(path):
                os.unlink(path)
            if new.lines:
                os.replace(new.path, path)
        except OSError as exc:
            raise OutputError(
                f"cannot replace the deferred list {path}: {exc.strerror or exc}",
                "fix that, then run the same command with --resume to finish",
            ) from None
    items = read_deferred_items(path) if new.lines and os.path.isfile(path) else []
    return [(t.value, ioc, why) for t, ioc, why in items]


async def save_state(
    state: OpenState,
    budget: Budget | None,
    deferred: DeferredList | None,
    key: str | None,
    waiting: list[tuple[str, str, str]] | None,
) -> None:
    """The day's request count and the job's deferred list (when the run got as far as
    making one) kept, then the state closed: what is queued written."""
    try:
        if budget is not None:
            budget.save()
        if deferred is not None and key is not None and waiting is not None:
            await deferred.replace(key, waiting)
    except Exception:
        await state.aclose()  # not on a cancellation: the run walks away from the state
        raise
    await state.aclose()


def _exit_code(
    stats: RunStats, fatal: FatalError | None, interrupted: bool, input_failed: bool
) -> int:
    if fatal is not None or interrupted:
        return EXIT_FATAL
    if input_failed:
        return EXIT_USAGE
    if not stats.invariant_holds:  # pragma: no cover - a bug, said loudly
        log.error("error: the IOC accounting does not add up")
        return EXIT_FATAL
    # the whole job, earlier runs of it (--resume) included
    return EXIT_FAILURES if stats.failed or stats.earlier_failed or stats.deferred else EXIT_OK


def _next_step(
    fatal: FatalError | None,
    interrupted: bool,
    enricher: Enricher | ClusterEnricher | None,
    paths: OutputPaths,
    skipped: list[str],
    damaged: list[str],
    output_format: str,
) -> str | None:
    """The one line that says what happened, and what to run next; None after a clean run."""
    if not paths.regular:
        again = "run it again (a run on standard output cannot be resumed)"
    elif output_format in RESUMABLE:
        again = "run the same command with --resume to finish"
    else:
        again = (
            f"run the same command with --force to do it again (a {output_format} output is "
            "one document: it cannot be resumed)"
        )
    if fatal is not None:
        step = fatal.next_step if isinstance(fatal, OutputError) else None
        return f"error: {fatal}" + (f"; {step}" if step else "")
    if interrupted:
        return f"interrupted: {again}"
    if enricher is not None and enricher.input_error is not None:
        return (
            f"error: {enricher.input_error} (what was read before it was enriched); "
            f"fix it, then {again}"
        )
    if damaged:
        more = f" (and {len(damaged) - 1:,} more)" if len(damaged) > 1 else ""
        return (
            f"error: {damaged[0]}{more}: not read to its end, what was read before was "
            f"enriched; fix it, then {again}"
        )
    if skipped:
        more = f" (and {len(skipped) - 1:,} more)" if len(skipped) > 1 else ""
        return (
            f"error: {skipped[0]}{more}: left out, the other inputs were enriched; "
            f"fix it, then {again}"
        )
    return None


def _report(
    job: Job,
    settings: Settings,
    stats: RunStats,
    enricher: Enricher | ClusterEnricher | None,
    fatal: FatalError | None,
    files: _Files | None,
    paths: OutputPaths,
    started_at: float,
    code: int,
    inputs: Sequence[str],
    read_as: Mapping[str, str],
    interrupted: bool,
) -> bool:
    """Write the manifest and print the summary; False if the manifest could not be written."""
    written = True
    changes = list(enricher.limiter.changes) if enricher and enricher.limiter else []
    if job.manifest:
        outputs = {"records": paths.records, "failures": paths.failed, "rejects": paths.rejects}
        outputs["records_format"] = job.output_format
        outputs["deferred"] = paths.deferred
        outputs["skipped"] = paths.skipped
        manifest = build_manifest(
            settings=settings,
            stats=stats,
            inputs=read_as or {p: job.reading.format for p in inputs},
            outputs=outputs,
            started_at=started_at,
            exit_code=code,
            rate_changes=changes,
            extra=(
                {"most_repeated": enricher.occurrences.most_common(20)}
                if enricher and enricher.with_source
                else None
            ),
        )
        try:
            write_manifest(job.manifest, manifest)
        except OSError as exc:
            log.error("error: cannot write the manifest %s: %s", job.manifest, exc.strerror)
            written = False
    ran = stats.lines_read or stats.requests or stats.accounted or stats.already_done
    if job.log_json:
        log.info("summary", extra={"event": "summary", "data": stats.as_dict()})
    elif not job.quiet and (ran or code != EXIT_USAGE):
        # an input error before anything was read is said in one line, below
        text = format_summary(
            stats,
            rate_changes=[f"{c.rate:.1f}/s at {c.at:.1f}s ({c.reason})" for c in changes],
            inputs=read_as,
            repeated=enricher.occurrences.most_common(5) if enricher else None,
        )
        if files is not None:
            shown = {files.failed: "failures", files.rejects: "rejects"}
            shown[files.deferred] = "deferred"
            shown[files.skipped] = "skipped (internal)"
            for f, what in shown.items():
                if f.lines:
                    where = paths.deferred if f is files.deferred else f.display
                    lines = f"{f.lines:,} line{'' if f.lines == 1 else 's'}"
                    text += f"\n  {what} written to {where} ({lines})"
            if files.deferred.lines and stats.job is None:
                text += (
                    "\n  (a run on standard output belongs to no job: no later run asks these"
                    " first; give --job NAME for that)"
                )
        _say(text)
    step = _next_step(
        fatal,
        interrupted,
        enricher,
        paths,
        stats.inputs_skipped,
        stats.inputs_damaged,
        job.output_format,
    )
    if step is not None:
        log.error("%s", step)
    return written


def _say(text: str) -> None:
    """Print on stderr; a stderr that is gone (its reader quit) costs the summary only."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr, flush=True)
