"""The ledger: admitted vs settled keys, the counters derived from them, and the invariant,
alone and through a run stopped in the middle of each stage."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import enricher.pipeline.run as run_module
from enricher.config.settings import load_settings
from enricher.emulator import Emulator, EmulatorConfig
from enricher.ioc import IocType
from enricher.pipeline.batcher import Key
from enricher.pipeline.ledger import Ledger
from enricher.pipeline.run import Enricher, _Run
from enricher.pipeline.send import Send
from enricher.pipeline.stats import RunStats
from enricher.state.answers import Cache

A: Key = (IocType.DOMAIN, "a.example.com")
B: Key = (IocType.MD5, "b" * 32)
C: Key = (IocType.IPV4, "1.2.3.4")


def test_admitted_keys_are_open_until_settled_and_counted_as_they_settle() -> None:
    stats = RunStats()
    ledger = Ledger(stats)
    ledger.admit([A, B, C])
    assert ledger.open == 3 and stats.unique == 3 and not ledger.balanced
    assert not stats.invariant_holds
    ledger.answered([A], ["malicious"], cached=False)
    ledger.answered([B], ["benign"], cached=True)
    assert (stats.ok, stats.cached, stats.verdicts) == (2, 1, {"malicious": 1, "benign": 1})
    assert ledger.open == 1 and ledger.is_open(C) and not ledger.is_open(A)
    [failed] = ledger.fail([(C, "http_503: HTTP 503", 4)])
    assert failed == {
        "ioc": "1.2.3.4",
        "type": "ipv4",
        "error": "http_503: HTTP 503",
        "attempts": 4,
    }
    assert (stats.failed, stats.errors) == (1, {"http_503": 1})
    assert ledger.open == 0 and ledger.balanced and stats.invariant_holds


def test_withheld_keys_are_settled_as_they_come_in() -> None:
    stats = RunStats()
    ledger = Ledger(stats)
    ledger.withheld(internal=2, unsupported=1)
    assert (stats.unique, stats.internal, stats.unsupported) == (3, 2, 1)
    assert ledger.open == 0 and ledger.balanced and stats.invariant_holds


def test_abandon_defers_what_is_still_open_in_a_stable_order() -> None:
    stats = RunStats()
    ledger = Ledger(stats)
    ledger.admit([C, A, B])
    ledger.answered([A], ["unknown"], cached=False)
    deferred = ledger.abandon("stopped")
    assert deferred == [
        {"ioc": "1.2.3.4", "type": "ipv4", "reason": "stopped"},
        {"ioc": "b" * 32, "type": "md5", "reason": "stopped"},
    ]
    assert stats.deferred == 2 and ledger.balanced and stats.invariant_holds
    assert ledger.abandon("again") == []


def test_a_key_settled_twice_breaks_the_invariant() -> None:
    ledger = Ledger(RunStats())
    ledger.admit([A])
    ledger.defer([A], "budget")
    assert ledger.balanced
    ledger.defer([A], "budget")  # a stage that settles what another already did
    assert ledger.strays == 1 and not ledger.balanced
    assert not ledger.stats.invariant_holds


def test_settling_forgets_where_a_key_was_seen() -> None:
    ledger = Ledger(RunStats())
    ledger.admit([A, B])
    ledger.origins.update({A[1]: ("in.txt", 1), B[1]: ("in.txt", 2)})
    ledger.defer([A], "x")
    assert ledger.origins == {B[1]: ("in.txt", 2)}


def test_a_halt_keeps_its_first_reason() -> None:
    stats = RunStats()
    ledger = Ledger(stats)
    assert ledger.halted is None
    ledger.halt("budget spent")
    ledger.halt("interrupted")
    assert ledger.halted == "budget spent" and stats.stopped == "budget spent"


def test_runs_sharing_stats_each_keep_their_own_ledger() -> None:
    stats = RunStats()
    one, two = Ledger(stats), Ledger(stats)
    one.admit([A])
    two.admit([B])
    one.defer([A], "x")
    assert one.balanced and not two.balanced and stats.unique == 2


# -- a run stopped in the middle of each stage ---------------------------------------------------

#: where the run is cut: a method of the run (or the cache), and which call of it to cut in
#: (the first one with something to do)
STAGES: dict[str, tuple[Any, str, Callable[[tuple[Any, ...]], bool]]] = {
    "ingest: cache lookup": (_Run, "lookup", lambda args: bool(args[0])),
    "ingest: dispatch": (_Run, "dispatch", lambda args: bool(args[0])),
    "send: a request": (Send, "resolve", lambda args: True),
    "hand on: waiting for the consumer": (_Run, "deliver", lambda args: bool(args[0].lines)),
    "send: storing answers": (Cache, "store_lines_soon", lambda args: True),
}


@pytest.mark.parametrize("stage", [*STAGES, "read"])
async def test_a_stop_cutting_into_any_stage_leaves_no_key_open(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledgers: list[Ledger] = []

    class Kept(Ledger):
        def __init__(self, stats: RunStats, **kw: Any) -> None:
            super().__init__(stats, **kw)
            ledgers.append(self)

    monkeypatch.setattr(run_module, "Ledger", Kept)
    cut: list[str] = []
    enricher: list[Enricher] = []

    if stage != "read":
        owner, name, worth = STAGES[stage]
        real = getattr(owner, name)

        async def cutting(self: Any, *args: Any, **kw: Any) -> Any:
            if not cut and worth(args):
                cut.append(stage)
                enricher[0].stop(now=True)  # cancels every stage: this one at its next await
                await asyncio.sleep(3600)
            return await real(self, *args, **kw)

        monkeypatch.setattr(owner, name, cutting)

    iocs = [f"k{i}.example.com" for i in range(400)] + [f"{i:032x}" for i in range(200)]

    async def source() -> AsyncIterator[str]:
        for i, ioc in enumerate(iocs):
            if stage == "read" and i == 300:
                cut.append(stage)
                enricher[0].stop(now=True)
            yield ioc

    cache = Cache(tmp_path / "cache.sqlite3", max_ttl=86400.0, default_ttl=86400.0)
    stats = RunStats()
    items: list[dict[str, Any]] = []
    async with Emulator(EmulatorConfig(latency_ms=5)) as emu:
        settings = load_settings(
            environ={},
            overrides={
                "api": {"base_url": emu.base_url, "domain_batch_size": 10, "file_batch_size": 10},
                "limits": {"rate": 0, "concurrency": 2},
                "pipeline": {"batch_deadline": 0.05},
            },
        )
        async with Enricher(settings, stats=stats, cache=cache) as e:
            enricher.append(e)
            async for item in e.enrich(source()):
                items.append(dict(item))
    assert cut == [stage]
    [ledger] = ledgers
    assert ledger.open == 0 and ledger.balanced, stats.as_dict()
    assert stats.invariant_holds, stats.as_dict()
    seen = Counter((i["type"], i["ioc"]) for i in items)
    assert set(seen.values()) == {1} and len(seen) == stats.unique
    assert stats.deferred > 0 and stats.stopped == "interrupted"
    assert len(items) == stats.ok + stats.failed + stats.deferred
