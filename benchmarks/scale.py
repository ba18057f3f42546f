"""End to end at scale: `enricher run` as a process of its own over millions of lines.

Writes N lines (`--duplicates` of them repeats, see `workload.py`), starts `enricher emulator`
in its own process and runs the command line against it with `-o -`, reading its stdout as it
comes: the time of the first record, records over time (for the plot of IOCs/s), and, from the
kernel when it ends, the peak RSS of the enricher process alone. The baseline RSS is
the same command over a 4-line file; bytes per unique IOC are counted above it. Runs without
the cache, then with a fresh one filling as it goes. Prints a JSON report.

    python benchmarks/scale.py [--lines 1000000] [--duplicates 0.5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: python benchmarks/scale.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bytecode import compile_sources
from benchmarks.workload import write_input
from enricher.emulator.process import emulator_process

__all__ = ["CliRun", "baseline_rss", "enricher_flags", "run_enricher", "run_process", "scale_runs"]


@dataclass
class CliRun:
    """One `enricher run` process, as seen from outside and from its manifest."""

    exit_code: int
    wall_s: float  # from the process start, interpreter start-up included
    first_record_wall_s: float | None  # the first record on stdout, from the process start
    records: int  # lines on stdout
    peak_rss_bytes: int
    user_s: float = 0.0  # CPU time of the process (and any children it waited for)
    sys_s: float = 0.0
    series: list[tuple[float, int]] = field(default_factory=list)  # (seconds, records so far)
    manifest: dict[str, Any] = field(default_factory=dict)
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def iocs_per_s(self) -> float:
        """Unique IOCs/s as the engine counts them (its own clock: from the start of the run
        to its end, without the interpreter's start-up)."""
        return float(self.manifest.get("iocs_per_s") or 0.0)

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        out = asdict(self)
        out.pop("manifest")
        out.pop("series")
        if self.exit_code == 0:
            out.pop("stderr_tail")
        first = re.search(r"first record after ([0-9.]+) s", "\n".join(self.stderr_tail))
        out.update(
            iocs_per_s=self.iocs_per_s,
            unique=m.get("counts", {}).get("unique"),
            elapsed_s=m.get("elapsed_s"),
            first_record_s=float(first.group(1)) if first else None,
            requests=m.get("requests", {}).get("total"),
            retries=m.get("retries"),
            rate_limited_429=m.get("rate_limited_429"),
            event_loop=event_loop(m, self.stderr_tail),
        )
        return out


def event_loop(manifest: dict[str, Any], stderr: Sequence[str]) -> str | None:
    """The event loop the run says it used, if it says (a manifest key naming a loop, or a
    summary line that does); None when the engine does not tell."""
    stack: list[Any] = [manifest]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if "loop" in k.lower() and isinstance(v, str):
                    return v
                stack.append(v)
    for line in stderr:
        if "loop" in line.lower():
            return line.strip()
    return None


def enricher_flags(base_url: str, cache: Path | None) -> list[str]:
    """`enricher run` flags for the separate emulator: no rate limit, the default concurrency
    and batch size, and the cache at `cache` (None: `--no-cache`)."""
    flags = ["--base-url", base_url, "--rate", "0"]
    return flags + (["--cache", str(cache)] if cache is not None else ["--no-cache"])


# Starts the command and, when it ends, writes its peak RSS (KiB) and the CPU time it used (user
# and system, s) to a file. A child started straight from this process would not do: Linux
# carries the high-water mark of the memory a process had before exec over to what it runs, and
# a child of this (large) process starts as a copy of it, so its peak would be at least ours.
# The launcher is small when it starts its child.
_LAUNCHER = """import json, resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
used = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"maxrss_kib": used.ru_maxrss, "user_s": used.ru_utime, "sys_s": used.ru_stime}, f)
sys.exit(code)
"""


def run_enricher(
    inputs: Sequence[str],
    flags: Sequence[str],
    *,
    sample_every: float = 0.25,
    env: Mapping[str, str] | None = None,
) -> CliRun:
    """Run `enricher run INPUTS -o - FLAGS` and watch it; its records are counted and
    dropped. Failures and rejects go to a scratch directory."""
    scratch = Path(tempfile.mkdtemp(prefix="enricher-scale-"))
    manifest = scratch / "manifest.json"
    cmd = [sys.executable, "-m", "enricher", "run", *inputs, "-o", "-", *flags,
           "--manifest", str(manifest), "--failed", str(scratch / "failed.ndjson"),
           "--rejects", str(scratch / "rejects.ndjson"), "--deferred",
           str(scratch / "deferred.ndjson"), "--no-progress"]  # fmt: skip
    run = run_process(cmd, sample_every=sample_every, env=env)
    run.manifest = orjson.loads(manifest.read_bytes()) if manifest.exists() else {}
    shutil.rmtree(scratch, ignore_errors=True)
    return run


def run_process(
    cmd: Sequence[str], *, sample_every: float = 0.25, env: Mapping[str, str] | None = None
) -> CliRun:
    """Run `cmd`, which writes one line a record to stdout, and watch it: records over time,
    its peak RSS and CPU time from the kernel. `env` is added to this process's environment."""
    scratch = Path(tempfile.mkdtemp(prefix="enricher-proc-"))
    usage = scratch / "usage.json"
    launcher = [sys.executable, "-c", _LAUNCHER, str(usage), *cmd]
    with (scratch / "stderr.txt").open("w+b") as err:
        started = time.perf_counter()
        with subprocess.Popen(
            launcher, stdout=subprocess.PIPE, stderr=err, env={**os.environ, **(env or {})}
        ) as proc:
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            records = 0
            first: float | None = None
            series: list[tuple[float, int]] = [(0.0, 0)]
            while chunk := os.read(fd, 1 << 20):
                now = time.perf_counter() - started
                if first is None:
                    first = now
                records += chunk.count(b"\n")
                if now - series[-1][0] >= sample_every:
                    series.append((round(now, 3), records))
            code = proc.wait()
        wall = time.perf_counter() - started
        series.append((round(wall, 3), records))
        err.seek(0)
        tail = err.read().decode(errors="replace").splitlines()[-25:]
    used = orjson.loads(usage.read_bytes()) if usage.exists() else {}
    shutil.rmtree(scratch, ignore_errors=True)
    return CliRun(
        exit_code=code,
        wall_s=round(wall, 3),
        first_record_wall_s=round(first, 3) if first is not None else None,
        records=records,
        peak_rss_bytes=int(used.get("maxrss_kib", 0)) * 1024,
        user_s=round(float(used.get("user_s", 0.0)), 3),
        sys_s=round(float(used.get("sys_s", 0.0)), 3),
        series=series,
        stderr_tail=tail,
    )


def baseline_rss(base_url: str) -> int:
    """Peak RSS of the same command over a 4-line file: the interpreter, the imports, the
    session; what a large run holds above it grows with its input."""
    folder = Path(tempfile.mkdtemp(prefix="enricher-base-"))
    src = folder / "tiny.txt"
    write_input(src, 4, duplicates=0.0)
    run = run_enricher([str(src)], enricher_flags(base_url, None))
    shutil.rmtree(folder, ignore_errors=True)
    return run.peak_rss_bytes


def scale_runs(
    src: Path, base_url: str, unique: int, baseline: int, cache: Path
) -> list[dict[str, Any]]:
    """The file once without the cache and once with a fresh one; a report per run."""
    reports = []
    for label, cache_path in (("no cache", None), ("cache", cache)):
        if cache_path is not None:
            cache_path.unlink(missing_ok=True)
        run = run_enricher([str(src)], enricher_flags(base_url, cache_path))
        report = {"run": label, **run.summary(), "series": run.series}
        report["bytes_per_unique_above_baseline"] = round(
            (run.peak_rss_bytes - baseline) / max(1, unique), 1
        )
        if run.exit_code != 0:
            report["error"] = f"exit {run.exit_code}: " + " | ".join(run.stderr_tail[-3:])
        reports.append(report)
    return reports


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--duplicates", type=float, default=0.5, help="share of lines repeated")
    args = ap.parse_args()
    bytecode = compile_sources()  # the engine as installed: see bytecode.py
    tmp = Path(tempfile.mkdtemp(prefix="enricher-scale-in-"))
    src = tmp / "in.txt"
    unique = write_input(src, args.lines, args.duplicates)
    with emulator_process() as base:
        baseline = baseline_rss(base)
        runs = scale_runs(src, base, unique, baseline, tmp / "cache.sqlite3")
    shutil.rmtree(tmp, ignore_errors=True)
    for r in runs:
        r.pop("series")
    report = {"lines": args.lines, "unique": unique, "baseline_rss_bytes": baseline,
              "bytecode": bytecode, "runs": runs}  # fmt: skip
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
