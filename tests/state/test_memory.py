"""The state in memory wired through the whole pipeline, against the emulator: a second run
asks nothing the first was answered, every IOC comes out exactly once, the invariant holds;
answers stay with their API identity; the daily budget and a spent quota hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from engine_helpers import make_iocs, settings_for

from enricher import Enricher
from enricher.api.identity import ApiIdentity
from enricher.emulator import Emulator, EmulatorConfig
from enricher.inputs import Chunk
from enricher.ioc import Endpoint
from enricher.pipeline.batcher import Key
from enricher.pipeline.ingest import Ingest
from enricher.pipeline.normalize import normalize
from enricher.pipeline.outcome import Outcome
from enricher.state.budget import Budget
from enricher.state.memory import MemoryAnswers, MemoryBudget, MemoryDeferred
from enricher.state.ports import CachedAnswer

OTHER = ApiIdentity("https://other.gti.example/rest/classification_v1")


def _batch(n: int) -> dict[str, int]:
    return {f"{kind}_batch_size": n for kind in ("file", "domain", "ip")}


async def _run(e: Enricher, iocs: list[str]) -> list[dict[str, Any]]:
    items = [dict(i) async for i in e.enrich(iocs)]
    assert e.stats.invariant_holds, e.stats
    return items


def _once(items: list[dict[str, Any]], iocs: list[str]) -> None:
    """Every unique IOC of `iocs` in exactly one item."""
    got = [i["ioc"] for i in items]
    assert len(got) == len(set(got)) == len(set(iocs))


async def test_a_second_run_asks_nothing_the_first_was_answered() -> None:
    first = make_iocs(240)
    more = [f"fresh{i}.example.org" for i in range(60)]
    store = MemoryAnswers()
    async with Emulator(EmulatorConfig(duplicate_rate=0.2, shuffle_rate=0.5, seed=7)) as emu:
        s = settings_for(emu, api=_batch(20))
        async with Enricher(s, cache=store, cache_owner=False) as e:
            items = await _run(e, first + first[:40])  # duplicates asked once
        _once(items, first)
        assert not any(i["cached"] for i in items) and "error" not in str(items)
        asked = emu.stats()["total_requests"]
        assert asked >= 240 // 20 and len(store) == 240 and store.stored == 240
        async with Enricher(s, cache=store, cache_owner=False) as e:
            again = await _run(e, first)
        assert emu.stats()["total_requests"] == asked  # nothing asked again
        _once(again, first)
        assert all(i["cached"] for i in again) and e.stats.cached == 240
        async with Enricher(s, cache=store) as e:
            mixed = await _run(e, more + first)
        _once(mixed, more + first)
        assert {i["ioc"] for i in mixed if not i["cached"]} == set(more)
        assert store.closed and store.report()["hits"] == 480
    # what was served is what was fetched, flagged as cached
    by_ioc = {i["ioc"]: i for i in items}
    for item in again:
        assert {**item, "cached": False} == by_ioc[item["ioc"]]


async def test_answers_are_served_only_to_the_identity_that_fetched_them() -> None:
    iocs = make_iocs(30)
    store = MemoryAnswers()
    async with Emulator(EmulatorConfig()) as emu:
        s = settings_for(emu)
        async with Enricher(s, cache=store, cache_owner=False) as e:
            await _run(e, iocs)
        asked = emu.stats()["total_requests"]
        async with Enricher(s, cache=store, cache_owner=False, identity=OTHER) as e:
            items = await _run(e, iocs)
        assert not any(i["cached"] for i in items)
        assert emu.stats()["total_requests"] > asked
        assert len(store) == 60  # one answer per key and identity


async def test_the_daily_budget_in_memory_holds_across_runs() -> None:
    iocs = make_iocs(100)
    counts = MemoryBudget()
    async with Emulator(EmulatorConfig()) as emu:
        s = settings_for(emu, api=_batch(5))
        async with Enricher(s, budget=Budget(daily=7, cache=counts)) as e:
            items = await _run(e, iocs)
        _once(items, iocs)
        assert emu.stats()["total_requests"] == 7 == counts.requests_today()
        assert sum("reason" in i for i in items) == 100 - 35 == e.stats.deferred
        # a later run the same day sends nothing at all
        async with Enricher(s, budget=Budget(daily=7, cache=counts)) as e:
            items = await _run(e, iocs)
        assert emu.stats()["total_requests"] == 7 and e.stats.deferred == 100


async def test_a_spent_quota_goes_to_the_store_and_stops_the_next_run() -> None:
    iocs = make_iocs(40)
    counts = MemoryBudget()
    # a second request within the second gets a 429 whose Retry-After is past max_wait
    async with Emulator(EmulatorConfig(rate_limit=1)) as emu:
        s = settings_for(emu, api=_batch(5), retry={"max_wait": 0.01})
        async with Enricher(s, budget=Budget(cache=counts)) as e:
            items = await _run(e, iocs)
        _once(items, iocs)
        assert e.stats.deferred > 0 and counts.until is not None
        assert time.time() - 5 < counts.until <= time.time() + 60
        asked = emu.stats()["total_requests"]
        later = MemoryBudget()
        await later.set_quota_until(time.time() + 3600)  # as a run before this one found
        async with Enricher(s, budget=Budget(cache=later)) as e:
            items = await _run(e, iocs)
        _once(items, iocs)
        assert emu.stats()["total_requests"] == asked  # not one request before it is open
        assert all(i["reason"].startswith("quota exhausted until") for i in items)


async def test_a_deferred_list_in_memory_is_replaced_whole() -> None:
    jobs = MemoryDeferred()
    assert await jobs.read("nightly") == []
    await jobs.replace(
        "nightly", [("domain", "a.example.com", "stopped"), ("ipv4", "1.2.3.4", "x")]
    )
    await jobs.replace("other", [("domain", "b.example.com", "stopped")])
    got = await jobs.read("nightly")
    assert [(t.value, ioc) for t, ioc in got] == [("domain", "a.example.com"), ("ipv4", "1.2.3.4")]
    await jobs.replace("nightly", [])
    assert await jobs.read("nightly") == [] and len(await jobs.read("other")) == 1


class _Gated(MemoryAnswers):
    """A store whose first lookup, once `gate` is set up, waits for it (a lookup that takes
    as long as the run takes to take in the next chunk)."""

    gate: asyncio.Event | None = None

    async def answers(
        self, keys: Mapping[Endpoint, Sequence[str]], *, identity: ApiIdentity | None
    ) -> dict[Endpoint, dict[str, CachedAnswer]]:
        gate, self.gate = self.gate, None
        if gate is not None:
            await gate.wait()
        return await super().answers(keys, identity=identity)


async def test_the_next_chunk_is_taken_in_while_a_chunk_is_looked_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # issue 16: ingest waited for each chunk's lookups before it took the next chunk, so the
    # lookups' time and the event loop's added up. The records still come in input order
    iocs = make_iocs(2500)  # three chunks of the library's 1,000
    store = _Gated()
    async with Emulator(EmulatorConfig()) as emu:
        s = settings_for(emu)
        async with Enricher(s, cache=store, cache_owner=False) as e:
            await _run(e, iocs)
        taken = 0
        second = asyncio.Event()
        take = Ingest.take

        def counted(self: Ingest, chunk: Chunk) -> tuple[Outcome, list[Key]]:
            nonlocal taken
            taken += 1
            if taken == 2:
                second.set()
            return take(self, chunk)

        monkeypatch.setattr(Ingest, "take", counted)
        store.gate = second
        async with Enricher(s, cache=store, cache_owner=False) as e:
            again = await asyncio.wait_for(_run(e, iocs), 10)
    at = {normalize(ioc)[1]: n for n, ioc in enumerate(iocs)}
    chunks = [at[i["ioc"]] // 1000 for i in again]  # a chunk's hits go by endpoint
    assert chunks == sorted(chunks) and len(again) == len(iocs)
    assert all(i["cached"] for i in again)
    assert taken == 3 and e.stats.cached == len(iocs)
