"""`--output-format ndjson` (the default): the record lines as the engine made them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...ioc import IocType
from ...state.resume import read_keys
from .base import RecordWriter

__all__ = ["NdjsonWriter"]


class NdjsonWriter(RecordWriter):
    name = "ndjson"

    def encode(self, lines: bytes) -> bytes:
        return lines

    def recognizes(self, first_line: bytes) -> bool:
        return first_line.startswith(b'{"ioc":')

    def keys(self, path: str | Path) -> Iterator[tuple[IocType, str]]:
        return read_keys(path)
