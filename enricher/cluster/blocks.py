"""Big inputs cut into blocks of lines, so that a cluster's workers share the reading evenly
(whole files of unequal sizes, or fewer files than workers, leave a worker idle).

    plan_blocks(path, options, size=S) -> [Block, …] | None       on the client, per input
        a plain (uncompressed, UTF-8) file read as `lines` or `text`, bigger than S: cut into
        ceil(size / S) blocks of about equal size, each from a line's start to just after
        a line's end; anything else (compressed, UTF-16, CSV, JSON, small): None, read whole
    block_chunks(block, max_line) -> Chunk, …                     on a worker, per block
        its lines as the input's reader gives them, numbered from 1 within the block (the
        last block on to the file's end); an `InputError` if a cut is no longer at a line's
        end (the file was rewritten or cut short since the plan)

A block's lines are numbered from 1 because a worker cannot know how many lines the blocks
before it hold without reading them: the client, which takes the blocks' reads in order,
adds them (`Read.counts["lines_read"]`) to each block's reject lines. Cutting at a line end
changes nothing a line gives: `lines` and `text` read a line at a time (a line longer than
`pipeline.max_line_bytes` is the exception: `text` cuts it after a space or a delimiter (else
after a byte no name holds, `/`, and drops a run of name bytes longer than the cap),
at places that depend on where the reading began, and a cut never lands in one).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InputError
from ..inputs import Chunk, InputOptions
from ..inputs.blocks import BLOCK, line_chunks
from ..inputs.read import read_source
from ..inputs.text import read_text

__all__ = ["Block", "block_chunks", "plan_blocks"]

#: formats read a line at a time, with nothing carried from one line to the next
_LINE_FORMATS = ("lines", "text")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Block:
    """Bytes `start` to `end` of the input `path`, block `index` of `count`, read as `fmt`
    (how the whole input is read: `read_as`)."""

    path: str
    index: int
    count: int
    start: int
    end: int
    fmt: str
    read_as: str


def plan_blocks(
    path: str, options: InputOptions, *, size: int, max_line: int
) -> list[Block] | None:
    """The blocks of about `size` bytes the input at `path` is read in, or None: read it
    whole (not a plain file of lines or text, not bigger than `size`, or unreadable: its
    read says why)."""
    try:
        total = os.path.getsize(path) if size > 0 and os.path.isfile(path) else 0
    except OSError:
        return None
    count = -(-total // size) if total else 0
    if count < 2:
        return None
    how: dict[str, str] = {}
    chunks = read_source(path, options, max_line=max_line, read_as=how)
    try:  # how the reader takes it (compression, encoding, format) is known by its first chunk
        next(chunks, None)
    except InputError:
        return None
    finally:
        chunks.close()
    read_as = how.get(path, "")
    fmt, *rest = read_as.split(", ")
    if fmt not in _LINE_FORMATS or any(word != "auto" for word in rest):
        return None
    cuts = [0]
    try:
        with open(path, "rb") as f:
            for k in range(1, count):
                at = max(k * total // count, cuts[-1] + 1)
                f.seek(at - 1)
                rest_of_line = f.readline(max_line + 1)
                cut = at - 1 + len(rest_of_line)
                # a line too long to find the end of within the cap, or a byte order mark
                # heading the next line (the reader drops one at a block's start): no cut here
                if not rest_of_line.endswith(b"\n") or cut >= total or f.read(3) == _BOM:
                    continue
                cuts.append(cut)
    except OSError:
        return None
    if len(cuts) < 2:
        return None
    ends = [*cuts[1:], total]
    return [
        Block(path, i, len(cuts), start, end, fmt, read_as)
        for i, (start, end) in enumerate(zip(cuts, ends, strict=True))
    ]


class _Range:
    """Bytes `start` to `end` of an open file (to its end: `left` -1), counted as read."""

    def __init__(self, f: io.BufferedReader, left: int) -> None:
        self._f = f
        self.left = left
        self.n = 0

    def read1(self, size: int = BLOCK, /) -> bytes:
        if not self.left:
            return b""
        data = self._f.read1(size if self.left < 0 else min(size, self.left))
        if self.left > 0:
            self.left -= len(data)
        self.n += len(data)
        return data


def _check_cuts(f: io.BufferedReader, block: Block) -> None:
    """An `InputError` unless the block still starts and ends at a line end: a file rewritten
    or cut short since it was planned (a log rotated) would give pieces of lines as lines,
    IOCs that are in no input (`il.example.com` of `evil.example.com`)."""
    size = os.fstat(f.fileno()).st_size
    edges = [block.start - 1] if block.start else []
    if block.index < block.count - 1:
        edges.append(block.end - 1)
    for at in edges:
        f.seek(at)
        if size < block.end or f.read(1) != b"\n":
            raise InputError(
                f"{block.path} changed while it was read in blocks (byte {at + 1} is no longer"
                " a line's end): read it again once it is no longer written"
            )


def block_chunks(block: Block, *, max_line: int) -> Iterator[Chunk]:
    """The chunks of one block, as the input's reader gives them for those lines (numbered
    from 1 within the block); an unreadable file is an `InputError`, as for a whole input."""
    try:
        with open(block.path, "rb") as f:
            _check_cuts(f, block)
            f.seek(block.start)
            # the last block reads on to the end: lines added since the plan, as a whole read
            last = block.index == block.count - 1
            stream = _Range(f, -1 if last else block.end - block.start)
            if block.fmt == "lines":
                chunks = line_chunks(stream, block.path, max_line)
            else:
                chunks = read_text(stream, block.path, max_line=max_line)
            reported = 0
            for chunk in chunks:
                chunk.nbytes, reported = stream.n - reported, stream.n
                yield chunk
    except OSError as exc:
        raise InputError(f"error reading {block.path}: {exc.strerror or exc}") from None
