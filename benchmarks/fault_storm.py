"""The engine issue's acceptance run: a faulty, rate-limited emulator and a messy input.

Starts `enricher emulator` in its own process with 10% 5xx, 5% dropped connections, 5%
truncated bodies, 2% of keys left out, every answer shuffled and upper-cased, and a rate limit;
runs `enricher run` over N lines (half of them duplicates) at that rate; then checks that each
unique IOC is in the output or the failures file exactly once, that every verdict equals the
emulator's own answer, and that the server refused nothing for rate. Prints a JSON report.

    python benchmarks/fault_storm.py [--lines 200000] [--rate 100]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from enricher.config.settings import Settings
from enricher.emulator import classification_of
from enricher.emulator.process import emulator_process, emulator_stats
from enricher.ioc import ENDPOINT_OF, IocType
from enricher.pipeline.normalize import normalize


def make_input(path: Path, lines: int, seed: int = 1) -> set[tuple[str, str]]:
    rng = random.Random(seed)
    unique: list[str] = []
    for i in range(lines // 2):
        h = f"{rng.getrandbits(256):064x}"
        forms = [
            h[:32],
            h[:40].upper(),
            f"host{i}.example{i % 89}.com",
            f"hxxp://e{i}[.]test[.]net/",
            f"11.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            f"2a0b:4140::{i >> 16:x}:{i & 0xFFFF:x}",
        ]
        unique.append(forms[i % 6])
    all_lines = unique + [rng.choice(unique) for _ in range(lines - len(unique))]
    rng.shuffle(all_lines)
    path.write_text("\n".join(all_lines) + "\n")
    expected = set()
    for s in unique:
        t, v = normalize(s)
        assert t is not None
        expected.add((t.value, v))
    return expected


#: The acceptance run's fault mix (the rate limit is added to it).
FAULTS = ("--server-error-rate", "0.10", "--drop-rate", "0.05", "--malformed-json-rate", "0.05",
          "--missing-key-rate", "0.02", "--shuffle-rate", "1", "--upper-echo-rate", "1",
          "--seed", "7")  # fmt: skip


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def check(
    records: list[dict[str, Any]], failures: list[dict[str, Any]], expected: set[tuple[str, str]]
) -> dict[str, Any]:
    """Does the output account for each expected `(type, ioc)` exactly once, with the
    emulator's own verdict? `lost`: expected IOCs without a correct record."""
    seen = Counter((r["type"], r["ioc"]) for r in records + failures)
    verdicts = Settings().verdicts
    wrong = 0
    correct: set[tuple[str, str]] = set()
    for r in records:
        cls = classification_of(ENDPOINT_OF[IocType(r["type"])], r["ioc"])
        if r["classification"] != cls or r["verdict"] != verdicts.get(cls, "unknown"):
            wrong += 1
        else:
            correct.add((r["type"], r["ioc"]))
    report = {
        "unique_expected": len(expected),
        "records": len(records),
        "failures": len(failures),
        "failure_kinds": dict(Counter(f["error"].split(":")[0] for f in failures)),
        "duplicates_out": sum(1 for n in seen.values() if n > 1),
        "missing_out": len(expected - set(seen)),
        "unexpected_out": len(set(seen) - expected),
        "wrong_verdicts": wrong,
        "lost": len(expected - correct),
    }
    report["ok"] = (
        report["duplicates_out"] == 0
        and report["missing_out"] == 0
        and report["unexpected_out"] == 0
        and wrong == 0
        and len(records) + len(failures) == len(expected)
    )
    return report


def enrich_and_check(
    src: Path, base_url: str, expected: set[tuple[str, str]], flags: list[str]
) -> dict[str, Any]:
    """`enricher run SRC --base-url BASE --no-cache FLAGS` into a scratch directory, checked."""
    tmp = Path(tempfile.mkdtemp(prefix="enricher-check-"))
    out = tmp / "out.ndjson"
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "enricher", "run", str(src), "-o", str(out), "--base-url",
         base_url, "--no-cache", *flags],
        capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    report = check(read_ndjson(out), read_ndjson(tmp / "out.ndjson.failed.ndjson"), expected)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        **report,
        "exit_code": run.returncode,
        "elapsed_s": round(elapsed, 1),
        "summary": run.stderr.strip().splitlines(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--rate", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="enricher-storm-"))
    src = tmp / "in.txt"
    expected = make_input(src, args.lines)
    with emulator_process(*FAULTS, "--rate-limit", str(args.rate)) as base:
        flags = ["--rate", str(args.rate), "--send-sha256", "--concurrency", "16"]
        report = {"lines": args.lines, **enrich_and_check(src, base, expected, flags)}
        server = emulator_stats(base)
    report.update(
        server_rate_limited=server.get("rate_limited"),
        server_requests=server.get("total_requests"),
        server_faults=server.get("faults"),
    )
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
