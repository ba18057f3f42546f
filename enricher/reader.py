"""Read stage: inputs (files, directories, globs, stdin) as chunks of candidate IOCs.

The work is done by the `enricher.inputs` package (formats, decompression, text extraction,
path expansion); this module is its face to the engine and the job. `read_lines` is the
plain one-IOC-a-line reading, as before the formats came.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from .inputs import (
    FORMATS,
    STDIN,
    Chunk,
    InputOptions,
    add_arguments,
    check_columns,
    check_inputs,
    find_inputs,
    input_options,
    read_inputs,
)
from .inputs.blocks import line_chunks
from .inputs.decompress import Readable
from .inputs.extract import extract
from .inputs.read import in_thread
from .inputs.suffixes import name_problem

__all__ = [
    "FORMATS",
    "STDIN",
    "Chunk",
    "InputOptions",
    "add_arguments",
    "check_columns",
    "check_inputs",
    "extract",
    "find_inputs",
    "input_options",
    "name_problem",
    "read_inputs",
    "read_lines",
]


async def read_lines(paths: Sequence[str], *, max_line: int = 1 << 20) -> AsyncIterator[Chunk]:
    """Chunks of lines from each path in turn (`-`: stdin), decompressed if need be."""
    async for chunk in read_inputs(paths, InputOptions(format="lines"), max_line=max_line):
        yield chunk


def _read_one(f: Readable, source: str, max_line: int) -> AsyncIterator[Chunk]:
    """The line chunks of one open stream, read in a worker thread."""
    return in_thread(line_chunks(f, source, max_line))
