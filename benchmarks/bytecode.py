"""The engine measured as a user runs it: with its modules' bytecode on disk.

An installed wheel has its `.pyc` files (pip compiles them as it installs), and so has an
editable install run without PYTHONDONTWRITEBYTECODE (the first process writes them). With that
variable set, as on the machine this suite was written on, every `enricher` process compiled
its ~75 modules from source again: 698 M of the 2,314 M instructions of `enricher run` over 4
lines (cachegrind), ~0.15 s of CPU a process. The suite compiles them once, before it measures
(`compileall`, which writes them whatever the variable says, and rewrites only those older than
their source), for the engine and for the floor alike (the floor's `--normalize enricher` imports
enricher's modules; the floor itself is a script, compiled in every process as any script is:
8 M instructions, against 1,114 M for the whole of `floor.py --help`).
"""

from __future__ import annotations

import compileall
import sys
from pathlib import Path

__all__ = ["compile_sources"]

ROOT = Path(__file__).resolve().parent.parent


def compile_sources() -> str:
    """Write the bytecode of `enricher/` and `benchmarks/` where it is missing or stale; what
    was done, for the results' header."""
    dirs = [ROOT / "enricher", ROOT / "benchmarks"]
    ok = all(compileall.compile_dir(d, quiet=1) for d in dirs)
    if not ok:
        return "bytecode: compileall failed on some module of enricher/ or benchmarks/"
    how = "PYTHONDONTWRITEBYTECODE set" if sys.flags.dont_write_bytecode else "Python writes it too"
    return f"bytecode: enricher/ and benchmarks/ compiled before measuring (compileall; {how})"
