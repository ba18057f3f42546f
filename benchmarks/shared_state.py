"""Issue 15's bar for jobs sharing one state: several `enricher run` jobs at once, disjoint
inputs, `--state redis://… --rate R` each, against a server that allows R requests/s in all
(the emulator's sliding 1-second window): the share of 429s, the share of the R/s the jobs
used together, every job exactly-once; then one more job over every input with the same
state, which must send nothing (the shared answers have it all).

    python benchmarks/shared_state.py [--rate 20] [--seconds 30] [--jobs 3] [--headroom 0.015]

Starts its own redis-server (on a free loopback port, saving nothing) unless `--redis URL`;
the emulator runs in this process, whose request log gives the arrival times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from enricher.emulator import Emulator, EmulatorConfig


@contextlib.contextmanager
def redis_process() -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0` of a redis-server of our own, ended by its pid."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="enricher-redis-")
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", folder, "--loglevel", "warning"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _records(path: Path) -> list[str]:
    return [orjson.loads(line)["ioc"] for line in path.read_bytes().splitlines()]


async def _job(
    base: str, state: str, env: dict[str, str], rate: float, batch: int, src: Path, out: Path
) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "enricher", "run", str(src), "-o", str(out), "--base-url", base,
        "--state", state, "--rate", str(rate), "--batch-size", str(batch), "--force",
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    _, stderr = await proc.communicate()
    return proc.returncode or 0, stderr.decode(errors="replace")


async def measure(
    redis_url: str,
    *,
    rate: int = 20,
    seconds: float = 30,
    jobs: int = 3,
    batch: int = 5,
    headroom: float | None = None,
    folder: Path | None = None,
) -> dict[str, Any]:
    """`jobs` jobs sharing the state at `redis_url` (a key prefix of their own), together
    about `seconds` of requests at `rate`, then the fourth over all their inputs."""
    tmp = folder or Path(tempfile.mkdtemp(prefix="enricher-shared-"))
    per_job = max(1, int(rate * seconds / jobs)) * batch
    inputs: list[list[str]] = []
    for j in range(jobs):
        iocs = [f"j{j}-{i}.shared-state.example.com" for i in range(per_job)]
        (tmp / f"in{j}.txt").write_text("\n".join(iocs) + "\n")
        inputs.append(iocs)
    env = {**os.environ, "ENRICHER_STATE_PREFIX": f"bench{uuid.uuid4().hex[:10]}"}
    if headroom is not None:
        env["ENRICHER_STATE_RATE_HEADROOM"] = str(headroom)
    config = EmulatorConfig(rate_limit=rate, log_size=1_000_000)
    async with Emulator(config) as emu:
        results = await asyncio.gather(*(
            _job(emu.base_url, redis_url, env, rate, batch, tmp / f"in{j}.txt", tmp / f"out{j}")
            for j in range(jobs)
        ))  # fmt: skip
        log = emu.log
        server = emu.stats()
        emu.reset_stats()
        everything = tmp / "all.txt"
        everything.write_text("".join((tmp / f"in{j}.txt").read_text() for j in range(jobs)))
        fourth = await _job(emu.base_url, redis_url, env, rate, batch, everything, tmp / "all")
        fourth_requests = emu.stats()["total_requests"]
    accepted = sorted(e.arrival for e in log if e.status == 200)
    span = accepted[-1] - accepted[0] if len(accepted) > 1 else 0.0
    requests = server["total_requests"]
    limited = server["rate_limited"]
    once = [
        code == 0 and sorted(_records(tmp / f"out{j}")) == sorted(inputs[j])
        for j, (code, _) in enumerate(results)
    ]
    report = {
        "rate": rate,
        "jobs": jobs,
        "headroom": headroom,
        "requests": requests,
        "server_429": limited,
        "share_429": round(limited / requests, 4) if requests else 0.0,
        # accepted requests over the span between the first and the last: (n - 1) intervals
        "used_share": round((len(accepted) - 1) / (rate * span), 4) if span else 0.0,
        "span_s": round(span, 2),
        "peak_accepted_per_second": server["peak_accepted_per_second"],
        "exactly_once": once,
        "exit_codes": [code for code, _ in results],
        "fourth_exit_code": fourth[0],
        "fourth_requests": fourth_requests,
        "fourth_exactly_once": fourth[0] == 0
        and sorted(_records(tmp / "all")) == sorted(i for job in inputs for i in job),
    }
    if folder is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def met(report: dict[str, Any]) -> bool:
    """Issue 15's bar: 429s at most 1% of requests, at least 90% of the rate used, every job
    exactly-once, and the fourth job sends nothing."""
    return (
        report["share_429"] <= 0.01
        and report["used_share"] >= 0.9
        and all(report["exactly_once"])
        and report["fourth_exactly_once"]
        and report["fourth_requests"] == 0
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rate", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--headroom", type=float, default=None)
    ap.add_argument("--redis", metavar="URL", help="a running Redis (default: start one)")
    args = ap.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.redis or stack.enter_context(redis_process())
        report = asyncio.run(
            measure(url, rate=args.rate, seconds=args.seconds, jobs=args.jobs,
                    batch=args.batch, headroom=args.headroom)
        )  # fmt: skip
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if met(report) else 1


if __name__ == "__main__":
    sys.exit(main())
