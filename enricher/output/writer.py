"""Write stage: items as NDJSON lines, encoded with orjson (the files: `enricher.output.files`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

__all__ = ["encode_lines"]

_NL = orjson.OPT_APPEND_NEWLINE


def encode_lines(items: Sequence[Any]) -> bytes:
    """One NDJSON line per item."""
    dumps = orjson.dumps
    return b"".join([dumps(item, option=_NL) for item in items])
