"""`enricher` and `python -m enricher`: signal handlers first, then everything else.

Loading the program (aiohttp, the engine) takes a few tenths of a second; a SIGTERM in that
time must still end it with one line and exit 3, not a silent exit 143 (see `lifecycle`).
"""

from __future__ import annotations

from .app import lifecycle

__all__ = ["main"]


def main() -> int:
    lifecycle.install()
    from .app.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
