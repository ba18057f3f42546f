"""The daily budget, the spent quota and the deferred lists shared through a real
redis-server: never over the budget under concurrent reservations from several processes;
the quota only moves later; a job's deferred list replaced whole, per job and identity."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from enricher.api.identity import ApiIdentity
from enricher.ioc import IocType
from enricher.state.redis.budget import RedisBudget
from enricher.state.redis.connection import SharedState
from enricher.state.redis.deferred import RedisDeferred

API = ApiIdentity("https://gti.example/rest/classification_v1")
STAGING = ApiIdentity("https://staging.gti.example/rest/classification_v1")
WORKER = Path(__file__).with_name("redis_worker.py")


@pytest.fixture
async def state(redis_url: str, prefix: str) -> AsyncIterator[SharedState]:
    shared = await SharedState.connect(redis_url, prefix=prefix)
    yield shared
    await shared.aclose()


def test_the_budget_is_never_overrun_by_concurrent_processes(redis_url: str, prefix: str) -> None:
    daily = 50
    start = time.time() + 3.0  # every process started by then
    args = {"url": redis_url, "prefix": prefix, "n": 40, "tries": 10, "daily": daily}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "reserve", json.dumps({**args, "start": start})],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    granted = [json.loads(p.communicate(timeout=60)[0])["granted"] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # 120 asked at once, 10 in flight in each process: exactly the budget granted in all
    assert sum(granted) == daily, granted
    assert sum(1 for g in granted if g) >= 2, granted  # they did reserve at the same time


async def test_counts_reservations_and_the_rest_per_identity_and_day(
    state: SharedState,
) -> None:
    budget = RedisBudget(state, state.namespace(API))
    other = RedisBudget(state, state.namespace(STAGING))
    assert [await budget.reserve(3) for _ in range(4)] == [True, True, True, False]
    budget.count_soon(5)  # sent without a daily budget: counted in the background
    await budget.aclose()
    assert await budget.requests_today() == 8
    assert await other.requests_today() == 0 and await other.reserve(1)
    # the day's count expires at the end of the server's UTC day
    (key,) = [k async for k in state.client.scan_iter(f"{budget.key}:*")]
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert key.decode() == f"{budget.key}:{day}"
    expires = await state.client.expiretime(key)
    assert expires % 86400 == 0 and 0 < expires - time.time() <= 86400


async def test_the_quota_only_moves_later(state: SharedState) -> None:
    budget = RedisBudget(state, state.namespace(API))
    assert await budget.quota_until(3600) is None
    until = time.time() + 600
    await budget.set_quota_until(until)
    await budget.set_quota_until(until - 300)  # an earlier time changes nothing
    assert await budget.quota_until(3600) == pytest.approx(until)
    assert await budget.quota_until(60) == pytest.approx(time.time() + 60, abs=1)
    assert await RedisBudget(state, state.namespace(STAGING)).quota_until(3600) is None
    await budget.set_quota_until(time.time() - 1)
    assert await budget.quota_until(3600) == pytest.approx(until)


async def test_deferred_lists_are_per_job_and_identity(state: SharedState) -> None:
    ours = RedisDeferred(state, state.namespace(API))
    theirs = RedisDeferred(state, state.namespace(STAGING))
    assert await ours.read("nightly") == []
    items = [("domain", f"d{i}.example.com", "budget spent") for i in range(2500)]
    await ours.replace("nightly", [("ipv4", "192.0.2.1", "stopped"), *items])
    await ours.replace("weekly", [("sha256", "a" * 64, "quota")])
    got = await ours.read("nightly")
    assert got[0] == (IocType("ipv4"), "192.0.2.1") and len(got) == 2501
    assert got[-1] == (IocType("domain"), "d2499.example.com")
    assert await theirs.read("nightly") == []
    await ours.replace("nightly", [("domain", "x.example.com", "stopped\twith a tab")])
    assert await ours.read("nightly") == [(IocType("domain"), "x.example.com")]
    await ours.replace("nightly", [])
    assert await ours.read("nightly") == [] and len(await ours.read("weekly")) == 1


async def test_one_job_on_two_hosts_at_once_keeps_both_deferred_parts(
    state: SharedState,
) -> None:
    # the same --job on two hosts: each takes out of the list what it read (and asked), and
    # adds what it deferred; the other's additions stay (a plain replacement lost them)
    first, second = (RedisDeferred(state, state.namespace(API)) for _ in range(2))
    await first.replace("nightly", [("ipv4", "192.0.2.1", "stopped")])
    assert await first.read("nightly") == await second.read("nightly") != []
    await first.replace("nightly", [("domain", "a.example.com", "budget spent")])
    await second.replace("nightly", [("domain", "b.example.com", "budget spent"),
                                     ("ipv4", "192.0.2.1", "budget spent")])  # fmt: skip
    third = RedisDeferred(state, state.namespace(API))
    assert sorted(ioc for _, ioc in await third.read("nightly")) == [
        "192.0.2.1", "a.example.com", "b.example.com"
    ]  # fmt: skip
