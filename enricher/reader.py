"""Read stage: input files (or stdin) as chunks of text lines, without blocking the loop.

A reader is any async iterator of `Chunk`s; this one reads plain text, one IOC per line.
Blocking reads run in a worker thread, a block at a time (`read1`, so a slow pipe flows line
by line and a file in large blocks). UTF-8 with or without BOM, LF or CRLF. A line that is not
UTF-8, or longer than the cap, arrives as None with its reason: a reject, not a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from .errors import InputError

__all__ = [
    "STDIN",
    "Chunk",
    "InputOptions",
    "add_arguments",
    "check_inputs",
    "input_options",
    "read_inputs",
    "read_lines",
]

STDIN = "-"
_BOM = b"\xef\xbb\xbf"
_BLOCK = 256 * 1024


@dataclass(slots=True)
class Chunk:
    """Candidate IOC strings from one source, with where each came from.

    `lines[i]` is line `first_line + i` (1-based), unless `line_numbers` is given: then it is
    line `line_numbers[i]` (formats that yield several candidates a line, or skip lines).
    """

    source: str
    first_line: int
    lines: list[str | None]
    #: index in `lines` -> why that line is None
    errors: dict[int, str] = field(default_factory=dict)
    line_numbers: list[int] | None = None
    #: input lines this chunk stands for, when not len(lines) (extracting formats)
    lines_read: int | None = None
    #: input bytes this chunk stands for (compressed bytes for compressed input), if known
    nbytes: int | None = None

    def line_of(self, i: int) -> int:
        return self.line_numbers[i] if self.line_numbers is not None else self.first_line + i


@dataclass(kw_only=True)
class InputOptions:
    """How to read the inputs (`enricher run` flags); `formats` is filled in as they are read."""

    format: str = "lines"
    #: source -> how it was read (e.g. "lines", "csv, gzip"), for the summary
    formats: dict[str, str] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `enricher run` flags that choose how inputs are read."""
    parser.add_argument(
        "--format",
        choices=["lines"],
        default="lines",
        help="input format (default: lines, one IOC a line)",
    )


def input_options(args: argparse.Namespace) -> InputOptions:
    return InputOptions(format=args.format)


async def read_inputs(
    paths: Sequence[str], options: InputOptions, *, max_line: int = 1 << 20
) -> AsyncIterator[Chunk]:
    """Every input as chunks of candidate IOCs, read the way `options` says."""
    for path in paths:
        options.formats[path] = options.format
    async for chunk in read_lines(paths, max_line=max_line):
        yield chunk


def check_inputs(paths: Sequence[str]) -> list[str]:
    """The inputs to read (stdin when none), each checked to be a readable file up front."""
    if not paths:
        return [STDIN]
    for path in paths:
        if path == STDIN:
            continue
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InputError(f"input not found: {path}") from None
        except OSError as exc:
            raise InputError(f"cannot read input {path}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"input is a directory, not a file: {path}")
        if not os.access(path, os.R_OK):
            raise InputError(f"input is not readable (permissions): {path}")
    return list(paths)


def _decode(block: bytes, first_line: int, source: str) -> Chunk:
    try:
        return Chunk(source, first_line, list(block.decode("utf-8").split("\n")))
    except UnicodeDecodeError:
        pass
    lines: list[str | None] = []
    errors: dict[int, str] = {}
    for i, raw in enumerate(block.split(b"\n")):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append(None)
            errors[i] = f"not valid UTF-8 (byte {exc.start})"
    return Chunk(source, first_line, lines, errors)


async def _read_one(f: BinaryIO, source: str, max_line: int) -> AsyncIterator[Chunk]:
    tail = b""
    line_no = 1  # number of the first line in `tail`
    skipping = False  # inside a line longer than max_line, dropping its bytes
    first = True
    while True:
        data: bytes = await asyncio.to_thread(f.read1, _BLOCK)  # type: ignore[attr-defined]
        if not data:
            break
        if first:
            first = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            skipping = False
            yield Chunk(source, line_no, [None], {0: f"line longer than {max_line} bytes"})
            line_no += 1
            data = data[nl + 1 :]
        data = tail + data if tail else data
        nl = data.rfind(b"\n")
        if nl < 0:
            tail = data
        else:
            chunk = _decode(data[:nl], line_no, source)
            line_no += len(chunk.lines)
            tail = data[nl + 1 :]
            yield chunk
        if len(tail) > max_line:
            tail = b""
            skipping = True
    if skipping:
        yield Chunk(source, line_no, [None], {0: f"line longer than {max_line} bytes"})
    elif tail:
        yield _decode(tail, line_no, source)


async def read_lines(paths: Sequence[str], *, max_line: int = 1 << 20) -> AsyncIterator[Chunk]:
    """Chunks of lines from each path in turn; `-` is standard input."""
    for path in paths:
        if path == STDIN:
            async for chunk in _read_one(sys.stdin.buffer, "<stdin>", max_line):
                yield chunk
            continue
        try:
            f = open(path, "rb")  # noqa: SIM115, ASYNC230 - a local open; closed below
        except OSError as exc:
            raise InputError(f"cannot open input {path}: {exc.strerror}") from None
        try:
            async for chunk in _read_one(f, path, max_line):
                yield chunk
        except OSError as exc:
            raise InputError(f"error reading {path}: {exc.strerror}") from None
        finally:
            f.close()
