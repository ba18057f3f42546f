"""`open_state` and the library over it: `Enricher(settings)` with `state.url` set opens the
state itself, and with a redis:// one every instance of the same API identity shares the
limiter, the answers and the daily budget; unreachable or without redis-py, a one-line
settings error."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import make_iocs, settings_for
from redis_server import free_port

from enricher import Enricher
from enricher.api.identity import identity_of
from enricher.config.settings import Settings, load_settings
from enricher.emulator import Emulator
from enricher.errors import SettingsError
from enricher.state.deferred import list_shared_deferred
from enricher.state.open import REDIS_MISSING, open_state
from enricher.state.redis.budget import RedisBudget
from enricher.state.redis.connection import StateUnreachable
from enricher.state.redis.limiter import RedisLimiter


def _settings(emu: Emulator, url: str, prefix: str = "enricher", **limits: Any) -> Settings:
    return settings_for(emu, state={"url": url, "prefix": prefix}, limits=limits)


async def _items(settings: Settings, iocs: list[str]) -> tuple[list[dict[str, Any]], int]:
    async with Enricher(settings) as e:
        items = [dict(i) async for i in e.enrich(iocs)]
        assert e.stats.invariant_holds
        return items, e.stats.requests


async def test_a_second_instance_asks_nothing_the_first_was_answered(
    redis_url: str, prefix: str
) -> None:
    iocs = make_iocs(120)
    async with Emulator() as emu:
        settings = _settings(emu, redis_url, prefix)
        first, asked = await _items(settings, iocs)
        second, again = await _items(settings, iocs)
    assert asked > 0 and again == 0
    assert len(second) == len(first) == len(set(iocs))
    assert all(item.get("cached") for item in second if "verdict" in item)


async def test_instances_share_one_limiter_and_one_daily_budget(
    redis_url: str, prefix: str
) -> None:
    async with Emulator() as emu:
        settings = _settings(emu, redis_url, prefix, rate=500.0, daily_budget=1000)
        async with Enricher(settings) as a, Enricher(settings) as b:
            assert isinstance(a.limiter, RedisLimiter) and isinstance(b.limiter, RedisLimiter)
            assert a.limiter.key == b.limiter.key
            items = [dict(i) async for i in a.enrich(make_iocs(60, seed=2))]
            items += [dict(i) async for i in b.enrich(make_iocs(60, seed=3))]
            sent = a.stats.requests + b.stats.requests
            assert a.state is not None and a.state.connection is not None
            budget = a.state.budget
            assert isinstance(budget, RedisBudget)
            assert await budget.requests_today() == sent > 0
        assert a.state is None and a.cache is None  # closed with the instance
    assert len(items) == 120


async def test_a_sqlite_url_is_that_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    iocs = make_iocs(30)
    async with Emulator() as emu:
        settings = _settings(emu, f"sqlite://{path}")
        _, asked = await _items(settings, iocs)
        _, again = await _items(settings, iocs)
    assert path.exists() and asked > 0 and again == 0


async def test_redis_unreachable_at_start_is_one_line_naming_it() -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    async with Emulator() as emu:
        with pytest.raises(StateUnreachable) as caught:
            async with Enricher(_settings(emu, url)):
                pass
    text = str(caught.value)
    assert f"redis://127.0.0.1:{url.rsplit(':', 1)[1]}" in text and "\n" not in text
    assert "hunter2secret" not in text


async def test_a_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    from redis_server import running_redis

    with running_redis(password="s3cret-state") as (url, _):
        async with Emulator() as emu:
            settings = _settings(emu, url, prefix)
            with pytest.raises(StateUnreachable, match="refused the credentials"):
                await open_state(settings, identity_of(settings))
            monkeypatch.setenv("ENRICHER_STATE_PASSWORD", "s3cret-state")
            state = await open_state(settings, identity_of(settings))
            await state.aclose()


def _without_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the redis extra were not installed: redis-py and the Redis state do not import."""
    for name in list(sys.modules):
        if name.startswith("enricher.state.redis.") or name == "redis" or name.startswith("redis."):
            monkeypatch.setitem(sys.modules, name, None)


async def test_without_redis_py_one_line_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without_redis_py(monkeypatch)
    async with Emulator() as emu:
        settings = _settings(emu, "redis://127.0.0.1:1/0")
        with pytest.raises(SettingsError) as caught:
            await open_state(settings, identity_of(settings))
    assert str(caught.value) == REDIS_MISSING
    assert "pip install 'enricher[redis]'" in REDIS_MISSING


async def test_two_instances_at_once_over_the_same_iocs_ask_each_once(
    redis_url: str, prefix: str
) -> None:
    """Each claims what it missed before asking it; what the other claimed it waits for, and
    is served from the shared answers (without claims: 2x the keys, both reading ahead)."""
    iocs = [f"both{i}.example.com" for i in range(100)]
    async with Emulator() as emu:
        settings = settings_for(
            emu,
            state={"url": redis_url, "prefix": prefix},
            limits={"rate": 50.0},
            api={"domain_batch_size": 5},
        )

        async def job() -> list[dict[str, Any]]:
            items, _ = await _items(settings, iocs)
            return items

        first, second = await asyncio.gather(job(), job())
        asked = emu.stats()["keys_asked"]
    assert asked == len(iocs)
    for items in (first, second):
        assert sorted(i["ioc"] for i in items if "verdict" in i) == sorted(iocs)


async def test_claims_of_what_a_run_did_not_answer_are_given_back(
    redis_url: str, prefix: str
) -> None:
    """A run stopped by its budget leaves no claim behind (another job would wait for the
    claims to expire before asking those IOCs)."""
    from enricher.state.budget import Budget

    iocs = [f"left{i}.example.com" for i in range(40)]
    async with Emulator() as emu:
        settings = settings_for(
            emu, state={"url": redis_url, "prefix": prefix}, api={"domain_batch_size": 5}
        )
        state = await open_state(settings, identity_of(settings))
        assert state.connection is not None and state.answers is not None
        async with Enricher(
            settings,
            cache=state.answers,
            cache_owner=False,
            budget=Budget(max_requests=2, cache=state.budget),
            limiter=state.limiter,
        ) as e:
            items = [dict(i) async for i in e.enrich(iocs)]
        left = [k async for k in state.connection.client.scan_iter(match=f"{prefix}:*:c:*")]
        await state.aclose()
    assert sum("verdict" in i for i in items) == 10 and sum("reason" in i for i in items) == 30
    assert len(left) == 10  # the answered ones linger a few seconds; the 30 others are gone


async def test_deferred_list_without_redis_py_one_line_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`enricher deferred --state redis://...` without the extra: a traceback before."""
    _without_redis_py(monkeypatch)
    settings = load_settings(overrides={"state": {"url": "redis://127.0.0.1:1/0"}})
    with pytest.raises(SettingsError) as caught:
        await list_shared_deferred(settings)
    assert str(caught.value) == REDIS_MISSING
