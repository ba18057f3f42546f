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
        code = 3
    else:
        code = cli_main()
    _forget_handled_interrupt()
    return code


def _forget_handled_interrupt() -> None:
    """CPython 3.11 marks a KeyboardInterrupt that leaves an `eval` or `exec` of a string
    (a namedtuple or a dataclass being made while modules load) as unhandled, even once
    caught, and then ends the process by SIGINT (-2, 130) instead of with its exit code:
    seen 2 times in 14 with a SIGTERM at start-up. Any later `eval` of a string clears it."""
    eval("None")  # a constant: only its side effect on the interpreter is wanted


if __name__ == "__main__":
    raise SystemExit(main())
