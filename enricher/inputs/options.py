"""How to read the inputs: `InputOptions`, and the `enricher run` flags that fill it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from ..errors import SettingsError
from .fieldpath import FieldPath, parse_field

__all__ = ["FORMATS", "InputOptions", "add_arguments", "input_options"]

FORMATS = ("lines", "csv", "tsv", "ndjson", "json", "text", "auto")


@dataclass(frozen=True, kw_only=True)
class InputOptions:
    """How to read the inputs (`enricher run` flags). How each input was read comes back in
    the `read_as` mapping the caller gives `read_inputs`, never in here.

    `columns` (CSV/TSV) are names or 1-based indexes; `fields` (NDJSON/JSON) are paths such
    as `answers[*].rdata`. Both empty: every cell or string value is scanned for IOCs.
    """

    format: str = "lines"
    columns: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    #: `fields`, parsed
    field_paths: tuple[FieldPath, ...] = field(init=False, repr=False, default=())

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise SettingsError(
                f"--format must be one of {', '.join(FORMATS)} (got {self.format!r})"
            )
        if self.columns and self.format not in ("csv", "tsv", "auto"):
            raise SettingsError("--column reads CSV or TSV: use it with --format csv, tsv or auto")
        if self.fields and self.format not in ("ndjson", "json", "auto"):
            raise SettingsError("--field reads JSON: use it with --format ndjson, json or auto")
        for col in self.columns:
            if not col.strip():
                raise SettingsError("--column needs a column name or a number from 1")
            if col.isdigit() and int(col) < 1:
                raise SettingsError(f"--column {col}: columns are numbered from 1")
        paths: list[FieldPath] = []
        for text in self.fields:
            try:
                paths.append(parse_field(text))
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
        object.__setattr__(self, "field_paths", tuple(paths))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `enricher run` flags that choose how inputs are read."""
    group = parser.add_argument_group("input formats")
    group.add_argument(
        "--format",
        choices=FORMATS,
        default="lines",
        help="how inputs are written (default: lines, one IOC a line; auto: told by each"
        " file's extension and content); compressed input (gz, bz2, xz, zst) is always read",
    )
    group.add_argument(
        "--column",
        action="append",
        metavar="NAME_OR_INDEX",
        help="CSV/TSV: read only this column (a header name, or a number from 1); repeatable;"
        " default: every cell is scanned for IOCs",
    )
    group.add_argument(
        "--field",
        action="append",
        metavar="PATH",
        help="NDJSON/JSON: read only the values at this path (process.hash.md5,"
        " answers[*].rdata); repeatable; default: every string value is scanned for IOCs",
    )


def input_options(args: argparse.Namespace) -> InputOptions:
    """The input options the parsed `enricher run` flags ask for."""
    return InputOptions(
        format=args.format,
        columns=tuple(args.column or ()),
        fields=tuple(args.field or ()),
    )
