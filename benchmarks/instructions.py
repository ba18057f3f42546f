"""The engine's CPU work per unique IOC as instructions, which the machine's load does not change.

On a shared machine the CPU time of a run moves with what else runs (the same command
measured 14.8 µs and 38 µs per unique IOC an hour apart); the instructions it executes do
not. This runs `enricher run FILE -o - --rate 0 --no-cache` under valgrind's cachegrind
(`--cache-sim=no`: instructions only, about 50 times slower) over N lines of the tidy input
(`workload.py`) and of the messy one (`messy.py`), and over a 4-line file for the start-up,
against the emulator in its own process (not counted), and prints the instructions per unique
IOC above the start-up, and the start-up's by command (`--help`, the 4-line run, a lookup).
With `--cache`, only the tidy input, with the default cache on and fresh (the run that
fills it), then warm (every key a hit, no request), beside `--no-cache`: each per unique IOC
above the start-up of the same command over 4 lines (with a cache of its own).
The floor (`floor.py`, the least a Python pipeline must do) is counted the same way on the
same inputs, beside the engine: the engine's figure less the floor's is what the engine adds.
With `--intake`, only the intake (`intake.py`: reading, `Ingest.take`, the batcher) in one
process, with PYTHONHASHSEED=0, per unique IOC above the same over the first 8 lines: the
stage issue 16's intake work changes, without the threads' and the answers' share.
Compare two commits by running it in each checkout.

    python benchmarks/instructions.py [--lines 100000] [--cache | --intake]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

if __package__ in (None, ""):  # run as a script: python benchmarks/instructions.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import messy
from benchmarks.bytecode import compile_sources
from benchmarks.workload import write_input
from enricher.emulator.process import emulator_process

_REFS = re.compile(rb"I\s+refs:\s+([0-9,]+)")


def instructions(base_url: str, path: Path, *flags: str, cache: Path | None = None) -> int:
    """Instructions executed by `enricher run path` (the process, its threads included),
    with the cache at `cache` (None: `--no-cache`)."""
    store = ["--no-cache"] if cache is None else ["--cache", str(cache)]
    return command_instructions("run", str(path), "-o", "-", "--base-url", base_url, "--rate", "0",
                                *store, "--no-progress", *flags)  # fmt: skip


def cache_instructions(base_url: str, tiny: Path, path: Path, unique: int) -> dict[str, int]:
    """Instructions per unique IOC of `path` above the start-up (a run over `tiny`): without
    the cache, with a fresh one (the run that fills it), then warm (the same again: every
    key a hit)."""
    cache = path.with_name("cache.sqlite3")
    start = instructions(base_url, tiny)
    start_cached = instructions(base_url, tiny, cache=tiny.with_name("tiny.sqlite3"))
    none = instructions(base_url, path)
    fresh = instructions(base_url, path, cache=cache)
    warm = instructions(base_url, path, cache=cache)
    return {"unique": unique, "startup": start, "startup_with_cache": start_cached,
            "no_cache_per_unique_ioc": round((none - start) / unique),
            "fresh_per_unique_ioc": round((fresh - start_cached) / unique),
            "warm_per_unique_ioc": round((warm - start_cached) / unique)}  # fmt: skip


def command_instructions(*args: str) -> int:
    """Instructions executed by `enricher ARGS` (the process, its threads included)."""
    return python_instructions("-m", "enricher", *args)


def floor_instructions(base_url: str, path: Path) -> int:
    """Instructions executed by the floor (`floor.py`) over `path`."""
    return python_instructions(str(Path(__file__).with_name("floor.py")), base_url, str(path))


def intake_instructions(path: Path, unique: int) -> int:
    """Instructions per unique IOC of the intake alone over `path` (`intake.py`), above the
    same over its first 8 lines."""
    script = str(Path(__file__).with_name("intake.py"))
    seeded = {**os.environ, "PYTHONHASHSEED": "0"}
    whole = python_instructions(script, str(path), env=seeded)
    start = python_instructions(script, str(path), "--first", "8", env=seeded)
    return round((whole - start) / unique)


def python_instructions(*args: str, env: dict[str, str] | None = None) -> int:
    """Instructions executed by `python ARGS` (the process, its threads included)."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, *args]  # fmt: skip
    done = subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, env=env
    )
    found = _REFS.search(done.stderr)
    if found is None:
        raise RuntimeError("valgrind printed no instruction count")
    return int(found.group(1).replace(b",", b""))


def startup(base_url: str, tiny: Path) -> dict[str, int]:
    """The start-up's instructions, by command: `enricher --help`; a run of the 4 lines of
    `tiny` (the interpreter, the imports, the session, the suffix tables: what every test
    that launches `enricher` and every cron job pays); a lookup of one IOC."""
    return {
        "help": command_instructions("--help"),
        "run": instructions(base_url, tiny, "--send-sha256"),
        "lookup": command_instructions(
            "lookup", "8.8.8.8", "--base-url", base_url, "--no-cache", "--rate", "0"
        ),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--cache", action="store_true", help="only the runs with and without a cache")
    ap.add_argument("--intake", action="store_true", help="only the intake, in one process")
    args = ap.parse_args()
    bytecode = compile_sources()  # the engine as installed: see bytecode.py
    lines = args.lines
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="enricher-instructions-"))
    try:
        tiny, tidy, untidy = tmp / "tiny.txt", tmp / "tidy.txt", tmp / "messy.txt"
        write_input(tiny, 4, duplicates=0.0)
        report: dict[str, object] = {"lines": lines, "bytecode": bytecode}
        if args.intake:
            for name, write in (("tidy", write_input), ("messy", messy.write_messy)):
                path = tmp / f"{name}.txt"
                report[name] = {
                    "intake_per_unique_ioc": intake_instructions(path, write(path, lines))
                }
            print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
            return 0
        if args.cache:
            unique = write_input(tidy, lines)
            with emulator_process() as base_url:
                report["tidy"] = cache_instructions(base_url, tiny, tidy, unique)
            print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
            return 0
        inputs = {"tidy": (tidy, write_input(tidy, lines)),
                  "messy": (untidy, messy.write_messy(untidy, lines))}  # fmt: skip
        with emulator_process() as base_url:
            report["startup_by_command"] = by_command = startup(base_url, tiny)
            report["startup"] = start = by_command["run"]
            report["floor_startup"] = floor_start = floor_instructions(base_url, tiny)
            for name, (path, unique) in inputs.items():
                total = instructions(base_url, path, "--send-sha256")
                engine = round((total - start) / unique)
                floor = round((floor_instructions(base_url, path) - floor_start) / unique)
                report[name] = {
                    "unique": unique,
                    "per_unique_ioc": engine,
                    "floor_per_unique_ioc": floor,
                    "engine_less_floor": engine - floor,
                }
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
