"""`enricher run`: one enrichment job from input files to NDJSON files, with its summary."""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from .engine import Enricher
from .errors import EnricherError, FatalError
from .reader import InputOptions, check_inputs, read_inputs
from .settings import Settings
from .stats import RunStats
from .summary import format_summary
from .writer import NdjsonWriter

__all__ = ["EXIT_FAILURES", "EXIT_FATAL", "EXIT_OK", "EXIT_USAGE", "Job", "run_job"]

log = logging.getLogger("enricher")

EXIT_OK = 0  # every unique IOC enriched (or unsupported by choice)
EXIT_USAGE = 1  # usage or settings error
EXIT_FAILURES = 2  # finished, with failures or deferred IOCs
EXIT_FATAL = 3  # stopped by a fatal condition


@dataclass(frozen=True, kw_only=True)
class Job:
    inputs: Sequence[str]
    reading: InputOptions = field(default_factory=InputOptions)
    output: str = "-"
    failed: str | None = None
    rejects: str | None = None
    emulator: bool = False
    quiet: bool = False


def _side_path(output: str, given: str | None, suffix: str) -> tuple[str, bool]:
    """Where failures or rejects go, and whether the file is made only when needed."""
    if given:
        return given, False
    if output != "-":
        return f"{output}.{suffix}.ndjson", False
    return f"enricher.{suffix}.ndjson", True


@contextlib.asynccontextmanager
async def _embedded_emulator(settings: Settings, on: bool) -> AsyncIterator[Settings]:
    if not on:
        yield settings
        return
    from .emulator import Emulator, EmulatorConfig

    async with Emulator(EmulatorConfig()) as emu:
        yield settings.replace(api={"base_url": emu.base_url})


async def run_job(job: Job, settings: Settings) -> int:
    """Run one job; the exit code. Prints the summary on stderr unless quiet."""
    inputs = check_inputs(job.inputs)
    failed_path, failed_lazy = _side_path(job.output, job.failed, "failed")
    rejects_path, rejects_lazy = _side_path(job.output, job.rejects, "rejects")
    out = NdjsonWriter(job.output)
    failures = NdjsonWriter(failed_path, lazy=failed_lazy)
    rejects = NdjsonWriter(rejects_path, lazy=rejects_lazy)
    stats = RunStats()
    enricher: Enricher | None = None
    fatal: FatalError | None = None
    # What exists now (modules, settings) lives as long as the run: keep it out of the cyclic
    # collector. Its full passes over all of it stalled the loop for 10-25 ms, which showed as
    # requests bunched up at the server (measured at 50 requests/s).
    gc.freeze()
    try:
        async with (
            _embedded_emulator(settings, job.emulator) as settings,
            Enricher(settings, stats=stats) as enricher,
        ):
            max_line = settings.pipeline.max_line_bytes
            chunks = read_inputs(inputs, job.reading, max_line=max_line)
            async for outcome in enricher.run(chunks):
                if outcome.records:
                    out.write(outcome.records)
                    if stats.first_record_at is None:
                        stats.first_record_at = stats.elapsed + stats.started
                failures.write(outcome.failures)
                rejects.write(outcome.rejects)
            fatal = enricher.fatal
    except FatalError as exc:
        fatal = exc
        stats.stopped = str(exc)
    finally:
        for w in (out, failures, rejects):
            w.close()
    if not job.quiet:
        changes = []
        if enricher is not None and enricher.limiter is not None:
            changes = [
                f"{c.rate:.1f}/s at {c.at:.1f}s ({c.reason})" for c in enricher.limiter.changes
            ]
        print(
            format_summary(stats, rate_changes=changes, inputs=job.reading.formats),
            file=sys.stderr,
        )
        notes = [(failures, "failures"), (rejects, "rejects")]
        for w, what in notes:
            if w.lines:
                print(f"  {what} written to {w.display} ({w.lines:,} lines)", file=sys.stderr)
    if fatal is not None:
        print(f"enricher: error: {fatal}", file=sys.stderr)
        return EXIT_FATAL
    if not stats.invariant_holds:  # pragma: no cover - a bug, said loudly
        print("enricher: error: the IOC accounting does not add up", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_FAILURES if stats.failed or stats.deferred else EXIT_OK


def report_error(exc: EnricherError) -> None:
    print(f"enricher: error: {exc}", file=sys.stderr)
