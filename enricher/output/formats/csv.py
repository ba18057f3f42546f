"""`--output-format csv`: one header row and a row per record, for spreadsheets and SIEM
lookups.

RFC 4180 (the standard library's `csv`: fields quoted when they hold a comma, a quote or a
line break; CRLF line ends). Analysts open these files in spreadsheets, where a cell that
starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula (CSV
injection), and some importers trim leading spaces (NBSP too) or fold fullwidth `＝` to `=`
first: such text cells are written with a leading `'`, which spreadsheets show as text.
Numbers are written as numbers (a score of -1 is no formula). A line break in a text the
server sent becomes a space, so each record is one line: `grep` works, and a resumed run
cuts a torn last row off cleanly. NUL is dropped, and the other control characters a
terminal acts on (ESC, ...) are written as visible escapes (`\x1b`), so that `cat` or
`grep` on the file shows them inert. The nested `product` and the verbatim `response` are left
out: the NDJSON output has them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...ioc import IocType
from ..inert import CONTROLS
from .base import RecordFields, RecordWriter

__all__ = ["COLUMNS", "CsvWriter", "cell"]

COLUMNS = (
    "ioc",
    "type",
    "verdict",
    "classification",
    "score",
    "type_score",
    "source",
    "first_seen",
    "link",
    "cp_type",
    "ttl_ms",
    "cached",
)
#: with --with-source: where each IOC was first seen
ORIGIN = ("origin_file", "origin_line")
_FORMULA = frozenset("=+-@\t\r")
#: what starts a formula after leading spaces (which some importers trim): the ASCII signs
#: and their fullwidth forms (＝ ＋ － ＠), which spreadsheets may fold to ASCII
_SIGNS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
#: a line break is a space (a record a line); NUL is dropped; the other controls a terminal
#: acts on (`cat`, `grep` print the cells) are written as visible escapes (`\x1b`), the
#: tab excepted
_CONTROLS = {
    **{c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in CONTROLS},
    0x09: "\t",
    0x0A: " ",
    0x0D: " ",
    0x00: None,
}
_TYPES = {t.value: t for t in IocType}


def cell(value: Any) -> Any:
    """A record field as a CSV cell: text safe to open in a spreadsheet, on one line."""
    if value.__class__ is str:  # the common case first: this runs for every field
        if value[:1] in _FORMULA:
            return "'" + _printable(value)
        if not value.isprintable():
            value = _printable(value)
        if value[:1].isspace() and value.lstrip()[:1] in _SIGNS:
            return "'" + value
        if value[:1] in _SIGNS:  # a fullwidth sign
            return "'" + value
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    return cell(str(value))


def _printable(text: str) -> str:
    return text.replace("\r\n", " ").translate(_CONTROLS)


class CsvWriter(RecordWriter):
    name = "csv"
    framed = True

    def __init__(self, *, with_source: bool = False) -> None:
        self.columns = COLUMNS + (ORIGIN if with_source else ())
        self._header = self._rows([list(self.columns)])

    @staticmethod
    def _rows(rows: list[list[Any]]) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(rows)
        return out.getvalue().encode()

    def begin(self) -> bytes:
        return self._header

    def encode_records(self, records: list[RecordFields]) -> bytes:
        origin = len(self.columns) > len(COLUMNS)
        rows = []
        for r in records:
            # the fields enricher makes (the IOC normalized, its type, the verdict's name, an
            # ISO time, numbers) are written as they are; the server's text goes through
            # `cell`. Spelled out, not a loop over COLUMNS: this runs for every record.
            score, type_score, ttl = r["score"], r["type_score"], r["ttl_ms"]
            row = [
                r["ioc"],
                r["type"],
                cell(r["verdict"]),
                cell(r["classification"]),
                "" if score is None else score,
                "" if type_score is None else type_score,
                cell(r["source"]),
                r["first_seen"] or "",
                cell(r["link"]),
                cell(r["cp_type"]),
                "" if ttl is None else ttl,
                "true" if r["cached"] else "false",
            ]
            if origin:
                where = r.get("origin") or {}
                row += [cell(where.get("file")), cell(where.get("line"))]
            rows.append(row)
        return self._rows(rows)

    def recognizes(self, first_line: bytes) -> bool:
        return first_line + b"\r\n" == self._header

    def keys(self, path: str | Path) -> Iterator[tuple[IocType, str]]:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            rows = csv.reader(f)
            next(rows, None)  # the header
            for row in rows:
                if len(row) >= 2 and (t := _TYPES.get(row[1])) is not None:
                    yield t, row[0]
