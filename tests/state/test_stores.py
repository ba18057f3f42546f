"""The state's Protocols, one contract for every implementation (the SQLite file's views and
the dicts of `memory`): answers by identity and endpoint, served as hits; a daily budget
that is exact under concurrent reservations; a spent quota; a deferred list replaced whole;
and, in the SQLite file, the blocking work off the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import line_of

from enricher.api.identity import ApiIdentity
from enricher.ioc import Endpoint, IocType
from enricher.state.answers import Cache
from enricher.state.budget import SqliteBudget
from enricher.state.deferred import SqliteDeferred
from enricher.state.memory import MemoryAnswers, MemoryBudget, MemoryDeferred
from enricher.state.ports import AnswerStore, BudgetStore, DeferredList

API = ApiIdentity("https://gti.example/rest/classification_v1")
STAGING = ApiIdentity("https://staging.gti.example/rest/classification_v1")


@dataclass
class State:
    answers: AnswerStore
    budget: BudgetStore
    deferred: DeferredList
    requests_today: Any  # () -> int
    now: list[float]  # the stores' clock


@pytest.fixture(params=["sqlite", "memory"])
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[State]:
    now = [time.time()]

    def clock() -> float:
        return now[0]

    if request.param == "sqlite":
        cache = Cache(
            tmp_path / "c.sqlite3", max_ttl=3600, default_ttl=3600, identity=API, clock=clock
        )
        cache.admit(STAGING)
        yield State(cache, SqliteBudget(cache), SqliteDeferred(cache), cache.requests_today, now)
        await cache.aclose()
    else:
        answers = MemoryAnswers(max_ttl=3600, default_ttl=3600, clock=clock)
        answers.bind(API)
        budget = MemoryBudget(clock=clock)
        yield State(answers, budget, MemoryDeferred(), budget.requests_today, now)


async def test_answers_are_served_as_hits_to_their_identity(state: State) -> None:
    store = state.answers
    assert await store.unanswered_endpoints(identity=None) == set(Endpoint)
    keys = [f"d{i}.example.com" for i in range(5)]
    await store.store_soon(
        Endpoint.DOMAIN, [(k, "malicious", line_of(k), None) for k in keys], identity=None
    )
    await store.store_soon(
        Endpoint.DOMAIN, [("d0.example.com", "benign", line_of("d0.example.com"), None)],
        identity=STAGING,
    )  # fmt: skip
    assert await store.unanswered_endpoints(identity=None) == {Endpoint.FILE, Endpoint.IP}
    found = await store.answers(
        {Endpoint.DOMAIN: [*keys, "other.example.com"], Endpoint.IP: ["1.2.3.4"]}, identity=None
    )
    assert set(found[Endpoint.DOMAIN]) == set(keys) and not found.get(Endpoint.IP)
    verdict, _, line = found[Endpoint.DOMAIN]["d3.example.com"]
    assert verdict == "malicious" and line == line_of("d3.example.com").replace(b"false}", b"true}")
    theirs = await store.answers({Endpoint.DOMAIN: keys}, identity=STAGING)
    assert set(theirs[Endpoint.DOMAIN]) == {"d0.example.com"}
    assert theirs[Endpoint.DOMAIN]["d0.example.com"][0] == "benign"
    store.tally(misses=4, hits=-1)
    report = store.report()
    assert report["hits"] == 5 + 1 - 1 and report["stored"] == 6


async def test_an_answer_expires_with_its_ttl(state: State) -> None:
    store = state.answers
    await store.store_soon(
        Endpoint.DOMAIN,
        [("short.example.com", "benign", line_of("short.example.com"), 1),  # 1 ms
         ("long.example.com", "benign", line_of("long.example.com"), 600_000)],
        identity=None,
    )  # fmt: skip
    await store.unanswered_endpoints(identity=None)  # stored
    state.now[0] += 2  # rows count whole seconds
    found = await store.answers(
        {Endpoint.DOMAIN: ["short.example.com", "long.example.com"]}, identity=None
    )
    assert set(found[Endpoint.DOMAIN]) == {"long.example.com"}


async def test_reservations_never_pass_the_daily_budget(state: State) -> None:
    taken = await asyncio.gather(*(state.budget.reserve(10) for _ in range(25)))
    assert sum(taken) == 10
    state.budget.count_soon(3)  # sent without a reservation: counted too, soon (SQLite:
    # by the cache's writer thread, which a loaded machine may run after the next reserve)
    for _ in range(500):
        if state.requests_today() == 13:
            break
        await asyncio.sleep(0.01)
    assert not await state.budget.reserve(13)
    assert await state.budget.reserve(14)
    await state.answers.unanswered_endpoints(identity=None)  # what was queued, written
    assert state.requests_today() == 14


async def test_a_spent_quota_is_kept_and_capped(state: State) -> None:
    assert await state.budget.quota_until(3600) is None
    until = state.now[0] + 7200
    await state.budget.set_quota_until(until)
    await state.budget.set_quota_until(until - 100)  # an earlier end does not shorten it
    assert await state.budget.quota_until(86400) == pytest.approx(until)
    capped = await state.budget.quota_until(60)
    assert capped == pytest.approx(state.now[0] + 60)
    state.now[0] = until + 1
    assert await state.budget.quota_until(86400) is None


async def test_a_deferred_list_is_replaced_whole(state: State) -> None:
    lists = state.deferred
    assert await lists.read("nightly") == []
    await lists.replace("nightly", [("domain", "a.example.com", "stopped"),
                                    ("ipv4", "1.2.3.4", "budget")])  # fmt: skip
    await lists.replace("weekly", [("domain", "w.example.com", "stopped")])
    assert await lists.read("nightly") == [
        (IocType.DOMAIN, "a.example.com"),
        (IocType.IPV4, "1.2.3.4"),
    ]
    await lists.replace("nightly", [("md5", "0" * 32, "stopped")])
    assert await lists.read("nightly") == [(IocType.MD5, "0" * 32)]
    await lists.replace("nightly", [])
    assert await lists.read("nightly") == []
    assert await lists.read("weekly") == [(IocType.DOMAIN, "w.example.com")]


async def test_the_sqlite_state_blocks_in_threads_never_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call of the SQLite views that reads or writes the file runs in another thread."""
    cache = Cache(tmp_path / "c.sqlite3", max_ttl=3600, default_ttl=3600, identity=API)
    loop_thread = threading.current_thread()
    where: dict[str, threading.Thread] = {}
    for name in ("lookup", "empty_endpoints", "reserve_request", "quota_until",
                 "set_quota_until", "deferred", "set_deferred", "close"):  # fmt: skip
        method = getattr(Cache, name)

        def spy(self: Cache, *args: Any, _name: str = name, _m: Any = method, **kw: Any) -> Any:
            where[_name] = threading.current_thread()
            return _m(self, *args, **kw)

        monkeypatch.setattr(Cache, name, spy)
    await cache.answers({Endpoint.DOMAIN: ["a.example.com"]}, identity=None)
    await cache.unanswered_endpoints(identity=None)
    budget, lists = SqliteBudget(cache), SqliteDeferred(cache)
    await budget.reserve(5)
    await budget.quota_until(60)
    await budget.set_quota_until(time.time() + 60)
    await lists.read("job")
    await lists.replace("job", [])
    await cache.aclose()
    assert len(where) == 8
    assert not [name for name, thread in where.items() if thread is loop_thread]
