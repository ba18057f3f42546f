"""The `text` format: every IOC in free text (log lines, threat reports), via `extract`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from .blocks import text_blocks
from .chunk import Chunk
from .decompress import Readable
from .extract import extract_lines

__all__ = ["read_text"]


def read_text(f: Readable, source: str, *, max_line: int) -> Iterator[Chunk]:
    """Chunks of the IOCs found in `f`, each with its line; one chunk per block read."""
    for first, text, ended in text_blocks(f, max_line):
        values, lines = extract_lines(text, first)
        # a list of str is a list of str | None that no one will put a None in
        yield Chunk(
            source, first, cast("list[str | None]", values), line_numbers=lines, lines_read=ended
        )
