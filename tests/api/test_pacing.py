"""The `Pacer` under the limiter: turns in order, its catch-up slack, a rate changed while a
turn is waited for. On a clock of its own (`FakeTime`), except where the event loop's timers
are what is tested (a few milliseconds)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from fake_time import FakeTime

from enricher.api.ratelimit import CATCH_UP, AdaptiveLimiter, Pacer


async def turns(pacer: Pacer, clock: FakeTime, n: int) -> list[tuple[int, float]]:
    """(who, when) for `n` tasks asking for a turn at once, in the order they got it."""
    got: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await pacer.acquire()
        got.append((i, clock()))

    await asyncio.gather(*(one(i) for i in range(n)))
    return got


async def test_turns_come_in_the_order_asked_one_interval_apart() -> None:
    clock = FakeTime()
    got = await turns(Pacer(10, 0.0, clock=clock, sleep=clock.sleep), clock, 6)
    assert [who for who, _ in got] == list(range(6))
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(got)]
    assert gaps == pytest.approx([0.1] * 5)


async def test_the_slack_lets_a_late_turn_catch_up_but_never_two_at_once() -> None:
    clock = FakeTime()
    pacer = Pacer(10, 0.25, clock=clock, sleep=clock.sleep)
    await pacer.acquire()
    assert not pacer.ready()  # never two at once, not even the first two
    clock.now += 0.3  # the next turn was asked for late (a busy loop)
    assert pacer.ready()
    await pacer.acquire()
    # the lateness is made up, at most `slack` of an interval at a time: the next turn is
    # due 0.075 s later, not a whole interval
    start = clock()
    await pacer.acquire()
    assert clock() - start == pytest.approx(0.075)
    start = clock()
    await pacer.acquire()
    assert clock() - start == pytest.approx(0.1)


async def test_a_lower_rate_stretches_the_wait_already_begun() -> None:
    clock = FakeTime()
    pacer = Pacer(10, 0.0, clock=clock, sleep=clock.sleep)
    await pacer.acquire()  # the next is due in 0.1 s
    clock.now += 0.04
    pacer.set_rate(5)  # 0.06 s were left: at half the rate, 0.12 s
    start = clock()
    await pacer.acquire()
    assert clock() - start == pytest.approx(0.12)
    assert pacer.rate == 5


async def test_a_turn_given_up_passes_to_the_next() -> None:
    clock = FakeTime()
    pacer = Pacer(10, 0.0, clock=clock, sleep=clock.sleep)
    await pacer.acquire()
    waiting = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    waiting.cancel()  # a run that stops gives up its wait
    with pytest.raises(asyncio.CancelledError):
        await waiting
    start = clock()
    await asyncio.wait_for(pacer.acquire(), 1)
    assert clock() - start <= 0.1 + 1e-9


def test_a_pacer_needs_a_rate_and_less_than_one_interval_of_slack() -> None:
    for rate, slack in ((0, 0.1), (-1, 0.1), (10, 1.0), (10, -0.1)):
        with pytest.raises(ValueError, match="rate > 0"):
            Pacer(rate, slack, clock=lambda: 0.0)


# -- on the event loop's timers, as a run paces -----------------------------------------------


async def test_on_the_loops_timers_turns_are_an_interval_apart() -> None:
    loop = asyncio.get_running_loop()
    rate = 250.0
    limiter = AdaptiveLimiter(rate)
    times = []
    for _ in range(6):
        await limiter.acquire()
        times.append(loop.time())
    slack = CATCH_UP * rate
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= (1 - slack) / rate * 0.95, gaps
    assert times[-1] - times[0] >= (5 - slack) / rate * 0.95


async def test_a_higher_rate_ends_the_wait_on_the_loops_timer_at_once() -> None:
    loop = asyncio.get_running_loop()
    pacer = Pacer(0.5, 0.0)  # turns 2 s apart
    await pacer.acquire()
    waiting = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    start = loop.time()
    pacer.set_rate(100)  # what is left of the 2 s shrinks to about 10 ms
    await asyncio.wait_for(waiting, 1)
    assert loop.time() - start < 0.5
