"""Opening an input: a file or stdin, decompressed on the fly when it is compressed.

The compression is told by the magic bytes at the start of the data, whatever the name says
(stdin has none), so `iocs.gz` that is really plain text and a gzip file called `iocs.dat`
are both read right. The name only loses its compression suffix (`x.csv.gz` → `x.csv`), so
that the format can still be told by extension.

Every stream handed on has `read1`: one call gives what one read of the file or pipe gave, so
a slow pipe flows line by line, compressed or not. The stdlib decompressors (and zstandard's
reader) are told to read from the source with `read1` as well, through `_OneRead`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
import zlib
from collections.abc import Callable
from typing import IO, Protocol, cast

import zstandard

__all__ = [
    "DecompressError",
    "Prefixed",
    "Readable",
    "compression_of",
    "decompressed",
    "inner_name",
    "open_binary",
    "read_head",
]


class Readable(Protocol):
    def read1(self, size: int = ..., /) -> bytes: ...


class DecompressError(Exception):
    """The compressed data is corrupt or cut short."""


_MAGIC: list[tuple[bytes, str]] = [
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),  # followed by the block size digit, checked below
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]
_MAGIC_LEN = 6
_SUFFIXES = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd", ".zstd": "zstd"}
_BLOCK = 256 * 1024

# what each library raises on bad data; EOFError is a stream cut short
_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    gzip.BadGzipFile,
    lzma.LZMAError,
    zstandard.ZstdError,
    zlib.error,  # what gzip raises on a corrupt deflate stream: neither OSError nor ValueError
    ValueError,  # bz2 raises OSError or ValueError
    OSError,
)


def inner_name(name: str) -> str:
    """`name` without a compression suffix (`x.csv.gz` → `x.csv`)."""
    root, ext = os.path.splitext(name)
    return root if ext.lower() in _SUFFIXES else name


def compression_of(head: bytes) -> str | None:
    """The compression the first bytes of a stream show, or None for plain data."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            if name == "bzip2" and not (len(head) > 3 and 0x31 <= head[3] <= 0x39):
                continue
            return name
    return None


def _could_be_magic(head: bytes) -> bool:
    return any(magic.startswith(head[: len(magic)]) for magic, _ in _MAGIC)


class Prefixed:
    """A stream with some bytes already read from it put back in front (and the error that
    reading more raised then, raised again after them)."""

    def __init__(self, head: bytes, f: Readable, error: Exception | None = None) -> None:
        self._head = head
        self._f = f
        self._error = error

    def read1(self, size: int = _BLOCK, /) -> bytes:
        if self._head:
            if size < 0:
                size = len(self._head)
            head, self._head = self._head[:size], self._head[size:]
            return head
        if self._error is not None:
            raise self._error
        return self._f.read1(size)


def read_head(
    f: Readable, more: Callable[[bytes], bool], limit: int
) -> tuple[bytes, DecompressError | None]:
    """The first bytes of `f`, read while `more(head)` says more are needed (at most `limit`
    of them), and the DecompressError a read raised, if one did: for Prefixed to raise again
    once the head has been handed on."""
    head = b""
    while more(head):
        try:
            data = f.read1(limit - len(head))
        except DecompressError as exc:
            return head, exc
        if not data:
            break
        head += data
    return head, None


class _OneRead(io.RawIOBase):
    """`read(n)` as one `read1(n)` of the source: what a decompressor reads from, so that it
    never waits for a full buffer from a pipe."""

    def __init__(self, f: Readable) -> None:
        self._f = f

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        return self._f.read1(size if size > 0 else _BLOCK)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._f.read1(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Checked:
    """A decompressing stream whose errors become `DecompressError`."""

    def __init__(self, read1: Callable[[int], bytes], what: str) -> None:
        self._read1 = read1
        self._what = what

    def read1(self, size: int = _BLOCK, /) -> bytes:
        try:
            return self._read1(size)
        except _ERRORS as exc:
            raise DecompressError(f"{self._what} data is corrupt or truncated ({exc})") from exc


def decompressed(f: Readable) -> tuple[Readable, str | None]:
    """`f` decompressed if its first bytes say so, and the name of the compression.

    Reads only as far as needed to rule a magic number in or out (a slow pipe whose first
    byte is a letter is not held up).
    """
    head = b""
    while len(head) < _MAGIC_LEN and _could_be_magic(head):
        more = f.read1(_MAGIC_LEN - len(head))
        if not more:
            break
        head += more
    plain = Prefixed(head, f)
    kind = compression_of(head)
    if kind is None:
        return plain, None
    raw = _OneRead(plain)
    stream: io.BufferedIOBase
    if kind == "gzip":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif kind == "bzip2":
        stream = bz2.BZ2File(raw, mode="rb")
    elif kind == "xz":
        stream = lzma.LZMAFile(cast(IO[bytes], raw), mode="rb")  # noqa: SIM115 - returned
    else:
        return _Checked(_Zstd(plain).read1, kind), kind
    return _Checked(stream.read1, kind), kind


class _Zstd:
    """zstd frames one after another, decompressed as the source gives them.

    Not zstandard's stream reader: it ends quietly where a frame is cut short, and the data
    of the cut frame is lost without a word. Here each frame's decompressor says whether its
    frame ended. Input is fed a piece at a time, and a read stops once it has `size` bytes,
    so that a small, highly compressed input (a zip bomb) cannot fill the memory in one call.
    """

    _PIECE = 1024  # compressed bytes per call: at most 32 MiB out, whatever they hold

    def __init__(self, f: Readable) -> None:
        self._f = f
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._frame = self._new()
        self._in_frame = False  # whether the current frame has begun
        self._pending = b""  # compressed bytes read and not yet fed

    def read1(self, size: int = _BLOCK, /) -> bytes:
        size = size if size > 0 else _BLOCK
        out: list[bytes] = []
        n = 0
        while n < size:
            if not self._pending:
                if n:
                    break  # what we have, before waiting on the source again
                self._pending = self._f.read1(_BLOCK)
                if not self._pending:
                    if self._in_frame:
                        raise EOFError("the last frame is cut short")
                    return b""
            piece, self._pending = self._pending[: self._PIECE], self._pending[self._PIECE :]
            data = self._feed(piece)
            out.append(data)
            n += len(data)
        return b"".join(out)

    def _feed(self, piece: bytes) -> bytes:
        out = []
        while piece:
            self._in_frame = True
            out.append(self._frame.decompress(piece))
            if not self._frame.eof:
                break
            # the frame ended: what follows is the next frame
            piece = self._frame.unused_data
            self._frame = self._new()
            self._in_frame = False
        return b"".join(out)


class _FdReader:
    """A file descriptor read straight, without Python's buffer (standard input).

    A reader thread blocked on a quiet pipe (`tail -f | enricher run -`) is left behind when
    a run stops; had it been blocked inside `sys.stdin.buffer`, it would hold that buffer's
    lock, and the interpreter aborts when it finds the lock held at exit.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read1(self, size: int = 256 * 1024, /) -> bytes:
        return os.read(self.fd, size)

    def close(self) -> None:
        pass  # standard input stays open


def open_binary(path: str) -> io.BufferedReader | _FdReader:
    """The file at `path` opened for reading bytes (`-`: standard input); the caller closes
    it."""
    if path == "-":
        try:
            return _FdReader(sys.stdin.fileno())
        except (AttributeError, OSError, ValueError):  # replaced by something without one
            return cast(io.BufferedReader, sys.stdin.buffer)
    return open(path, "rb")
