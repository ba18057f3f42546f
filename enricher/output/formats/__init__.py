"""Output formats of the records file (`--output-format`): one small writer per format.

Records are made as NDJSON lines (schema v1, `enricher.output.records`), which the cache keeps and
the engine hands over; a writer turns each batch of them into its format, in the records
file's writer thread (`enricher.output.files.OutputFile`), never on the event loop. Failures,
rejects and deferred IOCs stay NDJSON whatever the format.

- `ndjson`: the records as they are; a batch a write; `--resume` continues it.
- `csv`: a header row, flat columns (RFC 4180); a batch a write; resumable.
- `ecs`: Elastic Common Schema documents for `_bulk` (action line + document); resumable.
- `stix`: one STIX 2.1 bundle (`stix2`, extra `enricher[stix]`), and `misp`: one MISP event
  (`pymisp`, extra `enricher[misp]`): objects streamed as they come, the document closed at
  the end of the run, so a killed run cannot be resumed.
- `stix-lines`: STIX 2.1 bundles of at most 1,000 indicators and 4 MiB, one a line, each
  complete: for platforms that take bundles of a limited size; resumable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ...errors import SettingsError
from ...lazy import lazy_names

if TYPE_CHECKING:
    from .base import RecordWriter, first_line

__all__ = [
    "FORMATS",
    "RESUMABLE",
    "RecordWriter",
    "check_resumable",
    "first_line",
    "record_writer",
]

FORMATS = ("ndjson", "csv", "ecs", "stix", "stix-lines", "misp")
#: formats whose file is complete after every batch: a killed run can be continued
RESUMABLE = frozenset({"ndjson", "csv", "ecs", "stix-lines"})
_EXTRA = {"stix": ("stix2", "stix"), "stix-lines": ("stix2", "stix"), "misp": ("pymisp", "misp")}


def check_resumable(name: str) -> None:
    """Refuse (SettingsError) `--resume` of a format written as one document."""
    if name not in RESUMABLE:
        raise SettingsError(
            f"--resume: a {name} output is one document, closed at the end of its run, so it "
            "cannot be continued; run again with --force, or write a job to resume as "
            "ndjson, csv, ecs or stix-lines"
        )


def record_writer(
    name: str, *, with_source: bool = False, now: Callable[[], datetime] | None = None
) -> RecordWriter:
    """The writer of format `name`. `now` (the time written into ECS documents and STIX
    objects) is for tests. Raises SettingsError for an unknown format, or one whose library
    is not installed."""
    try:
        if name == "ndjson":
            from .ndjson import NdjsonWriter

            return NdjsonWriter()
        if name == "csv":
            from .csv import CsvWriter

            return CsvWriter(with_source=with_source)
        if name == "ecs":
            from .ecs import EcsWriter

            return EcsWriter(now=now)
        if name == "stix":
            from .stix import StixWriter

            return StixWriter(now=now)
        if name == "stix-lines":
            from .stix import StixLinesWriter

            return StixLinesWriter(now=now)
        if name == "misp":
            from .misp import MispWriter

            return MispWriter(now=now)
    except ImportError as exc:
        library, extra = _EXTRA.get(name, (str(exc.name), name))
        raise SettingsError(
            f"--output-format {name} needs the {library} library: pip install 'enricher[{extra}]'"
        ) from None
    raise SettingsError(f"--output-format: one of {', '.join(FORMATS)} (got {name!r})")


# `RecordWriter` and `first_line` are imported on first use (PEP 562): the command line needs
# the names of the formats alone
__getattr__, __dir__ = lazy_names(__name__, {"RecordWriter": "base", "first_line": "base"}, __all__)
