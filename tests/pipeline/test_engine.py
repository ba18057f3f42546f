"""The engine end to end, against the emulator on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from engine_helpers import make_iocs, settings_for

from enricher.config.settings import Settings
from enricher.emulator import Emulator, EmulatorConfig, classification_of
from enricher.errors import AuthRefused, InputError
from enricher.ioc import ENDPOINT_OF, Endpoint, IocType
from enricher.pipeline.run import Enricher
from enricher.pipeline.stats import RunStats


async def run_all(
    settings: Settings, iocs: Any, stats: RunStats | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], RunStats, Enricher]:
    stats = stats or RunStats()
    records: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    async with Enricher(settings, stats=stats) as e:
        async for item in e.enrich(iocs):
            if "reason" in item:
                continue  # deferred: counted in stats.deferred, checked there
            (failures if "error" in item else records).append(dict(item))
    return records, failures, stats, e


def check_accounting(
    records: list[dict[str, Any]], failures: list[dict[str, Any]], stats: RunStats
) -> None:
    seen = Counter((r["type"], r["ioc"]) for r in records + failures)
    assert all(n == 1 for n in seen.values()), "an IOC came out twice"
    assert len(seen) + stats.deferred == stats.unique
    assert stats.ok == len(records)
    assert stats.failed + stats.unsupported == len(failures)
    assert stats.invariant_holds


def check_verdicts(records: list[dict[str, Any]], settings: Settings) -> None:
    for r in records:
        endpoint = ENDPOINT_OF[IocType(r["type"])]
        expected = classification_of(endpoint, r["ioc"])
        assert r["classification"] == expected, r["ioc"]
        assert r["verdict"] == settings.verdicts.get(expected, "unknown")


async def test_clean_run_matches_the_emulator() -> None:
    iocs = make_iocs(3000)
    async with Emulator(EmulatorConfig()) as emu:
        s = settings_for(emu, api={"file_batch_size": 100, "domain_batch_size": 100})
        records, failures, stats, _ = await run_all(s, iocs + iocs[:500])
    assert failures == []
    assert stats.unique == 3000 and stats.duplicates == 500
    check_accounting(records, failures, stats)
    check_verdicts(records, s)
    r = next(r for r in records if r["type"] == "md5")
    assert set(r) == {
        "ioc", "type", "verdict", "classification", "score", "type_score", "source",
        "ttl_ms", "first_seen", "link", "product", "cp_type", "response", "cached",
    }  # fmt: skip
    assert r["cached"] is False
    assert r["product"] is not None and r["response"]["requestKey"]["md5"] == r["ioc"]


async def test_everything_goes_wrong_at_once_and_nothing_is_lost() -> None:
    """The issue's fault mix (scaled for CI): every unique IOC comes out exactly once."""
    iocs = make_iocs(12_000, seed=7)
    lines = iocs + random.Random(3).sample(iocs, 12_000)  # half of the input is duplicates
    config = EmulatorConfig(
        seed=11,
        server_error_rate=0.10,
        drop_rate=0.05,
        malformed_json_rate=0.05,
        missing_key_rate=0.02,
        shuffle_rate=1.0,
        upper_echo_rate=1.0,
        rate_limit=150,
    )
    async with Emulator(config) as emu:
        s = settings_for(
            emu,
            api={"file_batch_size": 200, "domain_batch_size": 200, "ip_batch_size": 200},
            limits={"rate": 150, "concurrency": 8},
        )
        records, failures, stats, _ = await run_all(s, lines)
        server = emu.stats()
    check_accounting(records, failures, stats)
    check_verdicts(records, s)
    assert stats.unique == 12_000
    assert stats.retries > 0 and stats.requeued > 0
    # a failure only where retries were truly exhausted
    for f in failures:
        assert f["attempts"] >= 3, f
    assert len(failures) < 100
    assert server["rate_limited"] == 0


async def test_413_splits_and_keeps_the_smaller_size() -> None:
    iocs = [f"{i:032x}" for i in range(1000)]
    async with Emulator(EmulatorConfig(max_batch=120)) as emu:
        s = settings_for(emu, api={"file_batch_size": 500}, limits={"concurrency": 1})
        records, failures, stats, _ = await run_all(s, iocs)
        log = emu.log
    assert len(records) == 1000 and failures == []
    assert stats.splits >= 2
    sizes = [entry.n_keys for entry in log]
    first_ok = next(i for i, e in enumerate(log) if e.status == 200)
    # once a batch fits, later ones never go over the limit again
    assert all(n <= 120 for n in sizes[first_ok:])
    assert sum(1 for e in log if e.status == 413) <= 3


async def test_400_bisects_to_the_refused_keys() -> None:
    iocs = [f"bad{i}.example.org" for i in range(300)]
    poison = {iocs[17], iocs[222]}
    async with Emulator(EmulatorConfig(refuse_keys=frozenset(poison))) as emu:
        s = settings_for(emu, api={"domain_batch_size": 300})
        records, failures, stats, _ = await run_all(s, iocs)
    assert {f["ioc"] for f in failures} == poison
    assert all("400" in f["error"] for f in failures)
    assert len(records) == 298 and stats.bisections > 0
    check_accounting(records, failures, stats)


async def test_sha256_off_is_unsupported_without_a_request() -> None:
    sha256 = "ab" * 32
    async with Emulator(EmulatorConfig()) as emu:
        s = settings_for(emu, api={"send_sha256": False})
        records, failures, stats, _ = await run_all(s, [sha256, "a" * 32])
        served = emu.stats()["keys_asked"]
    assert failures == [{"ioc": sha256, "type": "sha256", "error": "unsupported", "attempts": 0}]
    assert stats.unsupported == 1 and served == 1 and len(records) == 1
    check_accounting(records, failures, stats)


async def test_401_stops_the_run_and_accounts_for_every_key() -> None:
    iocs = make_iocs(800)
    deferred = []
    async with Emulator(EmulatorConfig(api_token="tok")) as emu, Enricher(settings_for(emu)) as e:
        # raised after the last item: a playbook with a wrong token does not "succeed"
        with pytest.raises(AuthRefused, match="credentials"):
            async for item in e.enrich(iocs):
                assert "reason" in item, item
                deferred.append(item)
    assert e.fatal is not None and "credentials" in str(e.fatal)
    # what was read and not answered is deferred, to be asked once the credentials are fixed
    assert e.stats.deferred == e.stats.unique == len(deferred) > 0
    check_accounting([], [], e.stats)


async def test_header_and_session_auth_against_the_emulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENRICHER_AUTH_HEADER", "Bearer tok-12345")
    monkeypatch.setenv("ENRICHER_USERNAME", "analyst")
    monkeypatch.setenv("ENRICHER_PASSWORD", "pw-12345")
    config = EmulatorConfig(api_token="tok-12345", login_credentials=("analyst", "pw-12345"))
    async with Emulator(config) as emu:
        s = settings_for(emu, auth={"mode": "header"})
        records, _, _, _ = await run_all(s, ["a.example.com"])
        assert len(records) == 1
        s = settings_for(emu, auth={"mode": "session", "login_url": emu.url + "/login.html"})
        records, _, _, _ = await run_all(s, ["b.example.com"])
        assert len(records) == 1


async def test_rate_is_kept_and_used() -> None:
    """Against a server allowing 40 requests/s: no 429, and nearly all of the allowance used."""
    rate = 40
    iocs = [f"r{i}.example.com" for i in range(120)]
    async with Emulator(EmulatorConfig(rate_limit=rate)) as emu:
        # 5% headroom (the default is 1.5%): 50 ms of slack a second absorbs a loaded test
        # machine's scheduling jitter, which once put 41 arrivals in one second
        s = settings_for(
            emu, api={"domain_batch_size": 1}, limits={"rate": rate, "rate_headroom": 0.05}
        )
        records, _, stats, _ = await run_all(s, iocs)
        server = emu.stats()
        log = emu.log
    assert len(records) == 120
    assert server["rate_limited"] == 0 and stats.rate_limited == 0
    assert server["peak_accepted_per_second"] <= rate
    span = log[-1].arrival - log[0].arrival
    used = (len(log) - 1) / span / rate
    # a bound for gross mistakes (the limiter using half the rate, say), loose enough for a
    # loaded machine (94.8% was seen at load 4 on 2 cores, 85% at load 5 with four suites
    # running); benchmarks/ measures the figure (98% and more on a quiet machine)
    assert used >= 0.75, f"used {used:.1%} of the allowed rate"


async def test_repeated_429_lowers_the_rate_and_loses_nothing() -> None:
    iocs = [f"x{i}.example.com" for i in range(60)]
    async with Emulator(EmulatorConfig(rate_limit=25)) as emu:
        s = settings_for(
            emu,
            api={"domain_batch_size": 1},
            limits={"rate": 60, "concurrency": 4},
            retry={"attempts": 20, "retry_after_max": 0.5},
        )
        records, failures, stats, e = await run_all(s, iocs)
    assert len(records) == 60 and failures == []
    assert stats.rate_limited > 0
    assert e.limiter is not None and any(c.reason == "429s from server" for c in e.limiter.changes)
    assert e.limiter.changes[0].rate < 60


async def test_hang_is_a_timeout_then_a_retry() -> None:
    async with Emulator(EmulatorConfig(hang_rate=0.5, seed=2)) as emu:
        s = settings_for(
            emu,
            network={"read_timeout": 0.3, "total_timeout": 1.0},
            api={"file_batch_size": 5, "domain_batch_size": 5, "ip_batch_size": 5},
        )
        records, failures, stats, _ = await run_all(s, make_iocs(60))
    check_accounting(records, failures, stats)
    assert stats.retries > 0 and len(records) + len(failures) == 60


async def test_a_slow_stream_still_flows() -> None:
    """A partial batch goes out after the deadline: the first answer comes before more input."""
    arrived = asyncio.Event()
    got: list[str] = []

    async def trickle() -> AsyncIterator[str]:
        yield "first.example.com"
        await asyncio.wait_for(arrived.wait(), 5)
        yield "second.example.com"

    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        async for item in e.enrich(trickle()):
            got.append(item["ioc"])
            arrived.set()
    assert got == ["first.example.com", "second.example.com"]


async def test_garbage_items_are_counted_rejects() -> None:
    junk: list[Any] = [
        "",
        "   ",
        "# comment",
        "\x00\x00",
        "not an ioc",
        "x" * 100_000,
        42,
        "1.2.3.4",
    ]
    async with Emulator(EmulatorConfig()) as emu:
        records, failures, stats, _ = await run_all(settings_for(emu), junk)
    assert [r["ioc"] for r in records] == ["1.2.3.4"] and failures == []
    assert stats.skipped == 3 and stats.rejected == 4 and stats.lines_read == 8


async def test_leaving_early_does_not_hang() -> None:
    async with (
        Emulator(EmulatorConfig()) as emu,
        Enricher(settings_for(emu)) as e,
        contextlib.aclosing(e.enrich(make_iocs(3000))) as items,
    ):
        async for _ in items:
            break


async def test_an_input_that_breaks_part_way() -> None:
    async def source() -> AsyncIterator[str]:
        yield "a.example.com"
        yield "b.example.com"
        raise ConnectionError("the feed went away")

    got = []
    async with Emulator(EmulatorConfig()) as emu, Enricher(settings_for(emu)) as e:
        with pytest.raises(InputError, match="the feed went away"):
            async for item in e.enrich(source()):
                got.append(item["ioc"])
    assert sorted(got) == ["a.example.com", "b.example.com"]


async def test_a_hard_stop_with_a_slow_consumer_loses_nothing() -> None:
    """Stopped at once while ingest waits for a slow consumer: every key is accounted for."""
    lines = []
    for i in range(6000):
        lines.append(f"s{i}.example.com")
        if i % 500 == 0:
            lines.append("not an ioc")  # a reject in every chunk: ingest has outcomes to hand on
    async with Emulator(EmulatorConfig(latency_ms=20)) as emu:
        stats = RunStats()
        async with Enricher(settings_for(emu, api={"domain_batch_size": 50}), stats=stats) as e:
            n = 0
            async for _ in e.enrich(lines):
                n += 1
                if n == 100:
                    e.stop(now=True)
                await asyncio.sleep(0.001)
    assert stats.invariant_holds, stats.as_dict()
    assert stats.deferred > 0


async def test_an_expired_session_is_renewed_at_any_age_through_the_limiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sessions of 0.6 s: each 401 comes on a session younger than a second, and is renewed
    monkeypatch.setenv("ENRICHER_USERNAME", "analyst")
    monkeypatch.setenv("ENRICHER_PASSWORD", "pw-12345")
    config = EmulatorConfig(
        login_credentials=("analyst", "pw-12345"), session_seconds=0.6, rate_limit=20
    )
    async with Emulator(config) as emu:
        s = settings_for(
            emu,
            auth={"mode": "session", "login_url": emu.url + "/login.html"},
            api={"domain_batch_size": 1},
            limits={"rate": 20, "concurrency": 8},
        )
        records, failures, _stats, e = await run_all(s, [f"z{i}.example.com" for i in range(40)])
        server = emu.stats()
    assert e.fatal is None and len(records) == 40 and failures == []
    assert server["logins"]["ok"] >= 3  # renewed, more than once
    # the re-sent requests paid the limiter: had the 8 workers re-sent at once on renewal,
    # the server would have seen ~28 in one second. One more than the rate is jitter on a
    # busy machine, not a burst.
    assert server["peak_arrived_per_second"] <= 21


async def test_a_401_on_a_session_just_renewed_is_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A login that works for an account the API refuses: renewed once, then refused, never
    a loop of logins."""
    monkeypatch.setenv("ENRICHER_USERNAME", "analyst")
    monkeypatch.setenv("ENRICHER_PASSWORD", "pw-0123456789")
    config = EmulatorConfig(login_credentials=("analyst", "pw-0123456789"), session_seconds=1e-9)
    async with (
        Emulator(config) as emu,
        Enricher(
            settings_for(emu, auth={"mode": "session", "login_url": emu.url + "/login.html"})
        ) as e,
    ):
        with pytest.raises(AuthRefused):
            async for item in e.enrich(make_iocs(50)):
                assert "reason" in item
        server = emu.stats()
    # the first login, then at most one renewal per endpoint (each endpoint's second 401 on
    # a renewed session is a refusal); how many endpoints renew first is a matter of timing
    assert 2 <= server["logins"]["ok"] <= 1 + len(Endpoint)
    assert e.stats.deferred == e.stats.unique == 50


async def test_a_400_naming_its_key_fails_that_key_only() -> None:
    sha256s = [f"{i:064x}" for i in range(5)]
    md5s = [f"{i:032x}" for i in range(40)]
    async with Emulator(EmulatorConfig(accept_sha256=False)) as emu:
        s = settings_for(emu, api={"send_sha256": True})
        records, failures, stats, _ = await run_all(s, md5s + sha256s)
        requests = emu.stats()["total_requests"]
    assert sorted(f["ioc"] for f in failures) == sha256s
    assert len(records) == 40
    assert requests <= 1 + len(sha256s)  # one request per refused key, no bisection
    assert stats.bisections == 0


async def test_a_warm_run_looks_chunks_up_ahead_and_keeps_their_order() -> None:
    """Every key a hit: the lookups of the next chunks are under way while a chunk is
    served (more than one at once), and the records still come in the input's order."""
    from enricher.state.memory import MemoryAnswers

    class Watched(MemoryAnswers):
        busy = most = 0

        async def answers(self, keys: Any, *, identity: Any) -> Any:
            self.busy += 1
            self.most = max(self.most, self.busy)
            try:
                await asyncio.sleep(0.01)  # a lookup takes a while, off the event loop
                return await super().answers(keys, identity=identity)
            finally:
                self.busy -= 1

    iocs = [f"w{i}.example.com" for i in range(6000)]  # 6 chunks of 1,000
    store = Watched()
    async with Emulator(EmulatorConfig()) as emu:
        s = settings_for(emu)
        async with Enricher(s, cache=store, cache_owner=False) as e:
            cold = [item["ioc"] async for item in e.enrich(iocs)]
        asked = emu.stats()["total_requests"]
        store.most = 0
        stats = RunStats()
        async with Enricher(s, cache=store, cache_owner=False, stats=stats) as e:
            warm = [item["ioc"] async for item in e.enrich(iocs)]
        assert emu.stats()["total_requests"] == asked  # every key a hit
    assert sorted(cold) == sorted(iocs) and warm == iocs
    assert stats.cached == len(iocs) and stats.invariant_holds
    assert store.most > 1
