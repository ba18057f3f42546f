"""Warm-cache throughput: the same input twice; the second run must send nothing.

Starts `enricher emulator` in its own process, runs `enricher run` over N unique IOCs (md5,
sha1, domains and IPv4, see `workload.py`; `--duplicates` of the lines are repeats) with a fresh
cache, then again, and reports both runs' unique IOCs/s and the requests the emulator saw
during each.

    python benchmarks/cache_hits.py [--unique 500000] [--duplicates 0.5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: python benchmarks/cache_hits.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bytecode import compile_sources
from benchmarks.scale import enricher_flags, run_enricher
from benchmarks.workload import write_input
from enricher.emulator.process import emulator_process, emulator_stats

__all__ = ["cold_then_warm", "warm"]


def warm(src: Path, base_url: str, cache: Path) -> dict[str, Any]:
    """One run over `src` with the cache as it is; the requests the emulator saw."""
    emulator_stats(base_url, reset=True)
    run = run_enricher([str(src)], enricher_flags(base_url, cache))
    requests = emulator_stats(base_url, reset=True)["total_requests"]
    return {**run.summary(), "server_requests": requests}


def cold_then_warm(src: Path, base_url: str, cache: Path) -> list[dict[str, Any]]:
    """A run that fills a fresh cache, then the same again."""
    cache.unlink(missing_ok=True)
    return [
        {"run": "cold", **warm(src, base_url, cache)},
        {"run": "warm", **warm(src, base_url, cache)},
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unique", type=int, default=500_000)
    ap.add_argument("--duplicates", type=float, default=0.5, help="share of lines repeated")
    args = ap.parse_args()
    bytecode = compile_sources()  # the engine as installed: see bytecode.py
    tmp = Path(tempfile.mkdtemp(prefix="enricher-cache-"))
    src = tmp / "in.txt"
    lines = round(args.unique / (1 - args.duplicates))
    write_input(src, lines, args.duplicates)
    with emulator_process() as base:
        runs = cold_then_warm(src, base, tmp / "cache.sqlite3")
    shutil.rmtree(tmp, ignore_errors=True)
    keep = ("run", "exit_code", "iocs_per_s", "server_requests", "peak_rss_bytes")
    runs = [{k: r[k] for k in keep} for r in runs]
    print(orjson.dumps({"unique": args.unique, "lines": lines, "bytecode": bytecode, "runs": runs},
                       option=orjson.OPT_INDENT_2).decode())  # fmt: skip
    return 0 if runs[1]["server_requests"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
