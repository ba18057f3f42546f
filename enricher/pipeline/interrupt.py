"""Ctrl-C, and the interpreter's exit, during a library run in a loop its caller keeps (an
IPython or notebook loop kept across cells, a script's own `run_until_complete`).

Python's default SIGINT handler raises `KeyboardInterrupt` in whatever code the main thread
runs. In such a loop that is often none of the run's (the selector waiting for the network,
aiohttp's callbacks and tasks, the caller's code between items): the exception leaves the
loop, the run's tasks stay suspended, and they go on sending in the next cell. So while a
run goes on a loop in the main thread, and SIGINT has Python's default handler, a handler of
ours takes its place (`watch`): the first Ctrl-C stops every such run at once and puts the
default handler back, so that a second one interrupts as usual. Where SIGINT has another
handler (`asyncio.run`'s, a kernel's, a service's, the `enricher` command's), it is left alone.

A run still suspended when the interpreter exits (its caller's loop stopped by an exception
of the caller's own, or by a Ctrl-C under another handler) is stopped by `at_exit`, and the
tasks left in that loop are cancelled and run to their end, as `asyncio.run` does: collected
half-way in the interpreter's last garbage collection, a coroutine waiting on an
`asyncio.Queue` crashed CPython 3.11 before 3.11.8 (gh-113566: the message of the ValueError
its clean-up raises calls the repr of a Future after `_asyncio` has let go of it).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

__all__ = ["at_exit", "unwatch", "watch"]

#: the stops of the runs watched for Ctrl-C, by a token each: (the run's loop, its stop)
_watched: dict[object, tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = {}
_installed = [False]


def watch(on_ctrl_c: Callable[[], None]) -> object | None:
    """Call `on_ctrl_c` on the running loop at the next Ctrl-C, until `unwatch` is given the
    token returned. None (nothing is watched) outside the main thread or where SIGINT is
    not Python's default's to handle."""
    if threading.current_thread() is not threading.main_thread():
        return None
    loop = asyncio.get_running_loop()
    if not _installed[0]:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None
        signal.signal(signal.SIGINT, _on_sigint)
        _installed[0] = True
    token = object()
    _watched[token] = (loop, on_ctrl_c)
    return token


def unwatch(token: object | None) -> None:
    """The run of `token` has ended: the last one to end puts the default handler back."""
    if token is None or _watched.pop(token, None) is None:
        return
    if not _watched:
        _restore()


def _restore() -> None:
    if not _installed[0] or threading.current_thread() is not threading.main_thread():
        return
    _installed[0] = False
    if signal.getsignal(signal.SIGINT) is _on_sigint:  # not if the caller has put another
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    # runs between two bytecodes of whatever the main thread runs (the loop's own code, a
    # queue's): the stops are handed to the loop, which also wakes it from the selector
    stops = list(_watched.values())
    _watched.clear()
    _restore()
    running = False
    for loop, stop in stops:
        running = running or loop.is_running()
        with contextlib.suppress(RuntimeError):  # that loop has closed: its run is over
            loop.call_soon_threadsafe(stop)
    if not running:
        # the loop is not running (a run left going by an exception, the caller's own code
        # now runs): the runs stop when it runs again, and Ctrl-C interrupts as it would
        raise KeyboardInterrupt


#: the runs going, by a token each: (the run's loop, what stops it there)
_going: dict[object, tuple[asyncio.AbstractEventLoop, Callable[[], Coroutine[Any, Any, None]]]] = {}
_hooked = [False]
#: how long the interpreter's exit waits for a run to stop, and then for the tasks left
EXIT_WAIT = 5.0


def at_exit(token: object, close: Callable[[], Coroutine[Any, Any, None]] | None) -> None:
    """If the interpreter exits while the run of `token` (going on the running loop) is, it
    is stopped by `close()`; `close` None: the run has ended (from anywhere: no loop
    needed)."""
    if close is None:
        _going.pop(token, None)
        return
    _going[token] = (asyncio.get_running_loop(), close)
    if not _hooked[0]:
        _hooked[0] = True
        atexit.register(_stop_what_is_left)


def _stop_what_is_left() -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[Callable[[], Coroutine[Any, Any, None]]]] = {}
    for loop, close in _going.values():
        by_loop.setdefault(loop, []).append(close)
    _going.clear()
    for loop, closes in by_loop.items():
        if loop.is_closed() or loop.is_running():
            continue  # a closed loop runs nothing; one running (in another thread) goes on
        # exiting: an error has nobody to be said to, and does not keep the next step from
        # being taken (Python 3.12 starts no thread at exit: a cache's close may fail)
        for close in closes:
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.wait_for(close(), EXIT_WAIT))
        with contextlib.suppress(BaseException):
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            loop.run_until_complete(
                asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), EXIT_WAIT)
            )
