"""`enricher run`: one job from input files to NDJSON files, as a nightly scheduler runs it.

Around the engine it adds what an unattended run needs: outputs that are never silently
overwritten and can be resumed after a crash, the persistent cache, the request budget,
deferred IOCs picked up first by the next run, signals, progress, the manifest and exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

from .budget import Budget
from .cache import Cache, default_cache_path
from .console import Progress
from .dedupe import Deduper
from .engine import Enricher
from .errors import FatalError, SettingsError
from .identity import EMBEDDED_EMULATOR, identity_of
from .manifest import build_manifest, write_manifest
from .normalize import normalize
from .reader import STDIN, Chunk, InputOptions, check_inputs, read_inputs
from .records import Deferred, record_format
from .records import deferred as deferred_record
from .resume import read_deferred, read_keys, read_written, repair
from .settings import Settings
from .stats import RunStats
from .summary import format_summary
from .writer import NdjsonWriter

__all__ = ["EXIT_FAILURES", "EXIT_FATAL", "EXIT_OK", "EXIT_USAGE", "Job", "run_job"]

log = logging.getLogger("enricher")

EXIT_OK = 0  # every unique IOC enriched (or unsupported by choice)
EXIT_USAGE = 1  # usage, settings or input error
EXIT_FAILURES = 2  # finished, with failures or deferred IOCs
EXIT_FATAL = 3  # stopped by a fatal condition: credentials refused, output not writable, signal


@dataclass(frozen=True, kw_only=True)
class Job:
    inputs: Sequence[str]
    reading: InputOptions = field(default_factory=InputOptions)
    output: str = "-"
    failed: str | None = None
    rejects: str | None = None
    deferred: str | None = None
    emulator: bool = False
    quiet: bool = False
    resume: bool = False
    force: bool = False
    use_cache: bool = True
    cache_path: str | None = None
    cache_only: bool = False
    max_age: float | None = None
    max_requests: int | None = None
    manifest: str | None = None
    log_json: bool = False
    progress: bool | None = None  # None: on a terminal only
    with_source: bool = False


@dataclass
class _Paths:
    failed: str
    rejects: str
    deferred: str
    lazy: bool  # files made only when there is a line to write (output on stdout)


def _paths(job: Job) -> _Paths:
    if job.output != "-":
        stem, lazy = job.output, False
    else:
        stem, lazy = "enricher", True
    return _Paths(
        failed=job.failed or f"{stem}.failed.ndjson",
        rejects=job.rejects or f"{stem}.rejects.ndjson",
        deferred=job.deferred or f"{stem}.deferred.ndjson",
        lazy=lazy,
    )


def _check_outputs(job: Job, paths: _Paths) -> None:
    if job.manifest:
        # found out now, not after a night's work
        where = os.path.dirname(os.path.abspath(job.manifest))
        if os.path.isdir(job.manifest):
            raise SettingsError(f"--manifest {job.manifest} is a directory; give a file path")
        if not os.path.isdir(where) or not os.access(where, os.W_OK | os.X_OK):
            raise SettingsError(f"--manifest: cannot write in {where}")
    if job.resume and job.output == "-":
        raise SettingsError("--resume needs an output file (-o OUT): stdout cannot be resumed")
    if job.resume or job.force or job.output == "-":
        return
    for path in (job.output, paths.failed):
        if os.path.exists(path) and os.path.getsize(path) > 0:
            raise SettingsError(
                f"{path} exists: add --resume to continue that run, or --force to replace it"
            )


@contextlib.asynccontextmanager
async def _embedded_emulator(settings: Settings, on: bool) -> AsyncIterator[Settings]:
    if not on:
        yield settings
        return
    from .emulator import Emulator, EmulatorConfig

    async with Emulator(EmulatorConfig()) as emu:
        yield settings.replace(api={"base_url": emu.base_url})


def _open_cache(job: Job, settings: Settings) -> Cache | None:
    if job.cache_only and not job.use_cache:
        raise SettingsError("--cache-only and --no-cache contradict each other")
    if not job.use_cache or not (settings.cache.enabled or job.cache_path or job.cache_only):
        return None
    c = settings.cache
    cache = Cache(
        job.cache_path or c.path or default_cache_path(),
        max_ttl=c.max_ttl,
        default_ttl=c.default_ttl,
        max_age=job.max_age,
        fmt=record_format(settings.verdicts, settings.api.ttl_unit, job.with_source),
        # answers are served to the API identity that fetched them (the embedded emulator
        # is one identity, whatever port it gets)
        identity=EMBEDDED_EMULATOR if job.emulator else identity_of(settings),
        max_size=c.max_size,
    )
    purged = cache.purge()
    if purged:
        log.info("cache: purged %s expired answers", f"{purged:,}")
    return cache


def _prepare(job: Job, paths: _Paths, cache: Cache | None) -> tuple[Deduper | None, list[str]]:
    """What an earlier run left: IOCs it already wrote (with --resume), and IOCs it deferred,
    to be asked first (from the cache database and from its deferred file)."""
    first = [ioc for _, ioc in cache.deferred()] if cache is not None else []
    first.extend(read_deferred(paths.deferred))
    done: Deduper | None = None
    if job.resume:
        for path in (job.output, paths.failed):
            cut = repair(path)
            if cut:
                log.info("resume: cut a torn last line (%d bytes) off %s", cut, path)
        done = Deduper()
        found = read_written([job.output, paths.failed], done)
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


async def run_job(job: Job, settings: Settings) -> int:
    """Run one job; its exit code. The summary goes to stderr unless quiet."""
    started_at = time.time()
    inputs = check_inputs(job.inputs)
    paths = _paths(job)
    _check_outputs(job, paths)
    cache = _open_cache(job, settings)
    stats = RunStats()
    enricher: Enricher | None = None
    fatal: FatalError | None = None
    writers: list[NdjsonWriter] = []
    first: list[str] = []
    try:
        done, first = _prepare(job, paths, cache)
        mode = "ab" if job.resume else "wb"
        out = NdjsonWriter(job.output, mode=mode, threaded=True)
        failures = NdjsonWriter(paths.failed, lazy=paths.lazy, mode=mode)
        rejects = NdjsonWriter(paths.rejects, lazy=paths.lazy)
        # the new deferred list is made beside the old one and replaces it only at the end:
        # until then the old one (read above) stays, should this run be killed
        deferred = NdjsonWriter(paths.deferred + ".tmp", lazy=True)
        writers = [out, failures, rejects, deferred]
        budget = None
        if settings.limits.daily_budget and cache is None:
            log.warning(
                "limits.daily_budget is not kept without the cache (--no-cache): "
                "only --max-requests limits this run"
            )
        if job.max_requests is not None or settings.limits.daily_budget or cache is not None:
            budget = Budget(
                max_requests=job.max_requests,
                daily=settings.limits.daily_budget or None,
                cache=cache,
            )
        # What exists now (modules, settings) lives as long as the run: keep it out of the
        # cyclic collector, whose full passes stalled the loop 10-25 ms, which showed as
        # requests bunched up at the server (measured at 50 requests/s).
        gc.freeze()
        live = job.progress if job.progress is not None else sys.stderr.isatty()
        progress = Progress(
            stats,
            live=live and not job.quiet and not job.log_json,
            json=job.log_json and not job.quiet,
            total_bytes=_input_size(inputs),
        )
        async with (
            _embedded_emulator(settings, job.emulator) as settings,
            Enricher(
                settings,
                stats=stats,
                cache=cache,
                budget=budget,
                done=done,
                cache_only=job.cache_only,
                with_source=job.with_source,
            ) as enricher,
        ):
            chunks = read_inputs(inputs, job.reading, max_line=settings.pipeline.max_line_bytes)
            with _signals(enricher, settings):
                progress.start()
                try:
                    async for outcome in enricher.run(_with_deferred_first(first, chunks)):
                        if outcome.lines or outcome.cached_lines:
                            out.write_lines(outcome.lines)
                            out.write_lines(outcome.cached_lines)
                            if stats.first_record_at is None:
                                stats.first_record_at = time.monotonic()
                        failures.write(outcome.failures)
                        rejects.write(outcome.rejects)
                        deferred.write(outcome.deferred)
                finally:
                    await progress.stop()
            fatal = enricher.fatal
    except FatalError as exc:
        fatal = exc
        stats.stopped = str(exc)
    finally:
        if writers:
            # what earlier runs deferred and this one did not reach stays deferred
            writers[-1].write(_not_reached(first, enricher))
        for w in writers:
            try:
                w.close()
            except FatalError as exc:
                fatal = fatal or exc
                stats.stopped = stats.stopped or str(exc)
        if writers:
            _replace_deferred(paths.deferred, writers[-1], cache)
        if cache is not None:
            cache.close()
            stats.cache = cache.report()
    interrupted = enricher is not None and enricher.interrupted
    input_error = enricher.input_error if enricher is not None else None
    code = _exit_code(stats, fatal, interrupted, input_error is not None)
    if not _report(job, settings, stats, enricher, fatal, writers, paths, started_at, code, inputs):
        code = max(code, EXIT_FATAL)  # a nightly job's record of itself is an output too
    return code


def _not_reached(first: list[str], enricher: Enricher | None) -> list[Deferred]:
    left = []
    for text in first:
        ioc_type, value = normalize(text)
        if ioc_type is not None and (enricher is None or not enricher.reached(ioc_type, value)):
            left.append(deferred_record(ioc_type, value, "not reached: the run stopped before it"))
    return left


def _replace_deferred(path: str, new: NdjsonWriter, cache: Cache | None) -> None:
    """This run's deferred list becomes the list: the file, and the cache's table, which the
    next run asks first whatever its inputs."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    if new.lines:
        os.replace(new.path, path)
    if cache is not None:
        cache.set_deferred((t.value, ioc) for t, ioc in (read_keys(path) if new.lines else ()))


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
    return EXIT_FAILURES if stats.failed or stats.deferred else EXIT_OK


def _report(
    job: Job,
    settings: Settings,
    stats: RunStats,
    enricher: Enricher | None,
    fatal: FatalError | None,
    writers: list[NdjsonWriter],
    paths: _Paths,
    started_at: float,
    code: int,
    inputs: Sequence[str],
) -> bool:
    """Write the manifest and print the summary; False if the manifest could not be written."""
    written = True
    changes = list(enricher.limiter.changes) if enricher and enricher.limiter else []
    if job.manifest:
        outputs = {"records": job.output, "failures": paths.failed, "rejects": paths.rejects}
        outputs["deferred"] = paths.deferred
        manifest = build_manifest(
            settings=settings,
            stats=stats,
            inputs=job.reading.formats or {p: job.reading.format for p in inputs},
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
    if job.log_json:
        log.info("summary", extra={"event": "summary", "data": stats.as_dict()})
    elif not job.quiet:
        text = format_summary(
            stats,
            rate_changes=[f"{c.rate:.1f}/s at {c.at:.1f}s ({c.reason})" for c in changes],
            inputs=job.reading.formats,
            repeated=enricher.occurrences.most_common(5) if enricher else None,
        )
        print(text, file=sys.stderr)
        for w in writers[1:]:
            if w.lines:
                what = w.path.rsplit(".", 2)[-2] if w.path.endswith(".ndjson") else w.path
                print(f"  {what} written to {w.display} ({w.lines:,} lines)", file=sys.stderr)
    if fatal is not None:
        log.error("error: %s", fatal)
    elif enricher is not None and enricher.input_error is not None:
        log.error("error: %s (what was read before it was enriched)", enricher.input_error)
    elif enricher is not None and enricher.interrupted:
        log.error("interrupted: run the same command with --resume to finish")
    return written


@contextlib.contextmanager
def _signals(enricher: Enricher, settings: Settings) -> Iterator[None]:
    """SIGINT/SIGTERM: the first stops gracefully, a second stops at once."""
    loop = asyncio.get_running_loop()
    received = 0

    def on_signal() -> None:
        nonlocal received
        received += 1
        if received == 1:
            grace = settings.pipeline.grace_period
            log.error(
                "stopping: letting requests in flight finish (up to %.0f s); "
                "signal again to stop at once",
                grace,
            )
            enricher.stop()
        else:
            enricher.stop(now=True)

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # not on this platform, or not in the main thread (asyncio says RuntimeError,
        # uvloop ValueError): the run goes on without graceful stop
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
