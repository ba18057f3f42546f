"""Write stage: NDJSON lines out, encoded with orjson, flushed as each batch completes."""

from __future__ import annotations

import sys
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

    def __init__(self, path: str, *, lazy: bool = False, mode: str = "wb") -> None:
        self.path = path
        self.mode = mode
        self.lines = 0
        self._f: IO[bytes] | None = None
        if not lazy:
            self._open()

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

    @property
    def opened(self) -> bool:
        return self._f is not None

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
        try:
            f.write(data)
            f.flush()
        except BrokenPipeError:
            raise FatalError(f"output closed while writing {self.display}") from None
        except OSError as exc:
            raise FatalError(f"cannot write {self.display}: {exc.strerror or exc}") from None
        self.lines += n

    @property
    def display(self) -> str:
        return "standard output" if self.path == "-" else self.path

    def close(self) -> None:
        if self._f is not None and self.path != "-":
            self._f.close()
        self._f = None
