"""The rate limiter shared through a real redis-server: turns evenly spaced across OS processes
(no start-up burst, the total rate within a few % of the configured one), and AIMD shared
(a 429 in one process halves the rate the others are paced at; successes bring it back)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from enricher.api.identity import ApiIdentity
from enricher.state.redis.connection import SharedState
from enricher.state.redis.limiter import RedisLimiter

API = ApiIdentity("https://gti.example/rest/classification_v1")
WORKER = Path(__file__).with_name("redis_worker.py")


def _start(what: str, **args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), what, json.dumps(args)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.serial
def test_three_processes_share_one_pace(redis_url: str, prefix: str) -> None:
    rate, n = 20.0, 30
    interval = 1 / rate
    start = time.time() + 2.5  # every process connected and waiting by then
    procs = [_start("acquire", url=redis_url, prefix=prefix, rate=rate, n=n, start=start)
             for _ in range(3)]  # fmt: skip
    results = [_result(p) for p in procs]
    turns = sorted(t for r in results for t in r["turns"])
    assert len(turns) == len(set(turns)) == 3 * n
    # the server handed the turns out exactly one interval apart, from the first on: no
    # start-up burst, no two closer than the interval
    gaps = [b - a for a, b in itertools.pairwise(turns)]
    assert min(gaps) >= interval * 1e6 - 1, min(gaps)
    assert max(gaps) <= interval * 1e6 + 1, max(gaps)  # and none left unused
    # each process took its turns when they came, never before (redis-server's TIME and
    # the processes' time.time() are one clock here), and late only by the scheduler's
    # wake-up (up to ~30 ms on this 2-core machine under a load of 7)
    late = sorted(
        t - turn / 1e6 for r in results for t, turn in zip(r["times"], r["turns"], strict=True)
    )
    assert late[0] > -0.001, late[0]
    assert late[len(late) // 2] < 0.005, late
    # ... so the rate measured across the three processes is the rate
    times = sorted(t for r in results for t in r["times"])
    measured = (len(times) - 1) / (times[-1] - times[0])
    assert abs(measured - rate) / rate < 0.03, measured
    # no start-up burst as taken either: the first second holds at most `rate` + 1 turns
    assert sum(1 for t in times if t < times[0] + 1.0) <= rate + 1


async def test_a_429_in_one_process_slows_the_others(redis_url: str, prefix: str) -> None:
    state = await SharedState.connect(redis_url, prefix=prefix)
    try:
        limiter = RedisLimiter(state, await state.admit(API), 20.0)
        await limiter.acquire()
        # two 429s within the window, in another process: the shared rate is halved once
        other = _result(_start("429", url=redis_url, prefix=prefix, rate=20.0, n=2))
        assert other["rate"] == 10.0 and other["changes"] == ["429s from server"]
        await limiter.acquire()
        first = limiter.last_turn
        await limiter.acquire()
        assert limiter.last_turn - first == pytest.approx(100_000, abs=1)  # 1 / 10 s apart
        assert limiter.rate == 10.0
        assert [c.reason for c in limiter.changes] == ["429s from server (another job)"]
        # within the cooldown, more 429s (this process's own) do not halve it again
        limiter.rate_limited()
        limiter.rate_limited()
        await limiter.aclose()
        assert limiter.rate == 10.0
        # answers without 429 bring it back: step (5% of 20/s) per second of answers
        for _ in range(12):
            limiter.succeeded()
        await limiter.acquire()
        assert 11 < limiter.rate < 11.3  # 12 answers at ~10/s: ~1.2 s of climbing
        assert limiter.changes[-1].reason == "recovering"
    finally:
        await state.aclose()


async def test_a_job_at_a_lower_rate_leaves_no_lower_rate_behind(
    redis_url: str, prefix: str
) -> None:
    # an `enricher lookup --rate 1` that ended must not hold the nightly jobs near 1/s
    state = await SharedState.connect(redis_url, prefix=prefix)

    async def no_wait(seconds: float) -> None:
        pass

    try:
        namespace = await state.admit(API)
        slow = RedisLimiter(state, namespace, 1.0, sleep=no_wait)
        await slow.acquire()
        await slow.aclose()
        fast = RedisLimiter(state, namespace, 20.0, sleep=no_wait)
        await fast.acquire()
        first = fast.last_turn
        await fast.acquire()
        assert fast.last_turn - first == pytest.approx(50_000, abs=1)  # 1 / 20 s apart
        assert fast.rate == 20.0 and fast.changes == []
        await fast.aclose()
    finally:
        await state.aclose()


async def test_no_limit_asks_nothing(redis_url: str, prefix: str) -> None:
    state = await SharedState.connect(redis_url, prefix=prefix)
    try:
        limiter = RedisLimiter(state, state.namespace(API), 0)
        assert limiter.ready()
        for _ in range(100):
            await limiter.acquire()
        assert await state.client.exists(limiter.key) == 0
    finally:
        await state.aclose()


async def test_a_turn_makes_again_the_key_identities_are_hashed_under(
    redis_url: str, prefix: str
) -> None:
    # evicted (a full Redis under allkeys-lru) or flushed: a job starting next would make
    # another, hence another fingerprint: another limiter, budget and answers than ours
    state = await SharedState.connect(redis_url, prefix=prefix)
    try:
        limiter = RedisLimiter(state, await state.admit(API), 1000.0)
        await state.client.delete(f"{prefix}:key")
        await limiter.acquire()
        assert await state.client.get(f"{prefix}:key") == state.identity_key
        await limiter.aclose()
    finally:
        await state.aclose()
