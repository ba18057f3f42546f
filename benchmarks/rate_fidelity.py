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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from enricher.emulator.process import emulator_process, emulator_stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--jitter-ms", type=float, default=0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="enricher-rate-"))
    keys = int(args.rate * args.seconds * args.batch)
    src = tmp / "in.txt"
    src.write_text("".join(f"r{i}.rate-fidelity.example\n" for i in range(keys)))
    flags = ["--rate-limit", str(args.rate), "--latency-ms", str(args.latency_ms),
             "--jitter-ms", str(args.jitter_ms)]  # fmt: skip
    with emulator_process(*flags) as base:
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "enricher", "run", str(src), "-o", str(tmp / "out.ndjson"),
             "--base-url", base, "--rate", str(args.rate), "--batch-size", str(args.batch),
             "--concurrency", str(args.concurrency)],
            capture_output=True, text=True,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        server = emulator_stats(base)
    requests = server["total_requests"]
    span = re.search(r"done in ([0-9.]+) s", run.stderr)
    run_s = float(span.group(1)) if span else elapsed
    report = {
        "rate": args.rate,
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "requests": requests,
        "run_s": run_s,
        "server_429": server["rate_limited"],
        "peak_accepted_per_second": server["peak_accepted_per_second"],
        "peak_arrived_per_second": server["peak_arrived_per_second"],
        "used_share": round(requests / (args.rate * run_s), 4),
        "exit_code": run.returncode,
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if report["server_429"] == 0 and run.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
