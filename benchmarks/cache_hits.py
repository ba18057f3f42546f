"""Warm-cache throughput: the same input twice; the second run must send nothing.

Starts `enricher emulator` in its own process, runs `enricher run` over N lines (a mix of
md5, sha1, domains and IPv4; `--duplicates` of them repeated) with a fresh cache, then again,
and reports both runs' unique IOCs/s and the requests the emulator saw during the second.

    python benchmarks/cache_hits.py [--unique 500000] [--duplicates 0.5]
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from enricher.emulator.process import emulator_process, emulator_stats


def speed(stderr: str) -> float:
    found = re.search(r"speed\s+([\d,]+) IOCs/s", stderr)
    return float(found.group(1).replace(",", "")) if found else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unique", type=int, default=500_000)
    ap.add_argument("--duplicates", type=float, default=0.5, help="share of lines repeated")
    args = ap.parse_args()
    rng = random.Random(4)
    tmp = Path(tempfile.mkdtemp(prefix="enricher-cache-"))
    iocs = []
    for i in range(args.unique):
        h = f"{rng.getrandbits(160):040x}"
        iocs.append(
            [h[:32], h, f"c{i}.cache.example", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"][
                i % 4
            ]
        )
    lines = iocs + rng.choices(iocs, k=int(len(iocs) * args.duplicates / (1 - args.duplicates)))
    rng.shuffle(lines)
    src = tmp / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    runs = []
    with emulator_process() as base:
        for name in ("cold", "warm"):
            out = str(tmp / f"{name}.ndjson")
            proc = subprocess.run(
                [sys.executable, "-m", "enricher", "run", str(src), "-o", out,
                 "--base-url", base, "--rate", "0", "--cache", str(tmp / "cache.sqlite3")],
                capture_output=True, text=True,
            )  # fmt: skip
            requests = emulator_stats(base, reset=True)["total_requests"]
            runs.append({"run": name, "exit": proc.returncode, "iocs_per_s": speed(proc.stderr),
                         "requests": requests})  # fmt: skip
    print(orjson.dumps({"unique": args.unique, "lines": len(lines), "runs": runs},
                       option=orjson.OPT_INDENT_2).decode())  # fmt: skip
    return 0 if runs[1]["requests"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
