"""`--format auto`: which format a file is in, by its extension and a sniff of its start.

The extension decides when it says something (`.csv`, `.tsv`, `.ndjson`, `.jsonl`, `.json`,
`.md`, `.adoc`, `.html`, ...; the compression suffix is dropped first). Otherwise, and for
stdin, the first block is looked at:

- `[` or `{` first: JSON, or NDJSON when its first line is a whole JSON value (or, the first
  record damaged, most of the lines after it are);
- a Zeek header (`#separator`): TSV the Zeek way;
- nine lines in ten (comments and blank lines aside) an IOC each: `lines`;
- the same number (two or more) of fields on every line for one of `,` tab `;` `|`: CSV/TSV;
- anything else: free `text`.

The delimiter of a CSV file is sniffed the same way (the first that splits every line of the
sample into the same number of fields), and whether a TSV file quotes its fields.
"""

from __future__ import annotations

import csv
import os
from typing import TYPE_CHECKING

import orjson

from ..pipeline.normalize import normalize
from .decompress import inner_name

if TYPE_CHECKING:  # imported as a CSV or TSV is found: a file of lines needs no CSV reader
    from .delimited import Dialect

__all__ = ["csv_dialect", "detect", "tsv_dialect"]

_BY_EXTENSION = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".jsonlines": "ndjson",
    ".ldjson": "ndjson",
    ".json": "json",  # or NDJSON: Suricata's eve.json is one event a line
    **dict.fromkeys(
        [".md", ".markdown", ".adoc", ".asciidoc", ".rst", ".html", ".htm", ".xhtml", ".xml"],
        "text",
    ),
    **dict.fromkeys([".eml", ".msg", ".rtf", ".tex", ".org", ".wiki", ".mediawiki"], "text"),
}
_DELIMITERS = ",\t;|"
_SAMPLE_LINES = 200


def detect(name: str, sample: str) -> tuple[str, Dialect | None]:
    """The format of a file called `name` (`""` for stdin) whose text starts with `sample`,
    and, for CSV and TSV, how its rows are written."""
    ext = os.path.splitext(inner_name(name))[1].lower()
    fmt = _BY_EXTENSION.get(ext)
    head = sample.lstrip("\ufeff \t\r\n")
    if fmt == "json" or (fmt is None and head[:1] in ("[", "{")):
        return _json_kind(head), None
    if fmt == "csv":
        return "csv", csv_dialect(sample)
    if fmt == "tsv":
        return "tsv", tsv_dialect(sample)
    if fmt is not None:
        return fmt, None
    if head.startswith("#separator"):
        return "tsv", tsv_dialect(sample)
    lines = _data_lines(sample)
    if not lines or sum(normalize(x)[0] is not None for x in lines) >= 0.9 * len(lines):
        return "lines", None
    delimiter = _consistent_delimiter(lines)
    if delimiter == "\t":
        return "tsv", tsv_dialect(sample)
    if delimiter is not None:
        from .delimited import Dialect

        return "csv", Dialect(delimiter=delimiter)
    return "text", None


def csv_dialect(sample: str) -> Dialect:
    """The dialect of a CSV file: its delimiter sniffed, `,` when nothing tells."""
    from .delimited import Dialect

    lines = _data_lines(sample)
    delimiter = _consistent_delimiter(lines)
    if delimiter is None and lines:
        first = lines[0]
        delimiter = (
            max(_DELIMITERS, key=first.count) if any(d in first for d in _DELIMITERS) else ","
        )
    return Dialect(delimiter=delimiter or ",")


def tsv_dialect(sample: str) -> Dialect:
    """The dialect of a TSV file: quoted only if a field of the sample starts with a quote."""
    from .delimited import Dialect

    zeek = sample.lstrip("\ufeff").startswith("#separator")
    quoted = not zeek and any(line.startswith('"') or '\t"' in line for line in _data_lines(sample))
    return Dialect(delimiter="\t", quoted=quoted, zeek=zeek)


def _json_kind(head: str) -> str:
    """NDJSON when the first line is a whole JSON value, or (a first record cut or damaged)
    when most of the sample's other whole lines are objects or arrays each; a document
    pretty-printed over lines has few such lines (`{`, `"key": [`, `},` are none)."""
    if head.startswith("["):
        return "json"
    first, _, rest = head.partition("\n")
    if _whole_value(first):
        return "ndjson"
    lines = [line for line in rest.split("\n")[:-1] if line.strip()]  # the last may be cut
    values = sum(_whole_value(line, records_only=True) for line in lines)
    return "ndjson" if values * 2 > len(lines) else "json"


def _whole_value(line: str, *, records_only: bool = False) -> bool:
    try:
        value = orjson.loads(line.strip())
    except orjson.JSONDecodeError:
        return False
    return not records_only or isinstance(value, dict | list)


def _data_lines(sample: str) -> list[str]:
    """The first lines of `sample` that are neither blank nor comments (a last line cut
    short by the end of the sample left out)."""
    lines = sample.split("\n")
    if len(lines) > 1:
        lines.pop()
    out: list[str] = []
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            out.append(line.rstrip("\r"))
            if len(out) == _SAMPLE_LINES:
                break
    return out


def _consistent_delimiter(lines: list[str]) -> str | None:
    """The delimiter that splits every line (two at least) into the same number of fields."""
    if len(lines) < 2:
        return None
    for delimiter in _DELIMITERS:
        if not all(delimiter in line for line in lines):
            continue
        try:
            counts = {len(row) for row in csv.reader(lines, delimiter=delimiter, strict=True)}
        except csv.Error:
            continue
        if len(counts) == 1 and counts.pop() >= 2:
            return delimiter
    return None
