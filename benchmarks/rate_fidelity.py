"""Rate-limit fidelity: does `enricher run --rate R` use the server's allowance and draw no 429?

Starts `enricher emulator --rate-limit R` (optionally with latency) in its own process, runs
`enricher run --rate R` over enough small batches to last about D seconds, and reports from
the emulator's own stats: 429s, the busiest 1-second window, and the share of the allowed
requests (R per second over the run) that the engine used.

    python benchmarks/rate_fidelity.py [--rate 50] [--seconds 20] [--latency-ms 0 --jitter-ms 0]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from enricher.emulator.process import emulator_process, emulator_stats


def measure(
    *, rate: int = 50, seconds: float = 20, batch: int = 5, latency_ms: float = 0,
    jitter_ms: float = 0, concurrency: int = 8,
) -> dict[str, Any]:  # fmt: skip
    """One run of `enricher run --rate RATE` against an emulator allowing RATE per second."""
    tmp = Path(tempfile.mkdtemp(prefix="enricher-rate-"))
    keys = int(rate * seconds * batch)
    src = tmp / "in.txt"
    src.write_text("".join(f"r{i}.rate-fidelity.example.com\n" for i in range(keys)))
    flags = ["--rate-limit", str(rate), "--latency-ms", str(latency_ms),
             "--jitter-ms", str(jitter_ms)]  # fmt: skip
    with emulator_process(*flags) as base:
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "enricher", "run", str(src), "-o", str(tmp / "out.ndjson"),
             "--base-url", base, "--rate", str(rate), "--batch-size", str(batch),
             "--concurrency", str(concurrency), "--no-cache"],
            capture_output=True, text=True,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        server = emulator_stats(base)
    shutil.rmtree(tmp, ignore_errors=True)
    requests = server["total_requests"]
    span = re.search(r"done in ([0-9.]+) s", run.stderr)
    run_s = float(span.group(1)) if span else elapsed
    return {
        "rate": rate,
        "latency_ms": latency_ms,
        "jitter_ms": jitter_ms,
        "requests": requests,
        "run_s": run_s,
        "server_429": server["rate_limited"],
        "engine_429": _engine_429(run.stderr),
        "peak_accepted_per_second": server["peak_accepted_per_second"],
        "peak_arrived_per_second": server["peak_arrived_per_second"],
        "used_share": round(requests / (rate * run_s), 4),
        "exit_code": run.returncode,
    }


def _engine_429(summary: str) -> int | None:
    found = re.search(r"429s ([\d,]+)", summary)
    return int(found.group(1).replace(",", "")) if found else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--jitter-ms", type=float, default=0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    report = measure(
        rate=args.rate, seconds=args.seconds, batch=args.batch, latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms, concurrency=args.concurrency,
    )  # fmt: skip
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if report["server_429"] == 0 and report["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
