"""Ctrl-C during a library run in a loop the caller keeps (`pipeline.interrupt`); the runs
themselves are in tests/app/test_library.py."""

from __future__ import annotations

import asyncio
import signal

import pytest

from enricher.pipeline.interrupt import unwatch, watch


def test_ctrl_c_with_the_loop_not_running_interrupts_as_usual() -> None:
    """A run left going while the caller's own code runs (its loop stopped): Ctrl-C raises
    KeyboardInterrupt there as Python's handler would, the run is stopped when the loop runs
    again, and Python's handler is back."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a handler of the test runner's")
    loop = asyncio.new_event_loop()
    stopped: list[int] = []

    async def start() -> object | None:
        return watch(lambda: stopped.append(1))

    try:
        token = loop.run_until_complete(start())
        assert token is not None
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert stopped == []
        loop.run_until_complete(asyncio.sleep(0))
        assert stopped == [1]
        unwatch(token)
    finally:
        loop.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_a_handler_of_the_callers_is_left_alone() -> None:
    loop = asyncio.new_event_loop()

    def mine(signum: int, frame: object) -> None: ...

    before = signal.signal(signal.SIGINT, mine)

    async def start() -> object | None:
        return watch(lambda: None)

    try:
        assert loop.run_until_complete(start()) is None
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        loop.close()
        signal.signal(signal.SIGINT, before)
