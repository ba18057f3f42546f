"""Where a `--workers 2` job's time goes: its phases, and the serial seconds among them.

    python -m benchmarks.workers_phases [--mb 100] [--files 4] [--workers 2]

The same logs as `benchmarks.workers` (its `--mb` and `--files`), a redis-server and an
emulator of its own; then `enricher run --workers N` in a process that marks, from its
start: the cluster asked for and up, each read's and each part's result taken, all results
in, the cluster closed, the end; and each task's wall and CPU time on its worker (the
job's fork server imports this module too, which then times `read_input` and `enrich_new`
in it, and the workers forked from it inherit that). Reported: those marks, each task's
timings, and the serial seconds (start to the cluster up, the cluster up to the first read's
start, the last read's end to the last result, the last result to the end): what no second
worker shortens. CPU is each process's own (the job's, each worker's at its last task),
user + sys.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: the job's start, the origin of every mark, in the job and in its workers
_T0 = float(os.environ.get("ENRICHER_PHASES_T0") or time.time())


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


def _timed(fn: Callable[..., Any], what: Callable[..., str], folder: str) -> Callable[..., Any]:
    """`fn`, each call's wall times and CPU appended to FOLDER/task-PID.jsonl."""

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0, c0, thread = time.time(), _cpu(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            row = [what(*args), round(t0 - _T0, 3), round(time.time() - _T0, 3),
                   round(time.thread_time() - thread, 3), c0, _cpu()]  # fmt: skip
            with open(os.path.join(folder, f"task-{os.getpid()}.jsonl"), "a") as f:
                f.write(json.dumps(row) + "\n")

    return timed


def _time_tasks(folder: str) -> None:
    """Time the tasks' functions in this process (the job's, or its fork server's)."""
    from enricher.cluster import client, parts

    parts.read_input = client.read_input = _timed(parts.read_input, _source, folder)
    timed = _timed(parts.enrich_new, lambda w, i, *a: f"part {i}", folder)
    parts.enrich_new = client.enrich_new = timed


def _source(source: Any, *args: Any) -> str:
    block = None if isinstance(source, str) else getattr(source, "index", None)
    name = os.path.basename(getattr(source, "path", None) or getattr(source, "source", source))
    return f"read {name}" + (f" block {block}" if block is not None else "")


def _job(folder: str, argv: list[str]) -> int:
    """Run `enricher run ARGV` here, marking its phases (in FOLDER/job.json)."""
    from enricher.app import lifecycle

    lifecycle.install()
    from enricher.cluster import forkserver

    # the fork server the workers are forked from imports this module (below, it then times
    # the tasks' functions): a task pickled by reference finds them timed in its worker
    # started as early as `enricher run --workers N` starts it (the command line's first
    # look), before this process imports the job to time it
    os.environ["ENRICHER_PHASES_T0"], os.environ["ENRICHER_PHASES_DIR"] = str(_T0), folder
    forkserver.PRELOAD.append("benchmarks.workers_phases")
    if forkserver.asked_for_workers(["run", *argv]):
        forkserver.start_fork_server()
    from enricher.app.cli import main
    from enricher.cluster import client

    marks: list[tuple[float, float, str]] = []

    def mark(what: str) -> None:
        marks.append((round(time.time() - _T0, 3), _cpu(), what))

    cls = client.ClusterEnricher
    enter, close, read, part = cls.__aenter__, cls._close, cls._read, cls._part

    async def entered(self: Any) -> Any:
        mark("cluster asked for")
        got = await enter(self)
        mark("cluster up")
        return got

    async def closed(self: Any) -> None:
        mark("all results in, closing")
        await close(self)
        mark("closed")

    def read_taken(self: Any, r: Any) -> Any:
        mark(_source(r.block or r.source))
        return read(self, r)

    def part_taken(self: Any, p: Any, first: bool) -> Any:
        mark(f"part {p.index}" + (" (first wave)" if first else ""))
        return part(self, p, first)

    cls.__aenter__, cls._close, cls._read, cls._part = entered, closed, read_taken, part_taken
    _time_tasks(folder)
    mark("start")
    try:
        return main(["run", *argv])
    finally:
        mark("end")
        with open(os.path.join(folder, "job.json"), "w") as f:
            json.dump({"marks": marks, "pid": os.getpid()}, f)


def _serial(
    marks: list[tuple[float, float, str]], tasks: dict[str, list[list[Any]]], job: str
) -> dict[str, float]:
    """The serial seconds of a job (`job`: its pid, under which its own reads are timed) from
    its marks and its tasks' timings (by pid): what no second worker shortens."""
    at = {what: t for t, _, what in marks}
    reads = [row for rows in tasks.values() for row in rows if row[0].startswith("read ")]
    by_workers = [row for pid, rows in tasks.items() if pid != job for row in rows
                  if row[0].startswith("read ")]  # fmt: skip
    results = [t for t, _, what in marks if what.startswith(("read ", "part "))]
    if not reads or not results:
        return {}
    last_read = max(row[2] for row in reads)
    serial = {"start_to_cluster_up": round(at["cluster up"], 2)}
    if by_workers:
        first = min(row[1] for row in by_workers)
        serial["cluster_up_to_first_worker_read"] = round(first - at["cluster up"], 2)
    serial["last_read_to_last_result"] = round(max(results) - last_read, 2)
    serial["last_result_to_end"] = round(at["end"] - max(results), 2)
    serial["reading"] = round(last_read - min(row[1] for row in reads), 2)
    return serial


def job_phases(folder: Path) -> dict[str, Any]:
    """What a job run by `--job FOLDER` left there: its marks, its tasks' timings (by the
    pid that ran them) and its serial seconds."""
    job = json.loads((folder / "job.json").read_text())
    marks, pid = job["marks"], job["pid"]
    tasks: dict[str, list[list[Any]]] = {}
    for path in sorted(glob.glob(str(folder / "task-*.jsonl"))):
        worker = Path(path).stem.removeprefix("task-")
        tasks[worker] = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return {"marks": marks, "tasks": tasks, "serial_s": _serial(marks, tasks, str(pid))}


def measure(mb: float, files: int, workers: int) -> dict[str, Any]:
    from benchmarks.workers import _logs, redis_server
    from enricher.emulator.process import emulator_process

    with tempfile.TemporaryDirectory(prefix="enricher-phases-") as tmp:
        folder = Path(tmp)
        inputs = _logs(folder, mb, files)
        size = sum(p.stat().st_size for p in inputs) / 1e6
        with redis_server(folder) as redis, emulator_process() as base_url:
            env = {**os.environ, "ENRICHER_STATE_URL": redis,
                   "ENRICHER_STATE_PREFIX": f"p{uuid.uuid4().hex[:12]}"}  # fmt: skip
            args = [*map(str, inputs), "-o", str(folder / "out.ndjson"), "--base-url", base_url,
                    "--rate", "0", "--format", "text", "-q", "--workers", str(workers)]  # fmt: skip
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.workers_phases", "--job", tmp, "--", *args],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
            wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
        phases = job_phases(folder)
    marks, tasks = phases["marks"], phases["tasks"]
    return {
        "mb": round(size, 1),
        "workers": workers,
        "wall_s": round(wall, 2),
        "serial_s": phases["serial_s"],
        "job_marks": [{"at_s": t, "job_cpu_s": c, "what": w} for t, c, w in marks],
        "tasks": {
            worker: [
                {"what": w, "from_s": a, "to_s": b, "thread_cpu_s": tc, "worker_cpu_s": c1}
                for w, a, b, tc, _, c1 in rows
            ]
            for worker, rows in tasks.items()
        },
        "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--job"]:  # the job's own process (see `measure`)
        with contextlib.suppress(ValueError):
            argv.remove("--")
        return _job(argv[1], argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="MB of logs in all")
    ap.add_argument("--files", type=int, default=4, help="files they are split into")
    ap.add_argument("--workers", type=int, default=2, help="worker processes")
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.mb, args.files, args.workers), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
elif os.environ.get("ENRICHER_PHASES_DIR"):  # imported by the job's fork server
    _time_tasks(os.environ["ENRICHER_PHASES_DIR"])
