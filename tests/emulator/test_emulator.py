"""The emulator over real sockets on 127.0.0.1: API, validation, knobs, stats, determinism."""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

import aiohttp
import orjson
import pytest

from enricher.api.protocol import match_key, parse_response
from enricher.emulator import NO_RESPONSE, Emulator, EmulatorConfig, RetryAfter, answer_for
from enricher.errors import ErrorBody, MalformedBody
from enricher.ioc import Endpoint

TUTORIAL = {
    Endpoint.FILE: {"md5": "92f44e405db16ac55d97e3bfe3b132fa"},
    Endpoint.DOMAIN: {"domain": "www.cybereason.com"},
    Endpoint.IP: {"ipAddress": "12.34.56.78", "addressType": "Ipv4"},
}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Reply(NamedTuple):
    status: int
    body: bytes
    headers: Any

    def json(self) -> Any:
        return orjson.loads(self.body)


@asynccontextmanager
async def running(**knobs: Any) -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(**knobs)) as emulator:
        yield emulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


def body_of(keys: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"requestData": [{"requestKey": k} for k in keys]})


async def post(
    session: aiohttp.ClientSession,
    emulator: Emulator,
    endpoint: Endpoint,
    keys: list[dict[str, Any]] | bytes,
    **kwargs: Any,
) -> Reply:
    data = keys if isinstance(keys, bytes) else body_of(keys)
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    url = f"{emulator.base_url}/{endpoint.value}"
    async with session.post(url, data=data, headers=headers, **kwargs) as r:
        return Reply(r.status, await r.read(), r.headers)


def md5s(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"md5": f"{rng.getrandbits(128):032x}"} for _ in range(n)]


def mixed_keys(endpoint: Endpoint, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    if endpoint is Endpoint.FILE:
        return [
            {"sha1": f"{rng.getrandbits(160):040x}"} if i % 2 else md5s(1, i + seed)[0]
            for i in range(n)
        ]
    if endpoint is Endpoint.DOMAIN:
        return [{"domain": f"d{rng.getrandbits(48):x}.example.org"} for _ in range(n)]
    return [
        {
            "ipAddress": ".".join(str(b) for b in rng.getrandbits(32).to_bytes(4, "big")),
            "addressType": "Ipv4",
        }
        for _ in range(n)
    ]


def by_key(endpoint: Endpoint, entries: list[dict[str, Any]]) -> dict[str | None, Any]:
    return {match_key(endpoint, e["requestKey"]): e for e in entries}


# -- the API as documented ------------------------------------------------------------------


async def test_urls() -> None:
    async with running() as emu:
        assert emu.port > 0
        assert emu.url == f"http://127.0.0.1:{emu.port}"
        assert emu.base_url == f"http://127.0.0.1:{emu.port}/rest/classification_v1"


@pytest.mark.parametrize("endpoint", list(Endpoint))
async def test_tutorial_requests(session: aiohttp.ClientSession, endpoint: Endpoint) -> None:
    async with running() as emu:
        reply = await post(session, emu, endpoint, [TUTORIAL[endpoint]])
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    (entry,) = reply.json()["classificationResponses"]
    assert entry == answer_for(endpoint, TUTORIAL[endpoint])
    mal = entry["aggregatedResult"]["maliciousClassification"]
    assert isinstance(mal["type"], str)
    assert isinstance(mal["classificationScore"], int) and isinstance(mal["typeScore"], int)
    assert isinstance(entry["ttl"], int) and isinstance(entry["cpId"], int)
    assert isinstance(entry["allowFurtherClassification"], bool)
    assert isinstance(entry["aggregatedResult"]["link"], str)
    if endpoint is Endpoint.FILE:
        assert entry["requestKey"] == {"sha1": None, "md5": "92f44e405db16ac55d97e3bfe3b132fa"}
        assert entry["aggregatedResult"]["productClassification"]["signed"] in (True, False)
    else:
        assert entry["requestKey"] == TUTORIAL[endpoint]


async def test_content_type_is_not_required(session: aiohttp.ClientSession) -> None:
    async with running() as emu:
        url = f"{emu.base_url}/domain_batch"
        async with session.post(url, data=body_of([TUTORIAL[Endpoint.DOMAIN]])) as r:
            assert r.status == 200


async def test_empty_batch_gets_an_empty_answer(session: aiohttp.ClientSession) -> None:
    async with running() as emu:
        reply = await post(session, emu, Endpoint.IP, [])
    assert (reply.status, reply.json()) == (200, {"classificationResponses": []})


async def test_unknown_path_is_404(session: aiohttp.ClientSession) -> None:
    async with running() as emu, session.post(f"{emu.base_url}/hash_batch", data=b"{}") as r:
        assert r.status == 404


# -- strict validation ----------------------------------------------------------------------


async def test_bad_requests_get_400_naming_the_cause(session: aiohttp.ClientSession) -> None:
    good_ip = TUTORIAL[Endpoint.IP]
    bad_type = {"ipAddress": "12.34.56.78", "addressType": "ipv4"}
    async with running() as emu:
        cases: list[tuple[Endpoint, list[dict[str, Any]] | bytes, str]] = [
            (
                Endpoint.IP,
                [good_ip] * 3 + [bad_type],
                "invalid addressType 'ipv4' at requestData[3]",
            ),
            (Endpoint.DOMAIN, [{"hostname": "a.com"}], "unknown key name 'hostname'"),
            (Endpoint.FILE, [{"md5": "12345"}], "malformed md5 '12345' at requestData[0]"),
            (Endpoint.FILE, b"{not json", "body is not JSON"),
            (Endpoint.FILE, b'{"requestKeys": []}', "no requestData"),
        ]
        for endpoint, keys, cause in cases:
            reply = await post(session, emu, endpoint, keys)
            assert reply.status == 400
            assert reply.headers["Content-Type"].startswith("application/json")
            assert cause in reply.json()["error"]
        stats = emu.stats()
    assert stats["requests"] == {
        "file_batch": {"400": 3},
        "domain_batch": {"400": 1},
        "ip_batch": {"400": 1},
    }
    assert stats["total_requests"] == 5
    assert stats["keys_asked"] == stats["keys_answered"] == 0


async def test_sha256_knob(session: aiohttp.ClientSession) -> None:
    key = {"sha256": "ab" * 32}
    async with running() as emu:
        reply = await post(session, emu, Endpoint.FILE, [key])
        assert reply.status == 200
        assert reply.json()["classificationResponses"][0]["requestKey"]["sha256"] == "ab" * 32
    async with running(accept_sha256=False) as emu:
        reply = await post(session, emu, Endpoint.FILE, [key])
        assert reply.status == 400 and "sha256" in reply.json()["error"]


async def test_max_batch_gives_413(session: aiohttp.ClientSession) -> None:
    async with running(max_batch=10) as emu:
        assert (await post(session, emu, Endpoint.FILE, md5s(10))).status == 200
        reply = await post(session, emu, Endpoint.FILE, md5s(11))
        assert reply.status == 413
        assert "11 keys exceeds the limit of 10" in reply.json()["error"]
        assert emu.stats()["requests"]["file_batch"] == {"200": 1, "413": 1}


async def test_refused_keys_give_400_without_a_cause(session: aiohttp.ClientSession) -> None:
    bad_md5 = md5s(1, seed=99)[0]["md5"]
    async with running(refuse_keys={"WWW.Evil.example.", bad_md5.upper()}) as emu:
        ok = await post(session, emu, Endpoint.DOMAIN, [{"domain": "good.example"}])
        assert ok.status == 200
        for endpoint, keys in [
            (Endpoint.DOMAIN, [{"domain": "good.example"}, {"domain": "www.evil.EXAMPLE"}]),
            (Endpoint.FILE, [*md5s(5), {"md5": bad_md5}]),
        ]:
            reply = await post(session, emu, endpoint, keys)
            assert (reply.status, reply.json()) == (400, {"error": "Bad Request"})
        assert emu.stats()["faults"]["refused_batch"] == 2


# -- faults ---------------------------------------------------------------------------------


async def test_server_errors(session: aiohttp.ClientSession) -> None:
    async with running(server_error_rate=1.0) as emu:
        statuses = [(await post(session, emu, Endpoint.FILE, md5s(3))).status for _ in range(12)]
        assert emu.stats()["faults"]["server_error"] == 12
    assert set(statuses) <= {500, 502, 503, 504} and len(set(statuses)) >= 2


async def test_dropped_connection(session: aiohttp.ClientSession) -> None:
    async with running(drop_rate=1.0) as emu:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, emu, Endpoint.DOMAIN, [TUTORIAL[Endpoint.DOMAIN]])
        assert emu.stats()["requests"]["domain_batch"] == {"dropped": 1}
        assert emu.log[-1].status == NO_RESPONSE


async def test_hang_until_the_client_gives_up_and_shutdown_is_quick(
    session: aiohttp.ClientSession,
) -> None:
    emu = Emulator(EmulatorConfig(hang_rate=1.0))
    await emu.start()
    try:
        with pytest.raises(asyncio.TimeoutError):
            await post(session, emu, Endpoint.IP, [TUTORIAL[Endpoint.IP]], timeout=0.2)
        # A second client still waiting when the emulator stops is let go at once.
        waiting = asyncio.create_task(post(session, emu, Endpoint.IP, [TUTORIAL[Endpoint.IP]]))
        await asyncio.sleep(0.1)
        assert emu.stats()["faults"]["hang"] == 2
    finally:
        started = time.monotonic()
        await emu.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await waiting


async def test_malformed_json(session: aiohttp.ClientSession) -> None:
    keys = md5s(20)
    async with running() as emu:
        whole = (await post(session, emu, Endpoint.FILE, keys)).body
    async with running(malformed_json_rate=1.0) as emu:
        reply = await post(session, emu, Endpoint.FILE, keys)
        assert emu.stats()["keys_answered"] == 0
    assert reply.status == 200
    assert 0 < len(reply.body) < len(whole) and whole.startswith(reply.body)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(reply.body)
    with pytest.raises(MalformedBody):
        parse_response(Endpoint.FILE, reply.body)


async def test_error_body_with_200(session: aiohttp.ClientSession) -> None:
    async with running(error_body_rate=1.0) as emu:
        reply = await post(session, emu, Endpoint.FILE, md5s(2))
    assert reply.status == 200
    doc = reply.json()
    assert "classificationResponses" not in doc and doc["status"] == "ERROR" and doc["message"]
    with pytest.raises(ErrorBody):
        parse_response(Endpoint.FILE, reply.body)


async def test_missing_keys(session: aiohttp.ClientSession) -> None:
    async with running(missing_key_rate=1.0) as emu:
        reply = await post(session, emu, Endpoint.FILE, md5s(7))
        assert reply.json() == {"classificationResponses": []}
        assert emu.stats()["faults"]["missing_key"] == 7
    async with running(missing_key_rate=0.5, seed=3) as emu:
        reply = await post(session, emu, Endpoint.FILE, md5s(200))
        n = len(reply.json()["classificationResponses"])
        assert 50 < n < 150
        assert emu.stats()["keys_answered"] == n
        assert emu.stats()["faults"]["missing_key"] == 200 - n


async def test_duplicate_entry(session: aiohttp.ClientSession) -> None:
    keys = md5s(10)
    async with running(duplicate_rate=1.0) as emu:
        entries = (await post(session, emu, Endpoint.FILE, keys)).json()["classificationResponses"]
    counts = Counter(e["requestKey"]["md5"] for e in entries)
    assert len(entries) == 11 and sorted(counts.values()) == [1] * 9 + [2]
    assert set(counts) == {k["md5"] for k in keys}


async def test_extra_entry(session: aiohttp.ClientSession) -> None:
    keys = mixed_keys(Endpoint.IP, 10, seed=4)
    async with running(extra_rate=1.0) as emu:
        entries = (await post(session, emu, Endpoint.IP, keys)).json()["classificationResponses"]
        assert emu.stats()["keys_answered"] == 10
    asked = {k["ipAddress"] for k in keys}
    extra = [e for e in entries if e["requestKey"]["ipAddress"] not in asked]
    assert len(entries) == 11 and len(extra) == 1
    assert extra[0] == answer_for(Endpoint.IP, extra[0]["requestKey"])


async def test_shuffled_answers(session: aiohttp.ClientSession) -> None:
    keys = mixed_keys(Endpoint.DOMAIN, 50, seed=5)
    async with running(shuffle_rate=1.0) as emu:
        entries = (await post(session, emu, Endpoint.DOMAIN, keys)).json()[
            "classificationResponses"
        ]
    echoed = [e["requestKey"]["domain"] for e in entries]
    asked = [k["domain"] for k in keys]
    assert echoed != asked and sorted(echoed) == sorted(asked)


async def test_upper_case_echo(session: aiohttp.ClientSession) -> None:
    async with running(upper_echo_rate=1.0) as emu:
        for endpoint in Endpoint:
            reply = await post(session, emu, endpoint, [TUTORIAL[endpoint]])
            (entry,) = reply.json()["classificationResponses"]
            if endpoint is Endpoint.FILE:
                assert entry["requestKey"] == {
                    "sha1": None,
                    "md5": "92F44E405DB16AC55D97E3BFE3B132FA",
                }
            elif endpoint is Endpoint.DOMAIN:
                assert entry["requestKey"] == {"domain": "WWW.CYBEREASON.COM"}
            else:
                assert entry["requestKey"] == TUTORIAL[endpoint]
            assert match_key(endpoint, entry["requestKey"]) == match_key(
                endpoint, TUTORIAL[endpoint]
            )
        assert emu.stats()["faults"]["upper_echo"] == 2


@pytest.mark.serial
async def test_latency_and_jitter(session: aiohttp.ClientSession) -> None:
    async with running(latency_ms=200) as emu:
        for _ in range(2):
            started = time.perf_counter()
            await post(session, emu, Endpoint.FILE, md5s(1))
            assert 0.19 <= time.perf_counter() - started < 0.6
    async with running(latency_ms=100, jitter_ms=100, seed=1) as emu:

        async def timed() -> float:
            started = time.perf_counter()
            await post(session, emu, Endpoint.FILE, md5s(1))
            return time.perf_counter() - started

        times = await asyncio.gather(*(timed() for _ in range(10)))
    assert max(times) < 0.5 and max(times) - min(times) > 0.03


async def test_seed_makes_faults_reproducible(session: aiohttp.ClientSession) -> None:
    knobs = dict(
        server_error_rate=0.3,
        malformed_json_rate=0.1,
        error_body_rate=0.1,
        missing_key_rate=0.2,
        shuffle_rate=0.5,
        duplicate_rate=0.3,
        latency_ms=2,
        jitter_ms=2,
    )

    async def run(seed: int) -> list[Reply]:
        async with running(seed=seed, **knobs) as emu:
            return [await post(session, emu, Endpoint.FILE, md5s(20, seed=i)) for i in range(25)]

    first, again, other = await run(7), await run(7), await run(8)
    assert [(r.status, r.body) for r in first] == [(r.status, r.body) for r in again]
    assert [(r.status, r.body) for r in first] != [(r.status, r.body) for r in other]
    assert len({r.status for r in first}) > 1


# -- rate limit -----------------------------------------------------------------------------


async def test_rate_window_with_a_fake_clock(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    limit = 5
    rng = random.Random(2)
    retry_after: list[str | None] = []
    async with running(rate_limit=limit, clock=clock) as emu:
        for _ in range(120):
            clock.now += rng.choice([0.0, 0.0, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0])
            reply = await post(session, emu, Endpoint.DOMAIN, [TUTORIAL[Endpoint.DOMAIN]])
            retry_after.append(reply.headers.get("Retry-After"))
        log = emu.log
        stats = emu.stats()

    # Replay the recorded arrivals: each request saw the accepted ones before it in
    # (arrival - 1, arrival], was refused exactly when they were `limit` or more, and was
    # told to come back when the oldest of them leaves the window.
    accepted: list[float] = []
    for entry, header in zip(log, retry_after, strict=True):
        window = [a for a in accepted if entry.arrival - 1.0 < a]
        if entry.status == 429:
            assert len(window) >= limit
            assert header == str(max(1, math.ceil(min(window) + 1.0 - entry.arrival)))
        else:
            assert entry.status == 200 and len(window) < limit and header is None
            accepted.append(entry.arrival)
    refused = len(log) - len(accepted)
    assert refused > 10 and len(accepted) > 30

    # Never more than the limit accepted in any window (a window ending at an accepted
    # arrival is the fullest possible).
    peak = max(sum(1 for b in accepted if a - 1.0 < b <= a) for a in accepted)
    assert peak == limit == stats["peak_accepted_per_second"]
    assert stats["rate_limited"] == refused
    assert stats["requests"]["domain_batch"] == {"200": len(accepted), "429": refused}


async def test_rate_window_admits_again_once_the_oldest_leaves(
    session: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    async with running(rate_limit=2, clock=clock) as emu:

        async def status_at(t: float) -> int:
            clock.now = 1000.0 + t
            return (await post(session, emu, Endpoint.FILE, md5s(1))).status

        assert [await status_at(t) for t in (0.0, 0.5, 0.75, 0.999)] == [200, 200, 429, 429]
        assert await status_at(1.0) == 200  # the request at 0.0 has left: (0.0, 1.0]
        assert await status_at(1.25) == 429  # 0.5 and 1.0 are still in (0.25, 1.25]
        assert await status_at(1.5) == 200


@pytest.mark.parametrize("mode", [RetryAfter.HTTP_DATE, RetryAfter.NONE])
async def test_retry_after_forms(session: aiohttp.ClientSession, mode: RetryAfter) -> None:
    async with running(rate_limit=1, retry_after=mode) as emu:
        await post(session, emu, Endpoint.FILE, md5s(1))
        reply = await post(session, emu, Endpoint.FILE, md5s(1))
    assert reply.status == 429
    if mode is RetryAfter.NONE:
        assert "Retry-After" not in reply.headers
    else:
        when = email.utils.parsedate_to_datetime(reply.headers["Retry-After"])
        ahead = (when - datetime.now(UTC)).total_seconds()
        assert -0.5 <= ahead <= 2.5


async def test_rate_limit_in_real_time(session: aiohttp.ClientSession) -> None:
    async with running(rate_limit=20) as emu:
        replies = await asyncio.gather(
            *(post(session, emu, Endpoint.FILE, md5s(1, seed=i)) for i in range(50))
        )
        stats = emu.stats()
    statuses = Counter(r.status for r in replies)
    assert statuses == {200: 20, 429: 30}
    assert all(r.headers["Retry-After"] == "1" for r in replies if r.status == 429)
    assert stats["peak_accepted_per_second"] == 20
    assert stats["peak_arrived_per_second"] == 50
    assert stats["rate_limited"] == 30


# -- authentication -------------------------------------------------------------------------


async def test_token_authentication(session: aiohttp.ClientSession) -> None:
    keys = [TUTORIAL[Endpoint.FILE]]
    async with running(api_token="s3cret-token") as emu:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret-token"}):
            reply = await post(session, emu, Endpoint.FILE, keys, headers=headers)
            assert reply.status == 401 and reply.json() == {"error": "Unauthorized"}
        ok = await post(
            session, emu, Endpoint.FILE, keys, headers={"Authorization": "Bearer s3cret-token"}
        )
        assert ok.status == 200
        assert emu.stats()["requests"]["file_batch"] == {"200": 1, "401": 3}
        assert "s3cret" not in repr(emu.config) and "s3cret" not in str(emu.stats())
    async with running(api_token="k", token_header="X-Api-Key") as emu:
        assert (
            await post(session, emu, Endpoint.FILE, keys, headers={"X-Api-Key": "k"})
        ).status == 200
        assert (
            await post(session, emu, Endpoint.FILE, keys, headers={"X-Api-Key": "x"})
        ).status == 401


async def test_login_session_cookie() -> None:
    clock = FakeClock()
    keys = [TUTORIAL[Endpoint.DOMAIN]]
    async with running(login_credentials=("alice", "pw"), clock=clock, session_seconds=60) as emu:
        # An IP-address host needs an unsafe jar for aiohttp to keep its cookies.
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            assert (await post(session, emu, Endpoint.DOMAIN, keys)).status == 401
            form = {"username": "alice", "password": "wrong"}
            async with session.post(f"{emu.url}/login.html", data=form) as r:
                assert r.status == 401 and "JSESSIONID" not in r.cookies
            form["password"] = "pw"
            async with session.post(f"{emu.url}/login.html", data=form) as r:
                assert r.status == 200
                assert len(r.cookies["JSESSIONID"].value) >= 16
            assert (await post(session, emu, Endpoint.DOMAIN, keys)).status == 200
            clock.now += 61  # the session expires
            assert (await post(session, emu, Endpoint.DOMAIN, keys)).status == 401
        assert emu.stats()["logins"] == {"ok": 1, "failed": 1}
        assert "pw" not in repr(emu.config)


async def test_token_or_session_when_both_are_configured(session: aiohttp.ClientSession) -> None:
    keys = [TUTORIAL[Endpoint.IP]]
    async with running(api_token="t", login_credentials=("u", "p")) as emu:
        async with session.post(
            f"{emu.url}/login.html", data={"username": "u", "password": "p"}
        ) as r:
            cookie = r.cookies["JSESSIONID"].value
        by_cookie = await post(
            session, emu, Endpoint.IP, keys, headers={"Cookie": f"JSESSIONID={cookie}"}
        )
        by_token = await post(
            session, emu, Endpoint.IP, keys, headers={"Authorization": "Bearer t"}
        )
        forged = await post(session, emu, Endpoint.IP, keys, headers={"Cookie": "JSESSIONID=ABC"})
    assert (by_cookie.status, by_token.status, forged.status) == (200, 200, 401)


async def test_login_page_exists_only_when_configured(session: aiohttp.ClientSession) -> None:
    async with (
        running() as emu,
        session.post(f"{emu.url}/login.html", data={"username": "u"}) as r,
    ):
        assert r.status == 404


# -- stats ----------------------------------------------------------------------------------


async def test_stats_endpoint_log_and_reset(session: aiohttp.ClientSession) -> None:
    async with running(missing_key_rate=0.0) as emu:
        await post(session, emu, Endpoint.FILE, md5s(3))
        await post(session, emu, Endpoint.IP, [TUTORIAL[Endpoint.IP]] * 2)
        await post(session, emu, Endpoint.IP, b"[]")
        async with session.get(f"{emu.url}/emulator/stats") as r:
            over_http = await r.json()
        assert over_http == emu.stats()
        assert over_http["requests"] == {
            "file_batch": {"200": 1},
            "domain_batch": {},
            "ip_batch": {"200": 1, "400": 1},
        }
        assert over_http["total_requests"] == 3
        assert over_http["keys_asked"] == over_http["keys_answered"] == 5
        assert over_http["peak_arrived_per_second"] == over_http["peak_accepted_per_second"] == 3
        assert over_http["rate_limited"] == 0
        assert set(over_http["faults"].values()) == {0}
        assert [(e.endpoint, e.status, e.n_keys) for e in emu.log] == [
            ("file_batch", 200, 3),
            ("ip_batch", 200, 2),
            ("ip_batch", 400, 0),
        ]
        async with session.post(f"{emu.url}/emulator/reset") as r:
            assert r.status == 200
        stats = emu.stats()
        assert (
            stats["total_requests"] == stats["keys_asked"] == stats["peak_arrived_per_second"] == 0
        )
        assert emu.log == []


async def test_log_is_bounded(session: aiohttp.ClientSession) -> None:
    async with running(log_size=3) as emu:
        for n in range(1, 6):
            await post(session, emu, Endpoint.FILE, md5s(n))
        assert [e.n_keys for e in emu.log] == [3, 4, 5]
        assert emu.stats()["total_requests"] == 5


# -- determinism over HTTP ------------------------------------------------------------------


async def test_two_instances_answer_alike_whatever_the_batches(
    session: aiohttp.ClientSession,
) -> None:
    async with running(seed=1) as first, running(seed=2) as second:
        for endpoint in Endpoint:
            keys = mixed_keys(endpoint, 700, seed=len(endpoint.value))
            # The same batches give byte-identical answers...
            for i in range(0, len(keys), 350):
                a = await post(session, first, endpoint, keys[i : i + 350])
                b = await post(session, second, endpoint, keys[i : i + 350])
                assert a.status == 200 and a.body == b.body
            # ...and other batches, in another order and case, the same entry per key.
            whole = by_key(
                endpoint,
                (await post(session, first, endpoint, keys)).json()["classificationResponses"],
            )
            shuffled = keys[:]
            random.Random(3).shuffle(shuffled)
            if endpoint is not Endpoint.IP:
                shuffled = [{k: v.upper() for k, v in key.items()} for key in shuffled]
            pieces: dict[str | None, Any] = {}
            start = 0
            for size in (1, 7, 100, 250, 342):
                reply = await post(session, second, endpoint, shuffled[start : start + size])
                pieces |= by_key(endpoint, reply.json()["classificationResponses"])
                start += size
            assert start == len(keys) and pieces == whole
