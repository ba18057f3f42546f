"""`enricher report OUT.ndjson [-o report.html]`: a run's results as one HTML page.

The page stands alone: styles and charts (hand-made SVG) are inline, it has no script, and
its Content-Security-Policy forbids every fetch, so it opens the same from a mail, a share
or an air-gapped desk. `figures` reads the run's files, `page` lays them out, `charts`
draws.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..files import (
    STDOUT,
    check_new,
    check_not_among,
    is_file_path,
    plan_outputs,
    write_stdout,
    write_whole,
)
from .figures import Figures, read_figures
from .page import render

__all__ = ["Figures", "read_figures", "render", "write_report"]

log = logging.getLogger("enricher")


def write_report(
    output: str, destination: str | None, manifest: str | None = None, *, force: bool = False
) -> str:
    """Read the run whose records are `output`, write its page to `destination` (default:
    beside it, `.html` for its suffix; `-`: standard output); where it went. SettingsError
    (nothing written) when the page would replace a file of the run (its records, side files
    or manifest), or an existing file without `force`."""
    figures = read_figures(output, manifest=manifest)
    target = destination or str(Path(output).with_suffix(".html"))
    if target != STDOUT:
        flag = "-o" if destination else "the report"
        check_not_among(flag, target, _run_files(figures))
        if not force:
            check_new([target], hint="add --force to replace it")
    if figures.unreadable:  # the page says so too, but a scheduled job reads only stderr
        log.warning(
            "warning: %s line%s of %s %s no record and %s skipped",
            f"{figures.unreadable:,}", "" if figures.unreadable == 1 else "s", output,
            "is" if figures.unreadable == 1 else "are",
            "was" if figures.unreadable == 1 else "were",
        )  # fmt: skip
    # a run named in bytes that are not UTF-8 (surrogates in `output`) is shown escaped
    html = render(figures).encode(errors="backslashreplace")
    if target == STDOUT:
        write_stdout(html)
        return "standard output"
    write_whole(target, html)
    return target


def _run_files(figures: Figures) -> dict[str, str]:
    """The files of the run a report must never replace (path: what it is): its records, the
    side files beside them or named by its manifest, the manifest."""
    output = figures.output
    kept = {output: "the records file read"}
    if is_file_path(output):
        planned = plan_outputs(
            output, failed=None, rejects=None, deferred=None, skipped=None, inputs=[], resume=False
        )
        kept.update(dict.fromkeys(planned.side, "a side file of the run"))
    if figures.manifest_path is not None:
        kept[figures.manifest_path] = "the run's manifest"
    outputs = (figures.manifest or {}).get("outputs")
    if isinstance(outputs, dict):
        here = os.path.dirname(os.path.abspath(figures.manifest_path or output))
        for path in outputs.values():
            if isinstance(path, str) and path:
                kept.setdefault(os.path.join(here, path), "a file of the run")
    return kept
