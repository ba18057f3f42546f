"""The connection to the shared state: Redis unreachable at start is one clear error
(`StateUnreachable`, exit 1), Redis lost mid-run another (`StateLost`, exit 3) that every
component raises; neither message (nor anything chained to it) names the URL's password."""

from __future__ import annotations

import time

import pytest
from redis_server import free_port, running_redis, stop

from enricher.api.identity import ApiIdentity
from enricher.config.settings import Settings, StateSettings
from enricher.errors import FatalError, SettingsError
from enricher.ioc import Endpoint
from enricher.state.open import open_state
from enricher.state.redis.answers import RedisAnswers
from enricher.state.redis.budget import RedisBudget
from enricher.state.redis.connection import SharedState, StateLost, StateUnreachable, safe_url
from enricher.state.redis.deferred import RedisDeferred
from enricher.state.redis.limiter import RedisLimiter

API = ApiIdentity("https://gti.example/rest/classification_v1")
SECRET = "s3cret-Pa55"


def _no_secret(exc: BaseException) -> None:
    assert exc.__cause__ is None and exc.__suppress_context__
    assert SECRET not in str(exc) and SECRET not in repr(exc.args)


def test_a_url_is_shown_without_its_user_info() -> None:
    assert safe_url(f"redis://:{SECRET}@127.0.0.1:6380/2") == "redis://127.0.0.1:6380/2"
    assert (
        safe_url(f"rediss://bob:{SECRET}@Cache.Example:6379/0") == "rediss://cache.example:6379/0"
    )
    assert safe_url("redis://[::1]:7000") == "redis://[::1]:7000/"
    assert safe_url(f"redis://h:1/0?password={SECRET}") == "redis://h:1/0"


async def test_unreachable_at_start_names_the_url_without_its_password() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StateUnreachable) as caught:
        await SharedState.connect(f"redis://:{SECRET}@127.0.0.1:{port}/0")
    assert isinstance(caught.value, SettingsError)  # exit 1
    message = str(caught.value)
    assert message.startswith(f"state: cannot reach Redis at redis://127.0.0.1:{port}/0 (")
    _no_secret(caught.value)
    with pytest.raises(StateUnreachable, match="is not a Redis URL"):
        await SharedState.connect(f"http://:{SECRET}@127.0.0.1:{port}/0")


async def test_a_wrong_password_is_refused_at_start() -> None:
    with running_redis(password=SECRET) as (url, _):
        port = url.rsplit(":", 1)[1].split("/")[0]
        with pytest.raises(StateUnreachable, match="refused the credentials") as caught:
            await SharedState.connect(f"redis://:wrong-{SECRET}@127.0.0.1:{port}/0")
        _no_secret(caught.value)
        with pytest.raises(StateUnreachable):  # no password at all
            await SharedState.connect(f"redis://127.0.0.1:{port}/0")


async def test_lost_mid_run_every_component_says_so() -> None:
    with running_redis(password=SECRET) as (url, proc):
        secret_url = url.replace("redis://", f"redis://:{SECRET}@")
        state = await SharedState.connect(secret_url, prefix="lost")
        namespace = await state.admit(API)
        limiter = RedisLimiter(state, namespace, 20.0)
        budget = RedisBudget(state, namespace)
        answers = RedisAnswers(state)
        answers.bind(API)
        deferred = RedisDeferred(state, namespace)
        await limiter.acquire()
        assert await budget.reserve(10)
        stop(proc)  # Redis goes away
        began = time.monotonic()
        calls = [
            limiter.acquire(),
            budget.reserve(10),
            budget.quota_until(60),
            answers.answers({Endpoint.IP: ["192.0.2.1"]}, identity=None),
            answers.store_soon(Endpoint.IP, [("192.0.2.1", "benign", b"{}", None)], identity=None),
            deferred.replace("nightly", [("ipv4", "192.0.2.1", "stopped")]),
        ]
        for call in calls:
            with pytest.raises(StateLost) as caught:
                await call
            assert isinstance(caught.value, FatalError)  # exit 3
            assert f"lost Redis at {url} (" in str(caught.value)
            assert "--resume" in str(caught.value)
            _no_secret(caught.value)
        # redis-py retries a dropped connection a few times first: a blip is not a loss
        assert time.monotonic() - began < 15
        # a 429 that could not be told is raised by the next turn
        limiter.rate_limited()
        with pytest.raises(StateLost):
            await limiter.aclose()
        await state.aclose()


async def test_a_server_refusing_a_command_is_a_loss_mid_run_and_one_line_at_start(
    redis_url: str, prefix: str
) -> None:
    # a database another program uses (its keys of other types), full, or an ACL user
    # without the command: the server answers with a refusal, not a traceback's worth
    state = await SharedState.connect(redis_url, prefix=prefix)
    try:
        namespace = await state.admit(API)
        await state.client.set(f"{namespace}:limiter", "another program's")
        with pytest.raises(StateLost, match=r"refused a command \(WRONGTYPE") as caught:
            await RedisLimiter(state, namespace, 20.0).acquire()
        assert isinstance(caught.value, FatalError)  # exit 3: the rest deferred
        assert "--resume" in str(caught.value)
        await state.client.set(f"{prefix}:identities", "another program's")
        settings = Settings(state=StateSettings(url=redis_url, prefix=prefix))
        with pytest.raises(StateUnreachable, match="refused a command") as at_start:
            await open_state(settings, API)
        assert isinstance(at_start.value, SettingsError)  # exit 1: nothing to resume
        assert "--resume" not in str(at_start.value)
        _no_secret(at_start.value)
    finally:
        await state.aclose()


async def test_a_server_evicting_any_key_when_full_is_warned_about(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = await SharedState.connect(redis_url, prefix=prefix)
    await state.client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level("WARNING", logger="enricher"):
            other = await SharedState.connect(redis_url, prefix=prefix)
            await other.aclose()
        assert "evicts any key when full (maxmemory-policy allkeys-lru)" in caplog.text
    finally:
        await state.client.config_set("maxmemory-policy", "noeviction")
        await state.aclose()


async def test_commands_are_packed_in_c(redis_url: str, prefix: str) -> None:
    """hiredis packs the commands (redis-py's asyncio client packs them in Python, argument
    by argument: 8.4 ms for a store of 1,000 answers against 1.1 ms), byte for byte as
    redis-py's own packer would, a command name of several words included."""
    from redis.asyncio.connection import Connection

    state = await SharedState.connect(redis_url, prefix=prefix)
    try:
        pool = state.client.connection_pool
        assert pool.connection_class.__name__ == "CPackedConnection"
        packed = pool.make_connection()
        args = ("CONFIG GET", "maxmemory", b"\xff\x00", 7, "h\u00e9.example", 2.5)
        assert packed.pack_command(*args) == [b"".join(Connection().pack_command(*args))]
        await state.client.set(f"{prefix}:k", b"\x00\xff")
        assert await state.client.get(f"{prefix}:k") == b"\x00\xff"
        assert "maxmemory" in await state.client.config_get("maxmemory")
    finally:
        await state.aclose()
