"""What every records writer does: turn batches of record lines into its format's bytes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from ...ioc import IocType
from ...state.resume import repair
from ..records import IocTypeName, RecordFields

__all__ = ["RecordFields", "RecordWriter", "first_line", "samples", "utc_now"]


# a number beyond a double reads as infinity, as `records.read_record` reads it
_read_fields = msgspec.json.Decoder(RecordFields, float_hook=float).decode


class RecordWriter:
    """A batch of NDJSON record lines in, the bytes of one format out.

    The records file's writer thread calls `begin` once before the first batch of a new (or
    empty) file, `encode` for each batch, and `end` once when the run closes the file, with
    every record written. A resumable format keeps the file complete after each batch, and
    can read back which IOCs it holds (`keys`), cut a torn last batch off (`repair`) and tell
    a file of its own from another format's (`recognizes`).
    """

    name = ""
    resumable = True
    #: the file has a beginning or an end of its own (a header, a bundle's brackets),
    #: written even when no record is
    framed = False

    def begin(self) -> bytes:
        return b""

    def encode(self, lines: bytes) -> bytes:
        """The records of `lines` (NDJSON record lines, each ending in a newline)."""
        return self.encode_records([_read_fields(line) for line in lines.splitlines()])

    def encode_records(self, records: list[RecordFields]) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        return b""

    def recognizes(self, first_line: bytes) -> bool:
        """The first line of a file this writer wrote (with the same settings)."""
        raise NotImplementedError

    def keys(self, path: str | Path) -> Iterator[tuple[IocType, str]]:
        """(type, ioc) of each record in a file this writer wrote."""
        raise NotImplementedError

    def repair(self, path: str | Path) -> int:
        """Cut a torn last batch off the file; how many bytes were cut."""
        return repair(path)


def first_line(path: str | Path) -> bytes:
    """The first line of a file (up to 64 KiB), without its line break; b"" when empty."""
    if not os.path.isfile(path):
        return b""
    with open(path, "rb") as f:
        return f.readline(65536).rstrip(b"\r\n")


_SAMPLES: dict[IocTypeName, str] = {
    "md5": "92f44e405db16ac55d97e3bfe3b132fa",
    "sha1": "3395856ce81f2b7382dee72602f798b642f14140",
    "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "domain": "evil.example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


def samples() -> list[RecordFields]:
    """A record of each IOC type, every field set: what a writer that makes its format's
    objects itself checks against the format's own library."""
    return [
        {
            "ioc": ioc,
            "type": kind,
            "verdict": "malicious",
            "classification": "ransom",
            "score": 0.9,
            "type_score": 3,
            "source": "GTI",
            "ttl_ms": 3_600_000,
            "first_seen": "2016-12-14T12:38:41.821Z",
            "link": "https://example.com/r",
            "cp_type": "VIRUS_TOTAL",
            "cached": False,
        }
        for kind, ioc in _SAMPLES.items()
    ]


def utc_now() -> datetime:
    """The time written into documents that carry one (ECS, STIX, MISP)."""
    return datetime.now(UTC)
