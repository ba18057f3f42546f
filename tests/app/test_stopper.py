"""The Stopper walks away from the state's coroutines as it does from threads: a signal
during `awaiting` (reading the deferred list), a second signal or the grace period during
`finishing` (saving the state) abandon the call, which is cancelled; otherwise its result
comes back, its error raised."""

from __future__ import annotations

import asyncio

import pytest

from enricher.app import signals
from enricher.app.signals import Stopper
from enricher.threads import Abandoned


async def _never(cancelled: list[bool]) -> int:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(True)
        raise
    return 0


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42


async def _fails() -> int:
    raise OSError("disk gone")


async def test_awaiting_gives_the_result_or_the_error() -> None:
    stopper = Stopper(grace_period=30)
    assert await stopper.awaiting(_answer()) == 42
    with pytest.raises(OSError, match="disk gone"):
        await stopper.awaiting(_fails())
    assert await stopper.finishing(_answer()) == 42


async def test_a_signal_abandons_what_awaiting_waits_for() -> None:
    stopper = Stopper(grace_period=30)
    cancelled: list[bool] = []
    waiting = asyncio.ensure_future(stopper.awaiting(_never(cancelled)))
    await asyncio.sleep(0)
    stopper._on_signal()  # as SIGTERM does, before the pipeline is attached
    with pytest.raises(Abandoned):
        async with asyncio.timeout(5):  # a hang fails here, not after pytest's timeout
            await waiting
    await asyncio.sleep(0)
    assert cancelled == [True]
    with pytest.raises(Abandoned):  # once stopping, nothing more is waited for
        async with asyncio.timeout(5):
            await stopper.awaiting(_never(cancelled))


async def test_finishing_waits_while_stopping_but_not_past_a_second_signal() -> None:
    stopper = Stopper(grace_period=30)
    stopper._on_signal()
    assert await stopper.finishing(_answer()) == 42  # one signal: the state is still saved
    cancelled: list[bool] = []
    saving = asyncio.ensure_future(stopper.finishing(_never(cancelled)))
    await asyncio.sleep(0)
    stopper._on_signal()  # the second: at once
    with pytest.raises(Abandoned):
        async with asyncio.timeout(5):
            await saving
    await asyncio.sleep(0)
    assert cancelled == [True]


async def test_finishing_gives_up_after_the_grace_period_when_stopping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signals, "CLOSING", 0.05)  # the second past it to close the state
    stopper = Stopper(grace_period=0.01)
    stopper._on_signal()
    cancelled: list[bool] = []
    with pytest.raises(Abandoned):
        async with asyncio.timeout(5):
            await stopper.finishing(_never(cancelled))
    await asyncio.sleep(0)
    assert cancelled == [True]


async def test_finishing_waits_after_a_stop_at_once_that_no_second_signal_made() -> None:
    # a run whose outputs took nothing (a pipe nobody reads) or whose grace period ran out
    # stops at once, then closes its state: it was abandoned unawaited ("not closed in time")
    stopper = Stopper(grace_period=30)
    stopper._on_signal()
    stopper.stop_now()  # as the stall watcher and the grace period's end do

    async def closing() -> int:  # a state closed in threads: some turns of the loop
        await asyncio.sleep(0.01)
        return 42

    assert await stopper.finishing(closing()) == 42


class _Pipeline:
    in_flight = 0

    def stop(self, *, now: bool = False) -> None:
        pass


async def test_one_signal_while_the_state_is_closing_still_ends_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the run finished and is closing its state (a Redis that stopped answering, a state file
    # another process holds) when SIGTERM comes: the stop's grace period (and its second to
    # close the state) bounds it as every other stop; it waited for a second signal forever
    monkeypatch.setattr(signals, "CLOSING", 0.05, raising=False)
    stopper = Stopper(grace_period=0.2)
    stopper.attach(_Pipeline(), ())
    cancelled: list[bool] = []
    saving = asyncio.ensure_future(stopper.finishing(_never(cancelled)))
    await asyncio.sleep(0)
    stopper._on_signal()
    with pytest.raises(Abandoned):
        async with asyncio.timeout(5):
            await saving
    await asyncio.sleep(0)
    assert cancelled == [True]
    stopper.__exit__(None, None, None)


async def test_a_state_closed_past_the_grace_period_has_a_second_not_another_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # grace period over, requests still in flight: stop_now, then the state is closed; the
    # stop took the grace period twice over (a fresh one for closing the state), not the grace
    # period and a second (the README: "never later than the grace period")
    monkeypatch.setattr(signals, "CLOSING", 0.1, raising=False)
    stopper = Stopper(grace_period=1.0)
    stopper.attach(_Pipeline(), ())
    loop = asyncio.get_running_loop()
    began = loop.time()
    stopper._on_signal()
    await asyncio.sleep(1.05)  # the grace period's end stopped it at once
    with pytest.raises(Abandoned):
        async with asyncio.timeout(5):
            await stopper.finishing(_never([]))
    assert loop.time() - began < 1.5
    stopper.__exit__(None, None, None)
