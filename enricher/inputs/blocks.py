"""Bytes into lines: the splitting every format starts from.

Both splitters read a block at a time (`read1`: what one read of the file or pipe gives, up to
256 KiB) and hand on only whole lines, keeping the unfinished tail for the next block, so
memory stays within a block and one line whatever the file's size. A UTF-8 BOM at the start
is dropped.

- `line_chunks` (the `lines` format, and the lines that CSV and NDJSON parse): a line that is
  not UTF-8, or longer than the cap, arrives as None with its reason (a reject, not a crash).
- `text_blocks` (free text): decoding replaces bad bytes, and a line longer than the cap (a
  minified HTML page) is cut after a space or a delimiter instead, since IOCs hold neither.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import native
from .chunk import Chunk
from .decompress import Readable

__all__ = ["BLOCK", "line_chunks", "text_blocks"]

BLOCK = 256 * 1024
_BOM = b"\xef\xbb\xbf"
# bytes after which a long line may be cut without cutting an IOC
_CUT_AFTER = [bytes([c]) for c in b" \t\r\"'<>,;|"]
#: the bytes of a name, hash or address, defanged too (`[.]`, `(dot)`, `{.}`, `\.`, `[@]`,
#: IPv6's `:`; UTF-8's): a long line with no byte of _CUT_AFTER is cut after another byte
#: (`/`, `?`, `=`), where a URL's path may end but no host does
_HOST_BYTES = (
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_:[](){}@%\\"
    + bytes(range(0x80, 0x100))
)
#: the bytes of an IOC's words (a name's, a hash's, an IPv4 address's, UTF-8's): a run of host
#: bytes longer than the cap (`1.2.3.4:5.6.7.8:...`, `a.com%20b.com`, `(x.com)(y.com)`) is
#: cut after another (`:`, a bracket; before a `%`), which at worst splits one defanged or
#: IPv6 IOC a cut; only a run of these longer than the cap, which holds no IOC, is dropped
_WORD_BYTES = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_" + bytes(
    range(0x80, 0x100)
)


def _decode(block: bytes, first_line: int, source: str, max_line: int) -> Chunk:
    # A block no longer than the cap holds no line longer than it. A longer one (the rest of
    # a line begun in the block before, or a cap below the block size) is split line by line.
    if len(block) <= max_line:
        try:
            lines: list[str | None] = list(_split_lines(block.decode("utf-8")))
            return Chunk(source, first_line, lines)
        except UnicodeDecodeError:
            pass
    lines = []
    errors: dict[int, str] = {}
    for i, raw in enumerate(block.split(b"\n")):
        if len(raw) > max_line:
            lines.append(None)
            errors[i] = _too_long(max_line)
            continue
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append(None)
            errors[i] = f"not valid UTF-8 (byte {exc.start})"
    return Chunk(source, first_line, lines, errors)


def _py_split_lines(text: str) -> list[str]:
    """The lines of `text`: `_scan.split_lines` gives the same, in C."""
    return text.split("\n")


_split_lines = native.split_lines or _py_split_lines


def _too_long(max_line: int) -> str:
    return f"line longer than {max_line} bytes"


def _raw_blocks(f: Readable) -> Iterator[bytes]:
    """The bytes of `f` as they arrive, a block at most at a time, a leading BOM dropped."""
    head = b""
    # a pipe may give the BOM a byte at a time: read on until it is whole or ruled out
    while len(head) < len(_BOM) and _BOM.startswith(head):
        more = f.read1(BLOCK)
        if not more:
            break
        head += more
    head = head.removeprefix(_BOM)
    if head:
        yield head
    while data := f.read1(BLOCK):
        yield data


def line_chunks(f: Readable, source: str, max_line: int) -> Iterator[Chunk]:
    """Chunks of consecutive lines of `f`, numbered from 1, as blocks arrive."""
    tail = b""
    line_no = 1  # number of the first line in `tail`
    skipping = False  # inside a line longer than max_line, dropping its bytes
    too_long = _too_long(max_line)
    for data in _raw_blocks(f):
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            skipping = False
            yield Chunk(source, line_no, [None], {0: too_long})
            line_no += 1
            data = data[nl + 1 :]
        data = tail + data if tail else data
        nl = data.rfind(b"\n")
        if nl < 0:
            tail = data
        else:
            chunk = _decode(data[:nl], line_no, source, max_line)
            line_no += len(chunk.lines)
            tail = data[nl + 1 :]
            yield chunk
        if len(tail) > max_line:
            tail = b""
            skipping = True
    if skipping:
        yield Chunk(source, line_no, [None], {0: too_long})
    elif tail:
        yield _decode(tail, line_no, source, max_line)


def text_blocks(f: Readable, max_line: int) -> Iterator[tuple[int, str, int]]:
    """`(first line, text, lines ended in it)` for consecutive pieces of `f`, each ending at a
    line end (or, inside a line longer than `max_line`, after a space or delimiter, else after
    a byte no name holds, else after one no word of an IOC holds: a run of word bytes longer
    than `max_line` is no IOC, and dropped)."""
    tail = b""
    line_no = 1
    dropping = False  # inside a run of word bytes longer than max_line: no IOC, dropped
    for data in _raw_blocks(f):
        if dropping:
            data = data.lstrip(_WORD_BYTES)
            dropping = not data
        data = tail + data if tail else data
        cut = data.rfind(b"\n") + 1
        if not cut and len(data) > max_line:
            cut = max(data.rfind(c) for c in _CUT_AFTER) + 1 or len(data.rstrip(_HOST_BYTES))
            if not cut:
                cut = len(data.rstrip(_WORD_BYTES))
                if cut > 1 and data[cut - 1] == 0x25:  # `%`: before its escape, not inside
                    cut -= 1
            if not cut:  # one run of word bytes, longer than any name: not an IOC
                tail, dropping = b"", True
                continue
        if not cut:
            tail = data
            continue
        piece, tail = data[:cut], data[cut:]
        ended = piece.count(b"\n")
        yield line_no, piece.decode("utf-8", "replace"), ended
        line_no += ended
    if tail or dropping:
        yield line_no, tail.decode("utf-8", "replace"), 1
