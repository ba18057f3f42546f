"""Text on the page: HTML-escaped, and short.

A server's string can be as long as its answer (tens of MiB): the page shows the first
`MAX_TEXT` characters and an ellipsis (the records file keeps it whole), so that a label
repeated in a chart, its tooltip and a table cannot make the page gigabytes. NUL, which
HTML does not allow, is shown as U+FFFD as a browser would.
"""

from __future__ import annotations

import html

__all__ = ["MAX_TEXT", "escape"]

#: characters of a string the page shows at most
MAX_TEXT = 500


def escape(text: str) -> str:
    """`text` cut at `MAX_TEXT` characters (with "…"), NUL-free, escaped for HTML."""
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "…"
    return html.escape(text.replace("\0", "\ufffd"))
