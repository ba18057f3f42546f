"""The read stage: each input opened, decompressed, its format told, and parsed into chunks.

    path ─▶ open ─▶ decompress ─▶ decode ─▶ (sample: auto, csv, tsv) ─▶ format reader ─▶ Chunk, …
            file     magic bytes    UTF-16,   extension + content        lines / csv / tsv /
            or -     gz bz2 xz zst  UTF-32                               ndjson / json / text

Everything for one source runs in a worker thread, as one generator of chunks: the blocking
reads, the decompression and the parsing. The event loop only receives finished chunks, one
thread hop each (a chunk is a block of up to 256 KiB), so a slow pipe still flows chunk by
chunk and a slow consumer stops the reading (the engine's queue is bounded).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..errors import InputError
from ..threads import iterate_in_thread
from .blocks import BLOCK, line_chunks
from .chunk import Chunk
from .decompress import (
    DecompressError,
    Prefixed,
    Readable,
    decompressed,
    open_binary,
    read_head,
)
from .encoding import transcoded
from .files import STDIN, utf8_name
from .options import InputOptions
from .sniff import csv_dialect, detect, tsv_dialect

if TYPE_CHECKING:  # each reader is imported for a file of its format (_parse)
    from .delimited import Dialect

__all__ = ["check_columns", "in_thread", "read_inputs", "read_source"]

T = TypeVar("T")

_SAMPLE = 64 * 1024
_STDIN_NAME = "<stdin>"


async def read_inputs(
    paths: Sequence[str],
    options: InputOptions,
    *,
    max_line: int = 1 << 20,
    read_as: dict[str, str] | None = None,
) -> AsyncIterator[Chunk]:
    """Every input as chunks of candidate IOCs, read the way `options` says; `read_as`, when
    given, gets how each input was read (e.g. "lines", "csv, gzip, auto"), for the summary."""
    for path in paths:
        reading = read_source(path, options, max_line=max_line, read_as=read_as)
        async for chunk in in_thread(reading):
            yield chunk


def check_columns(paths: Sequence[str], options: InputOptions, *, max_line: int) -> None:
    """Every CSV or TSV file among `paths` has the columns `--column` names: the first block
    of each is read as the run will read it, so that a column missing from the tenth file
    stops the run before anything is sent. Raises the `InputError` the run would.

    Standard input and special files (a pipe cannot be read twice) are left to the run."""
    if not options.columns:
        return
    for path in paths:
        if path == STDIN or not os.path.isfile(path):
            continue
        chunks = read_source(path, options, max_line=max_line)
        try:
            next(chunks, None)  # the header is resolved with the first row
        finally:
            chunks.close()


def read_source(
    path: str, options: InputOptions, *, max_line: int, read_as: dict[str, str] | None = None
) -> Generator[Chunk, None, None]:
    """The chunks of one input (`-`: stdin); how it was read goes in `read_as` (when given).

    A compressed stream that turns out corrupt or cut short ends that input with a reject
    that says so, in a chunk marked `damaged`; the chunks before it stand.
    """
    # the name goes into records (`origin`), rejects and the manifest, UTF-8 JSON: the bytes
    # of a name that are not UTF-8 (surrogates in `path`) are written as `\xff` escapes
    source = _STDIN_NAME if path == STDIN else utf8_name(path)
    try:
        f = open_binary(path)
    except OSError as exc:
        raise InputError(f"cannot open input {path}: {exc.strerror}") from None
    counted = _Counted(f)
    reported = 0  # bytes already counted in chunks
    last_line = 0
    try:
        stream, compression = decompressed(counted)
        stream, encoding = transcoded(stream)
        fmt = options.format
        dialect: Dialect | None = None
        sample = ""
        if fmt in ("auto", "csv", "tsv"):
            sample, stream = _sample(stream)
        if fmt == "auto":
            fmt, dialect = detect("" if path == STDIN else path, sample)
        elif fmt == "csv":
            dialect = csv_dialect(sample)
        elif fmt == "tsv":
            dialect = tsv_dialect(sample)
        how = [fmt + (" (Zeek)" if dialect is not None and dialect.zeek else "")]
        if compression:
            how.append(compression)
        if encoding:
            how.append(encoding)
        if options.format == "auto":
            how.append("auto")
        if read_as is not None:
            read_as[source] = ", ".join(how)
        for chunk in _parse(stream, source, fmt, dialect, options, max_line):
            last_line = chunk.line_of(len(chunk.lines) - 1) if chunk.lines else last_line
            chunk.nbytes, reported = counted.n - reported, counted.n
            yield chunk
    except DecompressError as exc:
        if read_as is not None:
            read_as.setdefault(source, "unreadable")
        # gzip and zstd check a stream at its end (bzip2 and xz a block at a time): what
        # was decoded before the damage was found may hold lines never in the original
        why = f"{exc}; lines decoded before it was found may not be in the original"
        yield Chunk(source, last_line + 1, [None], {0: str(exc)}, lines_read=0, damaged=why)
    except OSError as exc:
        raise InputError(f"error reading {path}: {exc.strerror or exc}") from None
    finally:
        if path != STDIN:
            f.close()


def _parse(
    stream: Readable,
    source: str,
    fmt: str,
    dialect: Dialect | None,
    options: InputOptions,
    max_line: int,
) -> Iterator[Chunk]:
    if fmt == "lines":
        return line_chunks(stream, source, max_line)
    if fmt == "text":
        from .text import read_text

        return read_text(stream, source, max_line=max_line)
    if fmt == "ndjson":
        from .jsonfmt import read_ndjson

        return read_ndjson(stream, source, fields=options.field_paths, max_line=max_line)
    if fmt == "json":
        from .jsonfmt import read_json

        return read_json(stream, source, fields=options.field_paths)
    from .delimited import read_delimited

    assert dialect is not None
    return read_delimited(
        stream, source, dialect=dialect, columns=options.columns, max_line=max_line
    )


class _Counted:
    """A stream that counts the bytes read from it (for the progress line's ETA)."""

    def __init__(self, f: Readable) -> None:
        self._f = f
        self.n = 0

    def read1(self, size: int = BLOCK, /) -> bytes:
        data = self._f.read1(size)
        self.n += len(data)
        return data


def _sample(f: Readable) -> tuple[str, Readable]:
    """The first complete lines of `f` (up to 64 KiB) as text, and `f` with them put back.

    Reads until a line ends (or the sample is full, or the input ends), so a slow pipe is
    sniffed on its first line rather than waited for.
    """
    head, error = read_head(f, lambda head: len(head) < _SAMPLE and b"\n" not in head, _SAMPLE)
    return head[:_SAMPLE].decode("utf-8", "replace"), Prefixed(head, f, error)


def in_thread(gen: Iterator[T]) -> AsyncIterator[T]:
    """The items of a blocking generator, each made in a reader thread that a stop leaves
    behind if it is blocked (see `enricher.threads`)."""
    return iterate_in_thread(gen, name="read")
