"""Text in UTF-16 or UTF-32, as Windows PowerShell 5 and other Windows tools write it, read as
UTF-8.

Every reader decodes UTF-8: a UTF-16 file would give no IOC to a scan and a reject for every
line to `lines`. So a stream that starts with a UTF-16 or UTF-32 byte order mark, or whose
first bytes are text interleaved with NULs (UTF-16 without a mark: NULs at every other byte,
and none at the others), is decoded here and handed on as UTF-8, for every format. Bytes that
are no UTF-16 (a lone surrogate, an odd last byte) become U+FFFD, which no IOC holds.
"""

from __future__ import annotations

import codecs
import re

from .decompress import Prefixed, Readable, read_head

__all__ = ["transcoded"]

_BLOCK = 256 * 1024
_SNIFF = 64  # bytes looked at, at most, to tell UTF-16 without a mark
_MIN_ASCII = 4  # ASCII characters that UTF-16 without a mark must start with
_TEXT_BYTES = frozenset(b"\t\n\r" + bytes(range(0x20, 0x7F)))
#: a printable ASCII character (no space) beside a NUL: what UTF-16 text shows before long
_WORD_UNIT = re.compile(rb"\0[\x21-\x7e]|[\x21-\x7e]\0")
# UTF-32's marks first: UTF-16 LE's is the start of UTF-32 LE's
_MARKS = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]


def transcoded(f: Readable) -> tuple[Readable, str | None]:
    """`f` as UTF-8, and the encoding it was in when that was UTF-16 or UTF-32 (None: `f` as
    it is). Reads what the first read gives, and more only while the bytes so far may be the
    start of UTF-16 (up to 64 bytes or a line end), so that a slow pipe is not held up."""
    head, error = read_head(f, _undecided, _BLOCK)
    encoding = _encoding_of(head)
    if encoding is None:
        return Prefixed(head, f, error), None
    for mark, name in _MARKS:
        if name == encoding and head.startswith(mark):
            head = head[len(mark) :]
            break
    return _Decoded(Prefixed(head, f, error), encoding), encoding


def _undecided(head: bytes) -> bool:
    """Whether more bytes are needed to tell whether `head` starts UTF-16 or UTF-32."""
    if len(head) < 2 or (len(head) < 4 and any(m.startswith(head) for m, _ in _MARKS)):
        return True
    maybe = b"\0" in head[:2] or any(head.startswith(m) for m, _ in _MARKS)
    return (
        maybe
        and len(head) < _SNIFF
        and (b"\n" not in head or len(head) < 2 * _MIN_ASCII or not _WORD_UNIT.search(head))
    )


def _encoding_of(head: bytes) -> str | None:
    """UTF-16 or UTF-32 by their byte order mark (and NULs after it, which the ASCII
    characters of any text have in those encodings, unless it is that short), or UTF-16 by
    the NULs of its ASCII characters; None for anything else (UTF-8 text has no NUL)."""
    for mark, name in _MARKS:
        if head.startswith(mark):
            rest = head[len(mark) : _SNIFF]
            return name if len(rest) < 4 or b"\0" in rest else None
    head = head[:_SNIFF]
    pairs = len(head) // 2
    if pairs < _MIN_ASCII:
        return None
    even, odd = head[0 : 2 * pairs : 2], head[1 : 2 * pairs : 2]
    # ASCII text in UTF-16 has a NUL as one byte of each pair: most pairs, in a text with
    # other characters too; and a few of them at least, so that a stray NUL in a short line
    # (`\0\x80`, `\0\n`) does not make a file UTF-16
    if b"\0" not in even and odd.count(0) * 2 >= pairs and _ascii(even, odd) >= _MIN_ASCII:
        return "utf-16-le"
    if b"\0" not in odd and even.count(0) * 2 >= pairs and _ascii(odd, even) >= _MIN_ASCII:
        return "utf-16-be"
    return None


def _ascii(low: bytes, high: bytes) -> int:
    """How many of the UTF-16 code units these bytes make are printable ASCII or a line's
    white space; 0 unless one at least is printable (NULs and line ends alone, `\\0\\n`
    lines, are no more UTF-16 than UTF-8)."""
    units = [lo for lo, hi in zip(low, high, strict=True) if not hi and lo in _TEXT_BYTES]
    return len(units) if any(lo > 0x20 for lo in units) else 0


class _Decoded:
    """A stream of text in `encoding`, read as UTF-8."""

    def __init__(self, f: Readable, encoding: str) -> None:
        self._f = f
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")

    def read1(self, size: int = _BLOCK, /) -> bytes:
        while True:
            data = self._f.read1(size if size > 0 else _BLOCK)
            text = self._decoder.decode(data, final=not data)
            if text or not data:
                return text.encode("utf-8", "replace")
