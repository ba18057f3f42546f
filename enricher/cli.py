"""The `enricher` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enricher",
        description="Bulk IOC reputation enrichment against the Cybereason GTI API.",
    )
    parser.add_argument("--version", action="version", version=f"enricher {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .emulator.cli import add_parser as add_emulator_parser

    add_emulator_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
