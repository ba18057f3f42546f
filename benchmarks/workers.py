"""Text extraction spread over workers: `enricher run --workers 2` against `--workers 1`.

    python -m benchmarks.workers [--mb 200] [--files 4] [--runs 1]
    python -m benchmarks --only workers        (the suite's scenario 8: one run of each)

Writes `--files` log files of free text, `--mb` MB between them: lines drawn at random from
2 MB of squid, BIND and Sysmon log text as benchmarks/input_formats.py makes it (about
15,000 unique IOCs: a night's logs keep coming back to the same hosts). Starts a
redis-server of its own (127.0.0.1, a free port, saving nothing) and an emulator, then runs
the same job with one worker (one process, `--no-cache`) and with two (a LocalCluster,
`--state redis://…` with a fresh key prefix), alternately, `--runs` times each.

The API side is idle: the unique IOCs take a few dozen requests at no rate limit (and as
many answers stored in the state), so the wall time is reading and extracting. Reported:
each run's wall time (the interpreter's and the cluster's start-up included), its CPU time
(the job's and its workers', user + sys) and the cores it kept busy on average (CPU / wall),
MB/s, the speed-up (median wall time of one worker / of two) and the CPU ratio (median CPU
of two / of one: what the cluster adds to the work), and each two-worker run's serial
seconds (`benchmarks.workers_phases` runs it and marks its phases: the start to the cluster
up, the job's own reads meanwhile, the last read to the last result, the end). The target
is >= 1.7 x on 2 cores; on a shared machine the others' processes take their share: the
load average is reported too.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.input_formats import write_logs
from benchmarks.workers_phases import job_phases
from enricher.emulator.process import emulator_process

TARGET = 1.7
#: prctl's option that makes a process adopt its descendants' orphans (Linux)
_PR_SET_CHILD_SUBREAPER = 36


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _adopt_orphans() -> None:
    """Make this process the parent of its descendants' orphans: a job's workers are forked
    by its fork server, which outlives the job for a moment and, orphaned, would be reaped by
    init, their CPU time with it, lost to RUSAGE_CHILDREN. No-op off Linux."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans(known: set[int], wait: float = 10.0) -> None:
    """Wait for the processes this one adopted after a job (children not in `known`) to end,
    reaping each: their CPU time is then in RUSAGE_CHILDREN."""
    deadline = time.monotonic() + wait
    while orphans := [pid for pid in children(os.getpid()) if pid not in known]:
        for pid in orphans:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the job left processes running: {orphans}")
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0` of a redis-server of our own, ended by its pid."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(server):
        raise RuntimeError("redis-server is missing (Debian: apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(folder), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _run(inputs: list[Path], out: Path, base_url: str, extra: list[str], env: dict[str, str],
         phases: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One `enricher run`; with `phases` (a folder), run by `benchmarks.workers_phases`,
    which marks its phases there: its serial seconds are reported too."""
    manifest = out.with_suffix(".manifest.json")
    args = [*map(str, inputs), "-o", str(out), "--base-url", base_url, "--rate", "0",
            "--format", "text", "-q", "--manifest", str(manifest), *extra]  # fmt: skip
    if phases is None:
        args = [sys.executable, "-m", "enricher", "run", *args]
    else:
        phases.mkdir()
        args = [sys.executable, "-m", "benchmarks.workers_phases", "--job", str(phases), "--",
                *args]  # fmt: skip
    _adopt_orphans()
    known = set(children(os.getpid()))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **env})
    wall = time.perf_counter() - t0
    _reap_orphans(known)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the job's CPU with its workers' (reaped by the fork server, itself reaped by the job or,
    # orphaned, here), not the emulator's nor redis-server's (reaped only at the end)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    doc = json.loads(manifest.read_text())
    counts = doc["counts"]
    got = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cores_used": round(cpu / wall, 2),
           "unique": counts["unique"],
           "lines_read": counts["lines_read"], "requests": doc["requests"]["total"]}  # fmt: skip
    if phases is not None:
        got["serial_s"] = job_phases(phases)["serial_s"]
    return got


def _logs(folder: Path, mb: float, files: int) -> list[Path]:
    rng = random.Random(7)
    write_logs(folder / "pool.txt", rng, 2)
    pool = (folder / "pool.txt").read_text().splitlines()
    inputs = []
    for i in range(files):
        path = folder / f"logs{i}.txt"
        lines = rng.choices(pool, k=int(mb / files * 1e6 / 100))  # ~100 bytes a line
        path.write_text("\n".join(lines) + "\n")
        inputs.append(path)
    return inputs


def _unique(folder: Path, unique: int, files: int) -> list[Path]:
    """`unique` domains, each once, one a line, dealt into `files` files."""
    inputs = []
    for i in range(files):
        path = folder / f"unique{i}.txt"
        path.write_text("".join(f"h{n}.example.org\n" for n in range(i, unique, files)))
        inputs.append(path)
    return inputs


def measure(mb: float, files: int, runs: int, unique: int = 0) -> dict[str, Any]:
    """One worker against two over the same logs (or, with `unique`, that many unique
    domains, one a line): each run's figures and the speed-up."""
    with tempfile.TemporaryDirectory(prefix="enricher-workers-") as tmp:
        folder = Path(tmp)
        inputs = _unique(folder, unique, files) if unique else _logs(folder, mb, files)
        size = sum(p.stat().st_size for p in inputs) / 1e6
        one: list[dict[str, Any]] = []
        two: list[dict[str, Any]] = []
        with redis_server(folder) as redis, emulator_process() as base_url:
            for k in range(runs):
                for n, into in ((1, one), (2, two)):
                    out = folder / f"out-{n}-{k}.ndjson"
                    phases = None
                    if n == 1:
                        extra, env = ["--no-cache"], {}
                    else:
                        extra = ["--workers", "2"]
                        env = {"ENRICHER_STATE_URL": redis,
                               "ENRICHER_STATE_PREFIX": f"b{uuid.uuid4().hex[:12]}"}  # fmt: skip
                        phases = folder / f"phases-{k}"
                    into.append(_run(inputs, out, base_url, extra, env, phases))
    t1 = statistics.median(r["wall_s"] for r in one)
    t2 = statistics.median(r["wall_s"] for r in two)
    return {
        "mb": round(size, 1),
        "files": files,
        "one_worker": one,
        "two_workers": two,
        "mb_per_s_one": round(size / t1, 2),
        "mb_per_s_two": round(size / t2, 2),
        "speedup": round(t1 / t2, 2),
        # CPU of two workers' job over one's: above 1, the work the cluster adds
        "cpu_ratio": round(
            statistics.median(r["cpu_s"] for r in two) / statistics.median(r["cpu_s"] for r in one),
            2,
        ),
        "target": TARGET,
        "met": t1 / t2 >= TARGET,
        "same_counts": all(
            (a["unique"], a["lines_read"]) == (b["unique"], b["lines_read"])
            for a, b in zip(one, two, strict=True)
        ),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="MB of logs in all")
    ap.add_argument("--files", type=int, default=4, help="files they are split into")
    ap.add_argument("--runs", type=int, default=1, help="runs of each, alternating")
    ap.add_argument(
        "--unique", type=int, default=0, help="instead of logs: this many unique domains"
    )
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.mb, args.files, args.runs, args.unique), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
