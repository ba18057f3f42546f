"""`enricher report OUT.ndjson [-o report.html]`: a run's results as one HTML page.

The page stands alone: styles and charts (hand-made SVG) are inline, it has no script, and
its Content-Security-Policy forbids every fetch, so it opens the same from a mail, a share
or an air-gapped desk. `figures` reads the run's files, `page` lays them out, `charts`
draws.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..outputs import write_whole
from .figures import Figures, read_figures
from .page import render

__all__ = ["Figures", "read_figures", "render", "write_report"]


def write_report(output: str, destination: str | None, manifest: str | None = None) -> str:
    """Read the run whose records are `output`, write its page to `destination` (default:
    beside it, `.html` for its suffix; `-`: standard output); where it went."""
    html = render(read_figures(output, manifest=manifest)).encode()
    if destination == "-":
        sys.stdout.buffer.write(html)
        sys.stdout.flush()
        return "standard output"
    target = destination or str(Path(output).with_suffix(".html"))
    write_whole(target, html)
    return target
