"""The text extractor's optional C functions (`_scan.c`, compiled at install by
hatch_build.py when a compiler and Python's headers are there).

Each is None when the module was not built (or was built from an older `_scan.c`, without
all of them: `pip install -e .` builds it again), or when `ENRICHER_NO_C` is set (for tests
and comparisons): the caller then uses its own Python, which gives the same results, slower.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["dotted_names", "hex_runs", "plain_name", "triggers"]

dotted_names: Callable[[str], tuple[list[str], list[int]]] | None = None
hex_runs: Callable[[str], list[int]] | None = None
triggers: Callable[[str], list[int]] | None = None
plain_name: Callable[[str, str], bool] | None = None

if not os.environ.get("ENRICHER_NO_C"):
    try:
        from . import _scan

        found = (_scan.dotted_names, _scan.hex_runs, _scan.triggers, _scan.plain_name)
    except (ImportError, AttributeError):  # not built, or built from an older _scan.c
        pass
    else:
        dotted_names, hex_runs, triggers, plain_name = found
