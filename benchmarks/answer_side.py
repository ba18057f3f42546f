"""The answer side's instructions per unique IOC, by step, against the floor's (cachegrind).

`instructions.py` counts whole runs; this counts the steps after an answer arrives, in one
process, over the emulator's own answers to the unique IOCs of N tidy (or messy) lines,
fetched once before counting: reading the answers (`parse_response`, with the keys asked)
and settling them (`resolve.settle`: the record lines, the tries, what goes to the ledger),
against the floor's `orjson.loads` of the same bodies and its record (`floor.record`, an
`orjson.dumps` per entry). Each figure is a cachegrind run of this script (`PYTHONHASHSEED=0`,
so the hash seed does not move it) less the same run stopping before that step, per unique
IOC. The first records of a run meet each first-seen day for the first time (a date made and
remembered), so smaller inputs count more per IOC.

    python -m benchmarks.answer_side [--lines 100000] [--messy]
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

import orjson

if __package__ in (None, ""):  # run as a script: python benchmarks/answer_side.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import floor, messy
from benchmarks.instructions import python_instructions
from benchmarks.workload import write_input
from enricher.api.protocol import build_request, parse_response
from enricher.config.settings import Settings
from enricher.emulator.process import emulator_process
from enricher.ioc import ENDPOINT_OF
from enricher.pipeline.normalize import normalize
from enricher.pipeline.resolve import Tries, settle

#: each step counted, and the step its count is taken above
STEPS = {"parse": "load", "settle": "parse", "floor_loads": "load", "floor_record": "floor_loads"}


def answers(base_url: str, path: Path) -> list[tuple[object, list[object], bytes]]:
    """The emulator's answer to each batch of 500 of the unique IOCs of `path`:
    (endpoint, keys, body)."""
    keys: dict[object, None] = {}
    with path.open(encoding="utf-8-sig") as f:
        for line in f:
            found = normalize(line)
            if found[0] is not None:
                keys.setdefault(found, None)
    grouped: dict[object, list[object]] = {}
    for key in keys:
        grouped.setdefault(ENDPOINT_OF[key[0]], []).append(key)  # type: ignore[index]
    out = []
    for endpoint, batch_keys in grouped.items():
        for i in range(0, len(batch_keys), 500):
            batch = batch_keys[i : i + 500]
            body = build_request(batch, allow_sha256=True)  # type: ignore[arg-type]
            ask = urllib.request.Request(
                f"{base_url}/{endpoint}", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(ask) as r:
                out.append((endpoint, batch, r.read()))
    return out


def run_step(saved: Path, step: str) -> None:
    """Load the answers and do the steps up to `step` (the child cachegrind counts)."""
    with saved.open("rb") as f:
        data = pickle.load(f)
    if step in ("parse", "settle"):
        verdicts = Settings().verdicts
        tries = Tries()
        for endpoint, batch, body in data:
            parsed = parse_response(endpoint, body, {value for _, value in batch})
            if step == "settle":
                settle(batch, parsed, tries, missing_attempts=3, conflict_attempts=3,
                       verdicts=verdicts, origins={})  # fmt: skip
    elif step in ("floor_loads", "floor_record"):
        for _, _, body in data:
            doc = orjson.loads(body)
            if step == "floor_record":
                b"".join(map(floor.record, doc["classificationResponses"]))


def count(saved: Path, step: str) -> int:
    """Instructions of this script doing the steps up to `step` (PYTHONHASHSEED is 0)."""
    return python_instructions(__file__, "--step", step, "--saved", str(saved))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--messy", action="store_true", help="the messy input (messy.py)")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--saved", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        run_step(args.saved, args.step)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 1
    os.environ["PYTHONHASHSEED"] = "0"  # the counts' children: one seed, one hash layout
    tmp = Path(tempfile.mkdtemp(prefix="enricher-answer-side-"))
    try:
        path, saved = tmp / "input.txt", tmp / "answers.pickle"
        write = messy.write_messy if args.messy else write_input
        unique = write(path, args.lines)
        with emulator_process() as base_url:
            data = answers(base_url, path)
        with saved.open("wb") as f:
            pickle.dump(data, f)
        counts = {step: count(saved, step) for step in ("load", *STEPS)}
        report: dict[str, object] = {"lines": args.lines, "unique": unique,
                                     "input": "messy" if args.messy else "tidy"}  # fmt: skip
        for step, above in STEPS.items():
            report[step] = round((counts[step] - counts[above]) / unique)
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
