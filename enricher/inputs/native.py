"""The text extractor's optional C functions (`_scan.c`, compiled at install by
hatch_build.py when a compiler and Python's headers are there).

Each is None when the module was not built (or was built from another `_scan.c` than the one
beside it: `pip install -e .` builds it again), or when `ENRICHER_NO_C` is true (for tests
and comparisons): the caller then uses its own Python, which gives the same results, slower.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

__all__ = [
    "TURNED_OFF",
    "built_from",
    "dotted_names",
    "hashes_walk",
    "hex_runs",
    "ipv6_runs",
    "judge_name",
    "judge_tables",
    "load",
    "names_walk",
    "not_ascii",
    "plain_name",
    "refang_windows",
    "skip_lines",
    "split_lines",
    "triggers",
]

dotted_names: Callable[[str], tuple[list[str], list[int]]] | None = None
hex_runs: Callable[[str], list[int]] | None = None
triggers: Callable[[str], list[int]] | None = None
refang_windows: Callable[[str], str] | None = None
ipv6_runs: Callable[[str], list[int]] | None = None
skip_lines: Callable[[str, int, int], int] | None = None
split_lines: Callable[[str], list[str]] | None = None
plain_name: Callable[[str, str], bool] | None = None
names_walk: Callable[..., tuple[int, int, int]] | None = None
hashes_walk: Callable[..., tuple[int, int, int]] | None = None
judge_name: Callable[[str], object] | None = None
judge_tables: Callable[..., None] | None = None
not_ascii: Callable[[str], str] | None = None


def built_from(source: Path, built: str) -> bool:
    """Whether a module that says it was built from the digest `built` was built from
    `source`, when that is there (a checkout, an editable install: a `git pull` that brought
    a newer _scan.c does not build it again); a wheel ships no _scan.c and its module is
    its own."""
    try:
        text = source.read_bytes()
    except OSError:
        return True
    return hashlib.sha256(text).hexdigest()[:16] == built  # as hatch_build.source_digest


def load(name: str, beside: str) -> ModuleType | None:
    """The C module `name` (a dotted module name such as "enricher.pipeline._dedupe"), when
    it was built and built from the .c of its name in the folder of the file `beside`, and
    ENRICHER_NO_C does not turn the C off; else None (the caller runs its Python)."""
    if TURNED_OFF:
        return None
    try:
        module = importlib.import_module(name)
    except ImportError:  # not built
        return None
    source = Path(beside).with_name(name.rpartition(".")[2] + ".c")
    return module if built_from(source, module.SOURCE) else None


# ENRICHER_NO_C is read as the settings read a bool: `ENRICHER_NO_C=0` (false, no, off) leaves it on
_KEEP = ("", "0", "false", "no", "off")
#: whether ENRICHER_NO_C turned the C functions off
TURNED_OFF = os.environ.get("ENRICHER_NO_C", "").strip().lower() not in _KEEP
if not TURNED_OFF:
    try:
        from . import _scan

        found = (
            _scan.dotted_names,
            _scan.hex_runs,
            _scan.triggers,
            _scan.plain_name,
            _scan.names_walk,
            _scan.hashes_walk,
            _scan.judge_name,
            _scan.judge_tables,
            _scan.not_ascii,
            _scan.refang_windows,
            _scan.ipv6_runs,
            _scan.skip_lines,
            _scan.split_lines,
        )
        current = built_from(Path(__file__).with_name("_scan.c"), _scan.SOURCE)
    except (ImportError, AttributeError):  # not built, or built from an older _scan.c
        pass
    else:
        if current:
            (
                dotted_names, hex_runs, triggers, plain_name, names_walk, hashes_walk,
                judge_name, judge_tables, not_ascii, refang_windows, ipv6_runs, skip_lines,
                split_lines,
            ) = found  # fmt: skip
