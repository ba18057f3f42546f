"""Text a server (or an input) sent, made harmless to show on a terminal.

A terminal runs what it is sent: ESC starts a sequence that can clear the screen, retitle the
window or make a link point elsewhere (OSC 8), CR overwrites what is shown, LF makes a row of
its own, and the C1 controls (U+0080-U+009F) are escapes of their own on some terminals.
Bidirectional overrides reorder what follows them. Each of these is written as a visible
escape (`\\x1b`, `\\u202e`) instead, so the text is still all there, and inert.

JSON for a terminal (`enricher lookup --json`) is made inert without changing what it says:
the encoder already escapes C0 controls, and `inert_json` writes the C1 controls and the
bidirectional overrides, which JSON lets through as they are, as `\\u` escapes too.
"""

from __future__ import annotations

import re

__all__ = ["CONTROLS", "inert", "inert_json"]

#: the characters a terminal acts on: C0, DEL, C1, and the bidirectional overrides
CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in CONTROLS}


def inert(text: str) -> str:
    """`text` with every control character (and bidirectional override) written as a visible
    escape: safe to print on a terminal, on one line."""
    return text.translate(_ESCAPES) if not text.isprintable() else text


#: the UTF-8 of the controls JSON does not escape: DEL, C1, the bidirectional overrides
_RAW_IN_JSON = re.compile(b"|".join(re.escape(chr(c).encode()) for c in CONTROLS if c >= 0x7F))


def inert_json(doc: bytes) -> bytes:
    """UTF-8 JSON `doc` (C0 controls already escaped, as every encoder does) with DEL, the C1
    controls and the bidirectional overrides written as `\\u` escapes: the same JSON value,
    safe to print on a terminal."""
    return _RAW_IN_JSON.sub(lambda m: b"\\u%04x" % ord(m[0].decode()), doc)
