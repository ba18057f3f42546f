"""`enricher` and `python -m enricher`: signal handlers first, then everything else.

Loading the program (aiohttp, the engine) takes a few tenths of a second; a SIGTERM or SIGHUP
in that time would kill it with no word. They are made to interrupt as SIGINT does before
anything heavy is imported; the run installs its own once it starts.
"""

from __future__ import annotations

import signal
import sys
import threading

__all__ = ["main"]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("enricher: interrupted before the run started; run the same command again",
              file=sys.stderr)  # fmt: skip
        return 3
    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
