"""The `ndjson` and `json` formats: records, every string scanned or the chosen fields read.

- NDJSON (Suricata's eve.json, most SIEM exports): one JSON value a line, parsed with orjson;
  a line that is not JSON is a reject.
- JSON: one document (a top-level array, or an object with lists inside, like a MISP event),
  streamed by `jsonstream.json_items`, so memory holds one record, not the file. Text that is
  not JSON stops the file there, with a reject that says where, and the input is marked
  damaged (not read to its end).

Default: every string value is scanned for IOCs (values under keys that say they are no IOC,
such as `ja3` or `FileVersion`, are skipped). `--field PATH` (repeatable): only the values at
those paths, each passed as it is (a value that is no IOC is a reject); what a path selects
inside an object is scanned.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from .blocks import BLOCK, line_chunks
from .candidates import ScanBatch, add_value, is_skipped_key
from .chunk import Chunk, ChunkBuilder
from .decompress import Readable
from .fieldpath import FieldPath, select, within
from .jsonstream import JsonError, Path, json_items

__all__ = ["MAX_JSON_VALUE", "add_item", "read_json", "read_ndjson"]

MAX_JSON_VALUE = 64 * 1024 * 1024
"""The largest single record (array element) a JSON document may have, in characters."""

_BOM = "\ufeff"


def add_item(
    out: ChunkBuilder,
    scan: ScanBatch,
    line: int,
    where: Path,
    value: Any,
    fields: Sequence[FieldPath],
) -> None:
    """The candidates of a JSON value found at `where` in its document: values the fields
    select go to `out`, what is to be scanned to `scan`."""
    if not fields:
        if not any(isinstance(key, str) and is_skipped_key(key) for key in where):
            scan.add_value(value, line)
        return
    for path in fields:
        found = within(path, where)
        if found is None:
            continue
        rest, inside = found
        if inside:
            scan.add_value(value, line)
        else:
            for selected in select(value, rest):
                add_value(out, line, selected)


def read_ndjson(
    f: Readable, source: str, *, fields: Sequence[FieldPath], max_line: int
) -> Iterator[Chunk]:
    """Chunks of the candidates in the JSON lines of `f`; one chunk per block read."""
    out = ChunkBuilder(source)
    scan = ScanBatch()
    loads = orjson.loads
    for chunk in line_chunks(f, source, max_line):
        for i, text in enumerate(chunk.lines):
            line = chunk.first_line + i
            if text is None:
                out.reject(line, chunk.errors.get(i, "unreadable line"))
                continue
            if not text or text.isspace():
                continue
            try:
                doc = loads(text)
            except orjson.JSONDecodeError:
                out.reject(line, "not valid JSON")
                continue
            add_item(out, scan, line, (), doc, fields)
        out.lines_read = len(chunk.lines)
        scan.scan_into(out)
        yield out.take(chunk.first_line + len(chunk.lines))


class _Text:
    """`f` decoded piece by piece ("" at the end), counting the lines it has given."""

    def __init__(self, f: Readable) -> None:
        self.f = f
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.first = True
        self.newlines = 0
        self.open_line = False  # whether the text so far ends inside a line

    def __call__(self) -> str:
        while True:
            data = self.f.read1(BLOCK)
            text = self.decoder.decode(data, final=not data)
            if self.first and text:
                self.first = False
                text = text.removeprefix(_BOM)
            if text:
                self.newlines += text.count("\n")
                self.open_line = text[-1] != "\n"
                return text
            if not data:
                return ""

    @property
    def lines(self) -> int:
        return self.newlines + self.open_line


def read_json(
    f: Readable, source: str, *, fields: Sequence[FieldPath], max_item: int = MAX_JSON_VALUE
) -> Iterator[Chunk]:
    """Chunks of the candidates in the JSON document(s) of `f`, streamed."""
    text = _Text(f)
    out = ChunkBuilder(source)
    scan = ScanBatch()
    reported = 0  # lines already counted in chunks
    line = 1
    damaged: str | None = None
    try:
        for item in json_items(text, max_item=max_item):
            if item is None:  # about to wait for more text: pass on what we have
                scan.scan_into(out)
                if out.values:
                    out.lines_read, reported = text.newlines - reported, text.newlines
                    yield out.take(line)
                continue
            where, value, line = item
            add_item(out, scan, line, where, value, fields)
    except JsonError as exc:
        out.reject(exc.line, f"not valid JSON: {exc.reason}")
        damaged = f"not valid JSON at line {exc.line} ({exc.reason}): the rest was not read"
    scan.scan_into(out)
    out.lines_read = text.lines - reported
    last = out.take(line)
    last.damaged = damaged
    yield last
