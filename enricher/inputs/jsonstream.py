"""A JSON document as a stream of its parts, in memory that does not grow with its size.

JSON exports are one big array of records (`[{...}, {...}, ...]`), or an object with such a
list inside (a MISP event: `{"Event": {"Attribute": [...], "Object": [...]}}`). `json_items`
walks the objects from the top down, member by member, streams each array it meets element by
element, and parses each element whole: memory holds one element (a record, an attribute, a
MISP object), never the file. Several top-level values one after another are read in turn.

Why not a dependency: an incremental parser such as `ijson` would stream every value, but in
pure Python (its fallback) it is slow, and its C backend comes as a separate wheel. Here the
stdlib's C scanner (`JSONDecoder.raw_decode`, which parses one value at an offset and says
where it ended) does all the parsing, and this module only steps over the few structural
characters of the walked objects and arrays. Each element is parsed once: when its text is
not all there yet, more is read and the parse retried only after the buffer has doubled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator
from typing import Any

__all__ = ["Item", "JsonError", "Path", "json_items"]

#: where a value sits: object keys and array indexes from the top
Path = tuple[str | int, ...]
#: (path, value, line where the value starts)
Item = tuple[Path, Any, int]

# objects deeper than this are parsed whole rather than walked
_MAX_WALK_DEPTH = 16
_WS = re.compile(r"[ \t\n\r]*")
_skip_ws = _WS.match
# a parse that stopped before one of these was not cut short by the end of the buffer
_STRUCTURE = re.compile(r"[,:\]}\s]")
_NUMBER_START = frozenset("-0123456789")
_NUMBER_CHARS = re.compile(r"[0-9.eE+-]*")
_scan = json.JSONDecoder().raw_decode


class JsonError(Exception):
    """The text is not JSON: `reason` says why, `line` where."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"{reason} (line {line})")
        self.line = line
        self.reason = reason


class _Walk:
    def __init__(self, read: Callable[[], str], max_item: int) -> None:
        self.read = read
        self.max_item = max_item
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line number at `line_pos`
        self.line_pos = 0

    def line_at(self, pos: int) -> int:
        """The line number at `pos` (positions are asked about in increasing order)."""
        if pos > self.line_pos:
            self.line += self.buf.count("\n", self.line_pos, pos)
            self.line_pos = pos
        return self.line

    def fill(self) -> Generator[None, None, bool]:
        """Read more text (yielding None first, so the consumer can pass on what it has)."""
        if self.eof:
            return False
        yield None
        text = self.read()
        if not text:
            self.eof = True
            return False
        if self.pos > 0:
            self.line_at(self.pos)
            self.buf = self.buf[self.pos :]
            self.line_pos -= self.pos
            self.pos = 0
        self.buf += text
        return True

    def skip_ws(self) -> Generator[None, None, bool]:
        """Move to the next character that is not whitespace; False at the end of the text."""
        while True:
            self.pos = _skip_ws(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return True
            if not (yield from self.fill()):
                return False

    def expect(self, what: str) -> Generator[None, None, str]:
        if not (yield from self.skip_ws()):
            raise JsonError(self.line_at(len(self.buf)), f"unexpected end, expecting {what}")
        c = self.buf[self.pos]
        self.pos += 1
        return c

    def value(self) -> Generator[None, None, Any]:
        """Parse the one whole value at `pos`, reading more text as needed."""
        tried = 0
        while True:
            try:
                value, end = _scan(self.buf, self.pos)
            except RecursionError:
                raise JsonError(self.line_at(self.pos), "nested too deeply") from None
            except json.JSONDecodeError as exc:
                size = len(self.buf) - self.pos
                cut_short = exc.msg.startswith("Unterminated string") or (
                    _STRUCTURE.search(self.buf, exc.pos, exc.pos + 64) is None
                )
                if self.eof or not cut_short:
                    raise JsonError(self.line_at(exc.pos), exc.msg) from None
                if size > self.max_item:
                    raise JsonError(
                        self.line_at(self.pos), f"a value larger than {self.max_item:,} characters"
                    ) from None
                # read until the buffer has doubled since the last try: linear in the value
                while len(self.buf) - self.pos < 2 * max(size, tried) and (yield from self.fill()):
                    pass
                tried = size
                continue
            if (
                not self.eof
                and self.buf[self.pos] in _NUMBER_START
                and _NUMBER_CHARS.match(self.buf, end).end() == len(self.buf)  # type: ignore[union-attr]
            ):
                # a number running to the end of the buffer may go on: `6` of `6.5e10`
                yield from self.fill()
                continue
            self.pos = end
            return value


def json_items(read: Callable[[], str], *, max_item: int) -> Generator[Item | None, None, None]:
    """The parts of the JSON text that `read` gives piece by piece ("" at the end).

    Yields `(path, value, line)` for each scalar member of a walked object and each element of
    a walked array, and None just before it waits for more text. Raises `JsonError` on text
    that is not JSON (what came before it has been yielded).
    """
    w = _Walk(read, max_item)
    while (yield from w.skip_ws()):
        yield from _walk(w, ())


def _walk(w: _Walk, path: Path) -> Generator[Item | None, None, None]:
    """The value at `w.pos`, whose path is `path`: objects walked, arrays streamed."""
    c = w.buf[w.pos]
    if c == "{" and len(path) < _MAX_WALK_DEPTH:
        w.pos += 1
        c = yield from w.expect("a key or '}'")
        if c == "}":
            return
        while True:
            if c != '"':
                raise JsonError(w.line_at(w.pos - 1), "expecting a key")
            w.pos -= 1
            key = yield from w.value()
            if (yield from w.expect("':'")) != ":":
                raise JsonError(w.line_at(w.pos - 1), "expecting ':'")
            if not (yield from w.skip_ws()):
                raise JsonError(w.line_at(len(w.buf)), "unexpected end, expecting a value")
            yield from _walk(w, (*path, key))
            c = yield from w.expect("',' or '}'")
            if c == "}":
                return
            if c != ",":
                raise JsonError(w.line_at(w.pos - 1), "expecting ','")
            c = yield from w.expect("a key")
    elif c == "[" and len(path) < _MAX_WALK_DEPTH:
        w.pos += 1
        c = yield from w.expect("a value or ']'")
        if c == "]":
            return
        w.pos -= 1
        index = 0
        while True:
            line = w.line_at(w.pos)
            element = yield from w.value()
            yield (*path, index), element, line
            index += 1
            c = yield from w.expect("',' or ']'")
            if c == "]":
                return
            if c != ",":
                raise JsonError(w.line_at(w.pos - 1), "expecting ','")
            if not (yield from w.skip_ws()):
                raise JsonError(w.line_at(len(w.buf)), "unexpected end, expecting a value")
    else:
        line = w.line_at(w.pos)
        value = yield from w.value()
        yield path, value, line
