"""What a SQLite file says about itself, read without SQLite (which could change it).

The cache must know whose a file is before it opens it: the 100-byte database header holds
the `application_id` and `user_version` marker. A process killed in WAL mode (SIGKILL, a
power cut) leaves its last commits in the `-wal` file only, header page included: there
the header is the one of the last commit whose frames are whole and check out.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["HEADER_SIZE", "SQLITE_MAGIC", "wal_header"]

SQLITE_MAGIC = b"SQLite format 3\0"
HEADER_SIZE = 100

_WAL_MAGIC = (0x377F0682, 0x377F0683)  # checksums little-endian, big-endian
_WAL_HEADER = 32
_FRAME_HEADER = 24
_MASK = 0xFFFFFFFF


def _checksum(data: bytes, s0: int, s1: int, order: str) -> tuple[int, int]:
    """SQLite's WAL checksum of `data` (a multiple of 8 bytes), continued from (s0, s1)."""
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for a, b in zip(words[0::2], words[1::2], strict=True):
        s0 = (s0 + a + s1) & _MASK
        s1 = (s1 + b + s0) & _MASK
    return s0, s1


def wal_header(path: str | Path) -> bytes | None:
    """The database header (page 1's first 100 bytes) as the last whole commit in the WAL
    of the database at `path` left it; None without a WAL, or when no commit in it wrote
    page 1 (the header in the file is then the current one)."""
    try:
        f = open(f"{path}-wal", "rb")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with f:
        head = f.read(_WAL_HEADER)
        if len(head) < _WAL_HEADER:
            return None
        magic, _, page_size, _, salt1, salt2, c1, c2 = struct.unpack(">8I", head)
        if magic not in _WAL_MAGIC or not 512 <= page_size <= 65536:
            return None
        order = ">" if magic & 1 else "<"
        s0, s1 = _checksum(head[:24], 0, 0, order)
        if (s0, s1) != (c1, c2):
            return None
        page_one: bytes | None = None
        committed: bytes | None = None
        while True:
            frame = f.read(_FRAME_HEADER)
            data = f.read(page_size)
            if len(frame) < _FRAME_HEADER or len(data) < page_size:
                break
            page, commit, f1, f2, c1, c2 = struct.unpack(">6I", frame)
            if (f1, f2) != (salt1, salt2):
                break  # a frame of an earlier generation of the WAL: the log ends here
            s0, s1 = _checksum(frame[:8], s0, s1, order)
            s0, s1 = _checksum(data, s0, s1, order)
            if (s0, s1) != (c1, c2):
                break  # torn: what follows was never committed
            if page == 1:
                page_one = data[:HEADER_SIZE]
            if commit:
                committed = page_one
        return committed
