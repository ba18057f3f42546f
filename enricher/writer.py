"""Write stage: NDJSON lines out, encoded with orjson, flushed as each batch completes."""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

import orjson

from .errors import FatalError

__all__ = ["NdjsonWriter", "encode_lines"]

_NL = orjson.OPT_APPEND_NEWLINE


def encode_lines(items: Sequence[Any]) -> bytes:
    """One NDJSON line per item."""
    dumps = orjson.dumps
    return b"".join([dumps(item, option=_NL) for item in items])


class NdjsonWriter:
    """Appends NDJSON lines to a file (or stdout for `-`).

    With `lazy`, the file is created only when the first line comes, so a run with nothing to
    say leaves no empty file behind.
    """

    def __init__(
        self, path: str, *, lazy: bool = False, mode: str = "wb", threaded: bool = False
    ) -> None:
        self.path = path
        self.mode = mode
        self.lines = 0
        self._f: IO[bytes] | None = None
        if not lazy:
            self._open()
        # With `threaded`, a thread of its own does the writing (file I/O runs without the
        # GIL), so a large output does not hold up the event loop; its error, if any, is
        # raised by the next write or by close().
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: FatalError | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=8)
            self._thread = threading.Thread(target=self._drain, name="writer", daemon=True)
            self._thread.start()

    def _open(self) -> IO[bytes]:
        if self._f is None:
            if self.path == "-":
                self._f = sys.stdout.buffer
            else:
                try:
                    self._f = open(self.path, self.mode)  # noqa: SIM115 - closed in close()
                except OSError as exc:
                    raise FatalError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return self._f

    def write(self, items: Sequence[Any]) -> None:
        """Items as NDJSON lines."""
        if items:
            self._write(encode_lines(items), len(items))

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """Lines already encoded (each ending in a newline)."""
        if lines:
            self._write(b"".join(lines), len(lines))

    def _write(self, data: bytes, n: int) -> None:
        f = self._open()
        if self._error is not None:
            raise self._error
        if self._queue is not None:
            self._queue.put(data)
        else:
            self._put(f, data)
        self.lines += n

    def _put(self, f: IO[bytes], data: bytes) -> None:
        try:
            f.write(data)
            f.flush()
        except BrokenPipeError:
            raise FatalError(f"output closed while writing {self.display}") from None
        except OSError as exc:
            raise FatalError(f"cannot write {self.display}: {exc.strerror or exc}") from None

    def _drain(self) -> None:
        assert self._queue is not None
        while (data := self._queue.get()) is not None:
            if self._error is None and self._f is not None:
                try:
                    self._put(self._f, data)
                except FatalError as exc:
                    self._error = exc

    @property
    def display(self) -> str:
        return "standard output" if self.path == "-" else self.path

    def close(self) -> None:
        """Write what is pending and close; raises the error a threaded write met."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._f is not None and self.path != "-":
            self._f.close()
        self._f = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
