"""Command-line value types shared by `enricher run` and `enricher emulator`."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

__all__ = ["number"]

N = TypeVar("N", int, float)


def number(
    kind: type[N], *, low: N | None = None, high: N | None = None, must: str
) -> Callable[[str], N]:
    """An argparse type: `kind` parsed from the text and kept within [low, high]; `must` says
    what a value must be, for the error message ("must be >= 1")."""
    what = "an integer" if kind is int else "a number"

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        out_of_range = (low is not None and value < low) or (high is not None and value > high)
        if out_of_range or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {must} (got {text})")
        return value

    return parse
