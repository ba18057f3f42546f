"""The `csv` and `tsv` formats: delimited rows, every cell scanned or the chosen columns read.

Rows are parsed by the `csv` module (quoting, delimiters inside quotes, quoted line breaks)
or, for TSV without quotes, split at tabs. Zeek logs are TSV whose column names are on a
`#fields` line and whose other `#` lines are comments; they are told by `#separator`.

- Default: every cell of every row is scanned for IOCs (columns named for fingerprints such
  as `ja3`, or for versions, are skipped), so a header or a comment column gives nothing.
- `--column NAME_OR_INDEX` (repeatable): only those cells, each passed as it is (a cell that is
  no IOC is a reject; an empty cell, `-` or Zeek's `(empty)` is skipped; a row too short to
  have the column is a reject too). A name needs the first row to be the header; an index
  counts from 1 and skips a first row that looks like a header (no cell of it is an IOC).
  A column that is not in the header stops the run with an InputError.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..errors import InputError
from ..pipeline.normalize import normalize
from .blocks import line_chunks
from .candidates import ScanBatch, add_value, is_skipped_key
from .chunk import Chunk, ChunkBuilder
from .decompress import Readable

__all__ = ["Dialect", "read_delimited"]


@dataclass(frozen=True, slots=True)
class Dialect:
    """How the rows of one file are written."""

    delimiter: str = ","
    #: whether fields may be quoted (CSV; TSV only when its sample shows quotes)
    quoted: bool = True
    #: a Zeek log: `#fields` names the columns, other `#` lines are comments
    zeek: bool = False


class _Feed:
    """The good lines of the line chunks, one at a time, for the row parser.

    Records where each row starts, rejects the lines that are not text, and says when the
    chunk just read is used up (the moment to hand on a chunk of candidates). Keeps the lines
    of the row being parsed, so that a row the parser gives up on can be read again: see
    `replay_row`.
    """

    def __init__(self, chunks: Iterator[Chunk], out: ChunkBuilder, newline: str) -> None:
        self.chunks = chunks
        self.out = out
        self.newline = newline
        self.row_line = 0  # line of the first line of the row being parsed
        self.next_line = 1  # line after the last one handed on
        self.used_up = False
        self.row: list[tuple[int, str]] = []  # the lines of the row being parsed
        self.replay: deque[tuple[int, str]] = deque()

    def start_row(self) -> None:
        self.row_line = 0
        self.row.clear()

    def replay_row(self) -> None:
        """Hand on again the lines of the row the parser gave up on, but its first.

        A quote that is never closed takes the lines after it into its field until the
        parser refuses a field that long: those lines are rows of their own, not lost.
        """
        self.replay.extend(self.row[1:])

    def __iter__(self) -> Iterator[str]:
        newline = self.newline
        row = self.row
        for chunk in self.chunks:
            self.used_up = False
            n = len(chunk.lines)
            for i, text in enumerate(chunk.lines):
                line = chunk.first_line + i
                self.next_line = line + 1
                if i == n - 1:
                    self.used_up = True
                self.out.lines_read += 1
                if text is None:
                    self.out.reject(line, chunk.errors.get(i, "unreadable line"))
                    continue
                if not self.row_line:
                    self.row_line = line
                row.append((line, text))
                yield text + newline
                while self.replay:
                    line, text = self.replay.popleft()
                    if not self.row_line:
                        self.row_line = line
                    row.append((line, text))
                    yield text + newline


def read_delimited(
    f: Readable, source: str, *, dialect: Dialect, columns: Sequence[str], max_line: int
) -> Iterator[Chunk]:
    """Chunks of the candidates in the rows of `f`; one chunk per block read."""
    out = ChunkBuilder(source)
    scan = ScanBatch()
    feed = _Feed(line_chunks(f, source, max_line), out, "\n" if dialect.quoted else "")
    rows: Iterator[list[str]]
    if dialect.quoted:
        rows = csv.reader(feed, delimiter=dialect.delimiter, strict=False)
    else:
        rows = (line.rstrip("\r").split(dialect.delimiter) for line in feed)
    header: list[str] | None = None
    decided = False  # whether the columns to read are known
    chosen: list[int] | None = None  # cell indexes to read; None: scan every cell
    skip: set[int] = set()  # cells not to scan: fingerprints, versions
    named = any(not c.isdigit() for c in columns)
    # a lone dash is the usual "no value"; Zeek writes an empty set as "(empty)"
    placeholders = {"", "-", "(empty)"} if dialect.zeek else {"", "-"}
    while True:
        feed.start_row()
        try:
            row = next(rows, None)
        except csv.Error as exc:
            out.reject(feed.row_line or feed.next_line, f"unreadable CSV row ({exc})")
            feed.replay_row()
            row = []
        if row is None:
            break
        line = feed.row_line
        if dialect.zeek and row and row[0].startswith("#"):
            if row[0] == "#fields":
                header, decided = row[1:], True
                chosen, skip = _resolve(header, columns, source)
            row = []
        elif row and not decided:
            decided = True
            if named or _looks_like_header(row):
                header, row = row, []
            chosen, skip = _resolve(header, columns, source)
        if row:
            if chosen is None:
                cells = [c for i, c in enumerate(row) if i not in skip] if skip else row
                scan.add("\t".join(cells), line)
            else:
                for i, col in zip(chosen, columns, strict=True):
                    if i >= len(row):
                        out.reject(line, f"short row: no column {col}")
                    elif row[i].strip() not in placeholders:
                        add_value(out, line, row[i])
        if feed.used_up:
            feed.used_up = False
            scan.scan_into(out)
            yield out.take(feed.next_line)
    scan.scan_into(out)
    if out.values or out.lines_read:
        yield out.take(feed.next_line)


def _looks_like_header(row: list[str]) -> bool:
    """A first row is a header when none of its cells is an IOC and one has letters."""
    cells = [c.strip() for c in row]
    return any(c[:1].isalpha() for c in cells) and all(normalize(c)[0] is None for c in cells if c)


def _resolve(
    header: list[str] | None, columns: Sequence[str], source: str
) -> tuple[list[int] | None, set[int]]:
    """The cell indexes `columns` name (None: scan all), and the cells not to scan."""
    names = [h.strip() for h in header] if header is not None else []
    skip = {i for i, name in enumerate(names) if is_skipped_key(name)}
    if not columns:
        return None, skip
    chosen: list[int] = []
    for col in columns:
        if col.isdigit():
            if header is not None and int(col) > len(names):
                raise InputError(
                    f"{source}: no column {col}: its header has {len(names)}: {_shown(names)}"
                )
            chosen.append(int(col) - 1)
            continue
        if col in names:
            chosen.append(names.index(col))
            continue
        lowered = [n.lower() for n in names]
        if col.lower() in lowered:
            chosen.append(lowered.index(col.lower()))
            continue
        raise InputError(f"{source}: no column named {col!r} in its header: {_shown(names)}")
    return chosen, skip


def _shown(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:20]) or "(empty)"
