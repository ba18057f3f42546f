"""What a cell or a JSON value gives the engine: candidates that are the IOCs in it.

Two modes, as for every structured format:

- a value the user pointed at (`--column`, `--field`) is passed as it is, so that a value that
  is no IOC is rejected with its reason, unless IOCs are found inside it (`MD5=…,SHA256=…`
  from Sysmon, `invoice.pdf|<md5>` from MISP, `see evil[.]com`): then those. A name that
  ends in no public suffix (`invoice.pdf`) is rejected as a file name;
- everything else is scanned with the text extractor, which passes on only what is an IOC.

Values under keys that say they are no IOC are left out of a scan: fingerprints that look
like file hashes (JA3, HASSH, imphash, certificate serials) and version numbers that look
like addresses (Sysmon's `FileVersion: 1.0.0.1`).
"""

from __future__ import annotations

from typing import Any

from ..ioc import IocType
from ..normalize import normalize
from .chunk import ChunkBuilder
from .extract import extract, extract_lines
from .suffixes import has_public_suffix

__all__ = ["ScanBatch", "add_value", "is_skipped_key", "scan_value", "strings_in"]

_SKIPPED_KEYS = frozenset(
    {"ja3", "ja3s", "ja4", "ja4s", "hassh", "hasshserver", "hassh_server", "imphash", "serial"}
)
_NO_SUFFIX = "domain without a public suffix (a file name?)"


def is_skipped_key(key: str) -> bool:
    """Whether values under `key` (a JSON key, a column name) are left out of a scan."""
    last = key.rpartition(".")[2].lower()
    return last in _SKIPPED_KEYS or "version" in last


def add_value(out: ChunkBuilder, line: int, value: Any) -> None:
    """The candidates of one selected value (a cell, or what a `--field` path found)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return
        ioc_type, normal = normalize(text)
        if ioc_type is IocType.DOMAIN and not has_public_suffix(normal):
            out.reject(line, _NO_SUFFIX)
        elif ioc_type is not None:
            out.add([text], line)
        else:
            out.add(extract(text) or [text], line)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        out.add([str(value)], line)  # a number is no IOC: rejected, with the reason
    elif isinstance(value, list):
        for element in value:
            add_value(out, line, element)
    else:
        out.add(scan_value(value), line)


def scan_value(value: Any) -> list[str]:
    """The IOCs in every string inside `value`."""
    strings = strings_in(value)
    if not strings:
        return []
    return extract(strings[0] if len(strings) == 1 else "\n".join(strings))


def strings_in(value: Any, out: list[str] | None = None) -> list[str]:
    """Every string value inside `value`, except under skipped keys."""
    if out is None:
        out = []
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str | dict | list) and not is_skipped_key(key):
                strings_in(item, out)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str | dict | list):
                strings_in(item, out)
    return out


class ScanBatch:
    """Texts to scan for IOCs, each with its line, scanned together in one pass when the
    chunk they belong to is handed on (one regex pass per block, not one per row)."""

    __slots__ = ("lines", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.lines: list[int] = []

    def add(self, text: str, line: int) -> None:
        if text:
            # one text, one line of the joined text: its own line breaks become spaces
            self.texts.append(text.replace("\n", " ") if "\n" in text else text)
            self.lines.append(line)

    def add_value(self, value: Any, line: int) -> None:
        """Every string inside a JSON value, under keys that are not skipped."""
        strings = strings_in(value)
        if strings:
            self.add(strings[0] if len(strings) == 1 else "\t".join(strings), line)

    def scan_into(self, out: ChunkBuilder) -> None:
        """The IOCs of the texts added since the last call, added to `out` with their lines."""
        if not self.texts:
            return
        values, index = extract_lines("\n".join(self.texts), 0)
        lines = self.lines
        out.values.extend(values)
        out.lines.extend([lines[i] for i in index])
        self.texts, self.lines = [], []
