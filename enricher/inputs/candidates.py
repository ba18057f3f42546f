"""What a cell or a JSON value gives the engine: candidates that are the IOCs in it.

Two modes, as for every structured format:

- a value the user pointed at (`--column`, `--field`) is passed as it is, as a line of the
  `lines` format is: the engine takes it whole when it is an IOC, or else the IOCs inside it
  (`MD5=…,SHA256=…` from Sysmon, `invoice.pdf|<md5>` from MISP, `see evil[.]com`), or else
  rejects it with its reason. A name that ends in no public suffix (`invoice.pdf`) is
  rejected as a file name;
- everything else is scanned with the text extractor, which passes on only what is an IOC.

Values under keys that say they are no IOC are left out of a scan: fingerprints that look
like file hashes (JA3, HASSH, imphash, certificate fingerprints, thumbprints and serials,
commits) and version numbers that look like addresses (Sysmon's `FileVersion: 1.0.0.1`). A key
says so by one of its words (`ja3_hash`, `cert_chain_fps`, `x509.fingerprint`), or, for a
version, by its last word (`FileVersion`, `os_version`): `conversion_url` and
`ServerVersionHost` are scanned. An object whose `type` says so (MISP's
`{"type": "ja3-fingerprint-md5", "value": ...}`) has its `value` left out.
"""

from __future__ import annotations

import re
from typing import Any

from .chunk import ChunkBuilder
from .extract import extract, extract_lines

__all__ = ["ScanBatch", "add_value", "is_skipped_key", "scan_value", "strings_in"]

# words of a key that say its value is a fingerprint, not a file hash
_FINGERPRINT_WORDS = frozenset(
    {"ja3", "ja3s", "ja4", "ja4s", "hassh", "hasshserver", "imphash", "serial", "fingerprint",
     "fingerprints", "fp", "fps", "thumbprint", "btih", "commit", "guid", "uuid"}
)  # fmt: skip
# a key's words: `ja3_hash`, `JA3Hash`, `cert-chain fps` (camel case counts, `JA3S` is one)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")
# what keys say, remembered: records repeat their keys (short ones only, and a bounded number)
_SKIPPED: dict[str, bool] = {}
_SKIPPED_MAX = 4096
_SKIPPED_KEY_LENGTH = 64


def is_skipped_key(key: str) -> bool:
    """Whether values under `key` (a JSON key, a column name, a MISP type) are left out of a
    scan: one of its words names a fingerprint, or its last word is `version`."""
    skipped = _SKIPPED.get(key)
    if skipped is None:
        words = [w.lower() for w in _WORD.findall(key.rpartition(".")[2])]
        skipped = bool(words) and (
            words[-1] == "version" or any(w in _FINGERPRINT_WORDS for w in words)
        )
        if len(key) <= _SKIPPED_KEY_LENGTH:
            if len(_SKIPPED) >= _SKIPPED_MAX:
                _SKIPPED.clear()
            _SKIPPED[key] = skipped
    return skipped


def add_value(out: ChunkBuilder, line: int, value: Any) -> None:
    """The candidates of one selected value (a cell, or what a `--field` path found): a
    string as it is (the engine takes it whole, or the IOCs inside it, or rejects it)."""
    if isinstance(value, str):
        text = value.strip()
        if text:
            out.add([text], line)
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
        kind = value.get("type")
        skip_value = isinstance(kind, str) and is_skipped_key(kind)
        for key, item in value.items():
            if (
                isinstance(item, str | dict | list)
                and not is_skipped_key(key)
                and not (skip_value and key == "value")
            ):
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
