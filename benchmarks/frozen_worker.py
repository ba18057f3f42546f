"""A frozen worker under `enricher run --workers 2`: how long until its part is redone.

    python -m benchmarks.frozen_worker [--iocs 12000] [--freeze-after 1]

Writes `--iocs` unique domains in 2 files, starts a redis-server and an emulator answering
each request after 100 ms, and runs `enricher run --workers 2 --batch-size 20
--concurrency 2` (slow enough to be caught mid-run). Once the job's first record is written,
it SIGSTOPs one of the job's worker processes (a hung host, a process swapped out) and
leaves it stopped. Reported: the exit code, the wall time from the freeze to the job's end,
and whether every IOC is in the outputs exactly once. The local cluster's scheduler drops a
worker silent for `ClusterEnricher.worker_ttl` (10 s; checked every 10 s), its nanny kills
it and starts another, and its tasks are redone: the job ended 32.4 s after the freeze at
load 9.4 (benchmarks/README.md). With Dask's default TTL (5 minutes, checked every 5) a
frozen worker held a job for up to 10 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.workers import children, redis_server
from enricher.emulator.process import emulator_process


def _workers(pid: int) -> list[int]:
    """The job's Dask worker processes: forked by the fork server the job started (a child of
    the job, so its workers are the job's grandchildren), or spawned where no fork server is
    offered."""
    found = []
    for child in children(pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"multiprocessing.forkserver" in cmdline:
            found += children(child)
        elif b"spawn_main" in cmdline:
            found.append(child)
    return found


def measure(iocs: int, freeze_after: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="enricher-frozen-") as tmp:
        folder = Path(tmp)
        inputs = []
        for i in range(2):
            path = folder / f"in{i}.txt"
            path.write_text("".join(f"h{n}.example.org\n" for n in range(i, iocs, 2)))
            inputs.append(str(path))
        out = folder / "out.ndjson"
        with redis_server(folder) as redis, emulator_process("--latency-ms", "100") as url:
            env = {**os.environ, "ENRICHER_STATE_URL": redis,
                   "ENRICHER_STATE_PREFIX": f"f{uuid.uuid4().hex[:12]}"}  # fmt: skip
            job = subprocess.Popen(
                [sys.executable, "-m", "enricher", "run", *inputs, "-o", str(out), "-q",
                 "--base-url", url, "--rate", "0", "--batch-size", "20", "--concurrency", "2",
                 "--workers", "2"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            )  # fmt: skip
            frozen = None
            try:
                deadline = time.monotonic() + 120
                while not out.exists() or out.stat().st_size == 0:
                    if job.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the job wrote nothing before it ended (or in 120 s)")
                    time.sleep(0.05)
                time.sleep(freeze_after)
                workers = _workers(job.pid)
                if job.poll() is not None or not workers:
                    raise RuntimeError("the job ended before a worker could be frozen")
                frozen = workers[0]
                os.kill(frozen, signal.SIGSTOP)
                t0 = time.monotonic()
                _, err = job.communicate(timeout=600)
                after = time.monotonic() - t0
            finally:
                if frozen is not None:  # ours: let it go (its nanny may have killed it)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(frozen, signal.SIGCONT)
                if job.poll() is None:
                    job.kill()
                    job.wait()
        seen = []
        for suffix in ("", ".failed.ndjson", ".skipped.ndjson"):
            path = Path(f"{out}{suffix}")
            if path.exists():
                seen += [json.loads(line)["ioc"] for line in path.read_text().splitlines()]
    return {
        "iocs": iocs,
        "exit": job.returncode,
        "frozen_pid": frozen,
        "s_from_freeze_to_end": round(after, 1),
        "each_once": len(seen) == len(set(seen)) == iocs,
        "stderr_tail": err.decode().strip().splitlines()[-1:],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iocs", type=int, default=12_000, help="unique domains in all")
    ap.add_argument("--freeze-after", type=float, default=1.0, help="s after the first record")
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.iocs, args.freeze_after), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
