"""What a signal does to the `enricher` process outside a run's own handlers.

A run answers SIGINT, SIGTERM and SIGHUP itself (`signals.Stopper`: stop gracefully, then at
once). Before it has installed its handlers (the interpreter loading aiohttp and the engine,
the command line being read) and after it has removed them (the summary printed, the process
on its way out), the handlers here apply instead:

- before the run: nothing has been opened or written, so the process says so in one line and
  exits 3 at once;
- after the run: its outputs are complete and its exit code decided: the process exits with
  that code at once.

Both exit with `os._exit`, from the handler. Last, once `atexit` runs, these signals are
ignored: the interpreter's own finalisation puts back the default action of every signal that
has a Python handler (a SIGTERM then killed a finished run, exit 143), but leaves an ignored one
ignored; what is left to do is tear-down, and the process exits with its code.

Why `os._exit` and not an exception: one raised at an arbitrary point (a
KeyboardInterrupt in the middle of importing a C extension, or of asyncio's own shutdown)
left tracebacks, exit codes of 130 and even a segmentation fault. Kept free of heavy imports:
the console script installs these first.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from types import FrameType

__all__ = ["SIGNALS", "finished", "install", "installed"]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_state: dict[str, int | bool | None] = {"installed": False, "code": None}


def _handler(signum: int, frame: FrameType | None) -> None:
    code = _state["code"]
    if isinstance(code, int):
        os._exit(code)
    os.write(2, b"enricher: interrupted before the run started; run the same command again\n")
    os._exit(3)


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP as above (the main thread of the `enricher`
    command only: never in a program that imports enricher as a library)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _handler)
        _state["installed"] = True
        atexit.register(_ignore)


def _ignore() -> None:
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def installed() -> bool:
    return bool(_state["installed"])


def finished(code: int) -> None:
    """The run is over and exits with `code`: a signal from now on exits with it at once."""
    _state["code"] = code
