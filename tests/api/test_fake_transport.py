"""The whole pipeline (`Enricher.enrich`) through a transport of our own (`FakeTransport`): no
server, no cache. Every IOC comes out exactly once, as the answer the transport gave for its
key (or a failure, or deferred), and the run's invariant holds, whatever the transport does."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from typing import Any

import pytest
from fake_api import FakeTransport, answers_for, classification

from enricher.api.ratelimit import AdaptiveLimiter, RateChange
from enricher.config.settings import Settings, load_settings
from enricher.errors import AuthRefused, HTTPStatusError, RateLimited, TransportError
from enricher.ioc import Endpoint
from enricher.pipeline.run import Enricher
from enricher.pipeline.stats import RunStats

IOCS = (
    [f"host{i}.example.com" for i in range(40)]
    + [f"93.184.{i}.7" for i in range(25)]
    + [hashlib.md5(str(i).encode()).hexdigest() for i in range(30)]
)
BATCH = 7


def settings(**retry: int) -> Settings:
    sizes = dict.fromkeys(("file_batch_size", "domain_batch_size", "ip_batch_size"), BATCH)
    return load_settings(
        environ={},
        overrides={
            # never reached: every request goes to the fake transport
            "api": {"base_url": "http://gti.invalid/rest/classification_v1", **sizes},
            "limits": {"rate": 0, "concurrency": 4},
            "retry": {"backoff_base": 0, "backoff_max": 0, "attempts": 4, **retry},
        },
    )


async def enrich(
    transport: FakeTransport, iocs: list[str], s: Settings | None = None
) -> tuple[list[dict[str, Any]], RunStats]:
    stats = RunStats()
    items: list[dict[str, Any]] = []
    async with Enricher(s or settings(), stats=stats, transport=transport) as e:
        async for item in e.enrich(iocs):
            items.append(dict(item))
    return items, stats


def check_exactly_once(items: list[dict[str, Any]], iocs: list[str], stats: RunStats) -> None:
    """Each IOC once; each record the transport's own answer for its key; the invariant."""
    out = Counter(item["ioc"] for item in items)
    assert set(out) == set(iocs) and max(out.values()) == 1, out.most_common(3)
    answers = answers_for(iocs)
    for item in items:
        if "verdict" in item:
            assert item["classification"] == classification(answers[item["ioc"]]), item
    assert stats.unique == len(iocs)
    assert stats.invariant_holds, stats.as_dict()


async def test_every_ioc_once_through_a_transport_that_answers() -> None:
    transport = FakeTransport(answers_for(IOCS))
    items, stats = await enrich(transport, IOCS + IOCS[:10])  # duplicates asked once
    check_exactly_once(items, IOCS, stats)
    assert all("verdict" in item for item in items) and stats.ok == len(IOCS)
    assert transport.opened == 1 and transport.closed == 1
    assert max(len(keys) for _, keys in transport.posts) == BATCH
    assert {ep for ep, _ in transport.posts} == set(Endpoint)
    assert set(transport.answered.values()) == {1}  # no key answered twice
    assert stats.requests == len(transport.posts)


def first_time_faults(endpoint: Endpoint, keys: list[str], before: int) -> Exception | None:
    """Each body fails the first time it is posted, in turn a 503, a dropped connection and a
    429 (by its first key, so the same on every run); then it is answered."""
    if before:
        return None
    kind = sum(map(ord, keys[0])) % 3
    if kind == 0:
        return HTTPStatusError(503)
    if kind == 1:
        return TransportError("server disconnected before answering")
    return RateLimited(None)


async def test_faults_splits_refusals_and_keys_left_out_still_give_each_ioc_once() -> None:
    refused, left_out = "host3.example.com", "93.184.5.7"
    transport = FakeTransport(
        answers_for(IOCS),
        fault=first_time_faults,
        max_keys=4,  # batches of 7: 413, split
        refuse=[refused],  # a 400 that names it: it fails, its batch's others are answered
        leave_out=[left_out],  # asked again, then a failure
    )
    items, stats = await enrich(transport, IOCS)
    check_exactly_once(items, IOCS, stats)
    failures = {item["ioc"]: item["error"] for item in items if "error" in item}
    assert failures.keys() == {refused, left_out}, failures
    assert failures[refused].startswith("http_400: HTTP 400: invalid key")
    assert failures[left_out].startswith("missing")
    assert stats.splits > 0 and stats.retries > 0 and stats.rate_limited > 0
    assert set(transport.answered.values()) == {1}
    assert stats.ok == len(IOCS) - 2


async def test_credentials_refused_mid_run_defer_what_was_not_answered() -> None:
    posts = 0

    def refuse_after_five(endpoint: Endpoint, keys: list[str], before: int) -> Exception | None:
        nonlocal posts
        posts += 1
        return AuthRefused("the server refused our credentials (HTTP 401)") if posts > 5 else None

    transport = FakeTransport(answers_for(IOCS), fault=refuse_after_five)
    items: list[dict[str, Any]] = []
    stats = RunStats()
    with pytest.raises(AuthRefused):
        async with Enricher(settings(), stats=stats, transport=transport) as e:
            async for item in e.enrich(IOCS):
                items.append(dict(item))
    check_exactly_once(items, IOCS, stats)
    records = [item for item in items if "verdict" in item]
    assert 0 < len(records) <= 5 * BATCH
    assert stats.deferred == len(IOCS) - len(records) and stats.failed == 0
    assert transport.closed == 1


class CountingLimiter:
    """A `RateLimiter` of our own: no pacing, what the sender told it counted."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()  # made inside the running loop
        self.acquired = self.limited = self.ok = 0
        self.changes: list[RateChange] = [RateChange(0.0, 1.0, "made")]

    async def acquire(self) -> None:
        self.acquired += 1

    def ready(self) -> bool:
        return True

    def rate_limited(self) -> None:
        self.limited += 1

    def succeeded(self) -> None:
        self.ok += 1


async def test_the_limiter_made_by_the_factory_is_the_one_every_attempt_pays() -> None:
    made: list[CountingLimiter] = []

    def factory() -> CountingLimiter:
        made.append(CountingLimiter())
        return made[-1]

    transport = FakeTransport(answers_for(IOCS), fault=first_time_faults)
    stats = RunStats()
    async with Enricher(settings(), stats=stats, transport=transport, limiter=factory) as e:
        items = [dict(item) async for item in e.enrich(IOCS)]
        assert e.limiter is made[0] and e.limiter.changes == made[0].changes
    check_exactly_once(items, IOCS, stats)
    (limiter,) = made
    assert limiter.loop is asyncio.get_running_loop()
    assert limiter.acquired == len(transport.posts) == stats.requests
    assert limiter.limited == stats.rate_limited > 0
    assert limiter.ok == len({tuple(keys) for _, keys in transport.posts})


async def test_without_a_limiter_the_run_paces_by_its_settings() -> None:
    s = settings().replace(limits={"rate": 50, "rate_window": 3, "rate_recovery": 0.2})
    transport = FakeTransport(answers_for(IOCS[:3]))
    async with Enricher(s, transport=transport) as e:
        assert isinstance(e.limiter, AdaptiveLimiter)
        assert e.limiter.max_rate == pytest.approx(50 * (1 - 0.015))
        assert e.limiter.window == 3 and e.limiter.step == pytest.approx(50 * 0.985 * 0.2)
        items = [item async for item in e.enrich(IOCS[:3])]
    assert len(items) == 3


async def test_a_fake_transport_and_an_in_memory_store_make_a_whole_pipeline() -> None:
    # issue 14's seams together, with no server, no file and no thread of I/O: the second run
    # is answered by the store alone, the same records but cached
    from enricher.state.memory import MemoryAnswers

    store = MemoryAnswers()
    transport = FakeTransport(answers_for(IOCS))
    runs = []
    for _ in range(2):
        stats = RunStats()
        async with Enricher(
            settings(), stats=stats, transport=transport, cache=store, cache_owner=False
        ) as e:
            items = [dict(item) async for item in e.enrich(IOCS)]
        check_exactly_once(items, IOCS, stats)
        runs.append((items, stats, len(transport.posts)))
    (first, one, posts), (second, two, posts_after) = runs
    assert posts_after == posts and two.requests == 0 and two.cached == len(IOCS)
    assert one.cached == 0 and store.stored == len(IOCS)
    by_ioc = {item["ioc"]: item for item in first}
    for item in second:
        assert item["cached"] and {**item, "cached": False} == by_ioc[item["ioc"]]
    await store.aclose()


def foreign_first_time(exc: BaseException) -> Any:
    """A fault hook: each body's first post raises `exc` (what no transport of ours raises)."""

    def fault(endpoint: Endpoint, keys: list[str], before: int) -> BaseException | None:
        return None if before else exc

    return fault


@pytest.mark.parametrize(
    "exc",
    [asyncio.CancelledError(), ValueError("bug"), OSError("gone"), TimeoutError()],
    ids=["CancelledError", "ValueError", "OSError", "TimeoutError"],
)
async def test_what_another_transport_raises_is_retried_not_a_hang_or_a_traceback(
    exc: BaseException,
) -> None:
    # attack 14: a CancelledError from post ended its worker as cancelled, its keys open,
    # and the run waited for them forever; anything else came out as a bare ExceptionGroup
    transport = FakeTransport(answers_for(IOCS), fault=foreign_first_time(exc))
    items, stats = await asyncio.wait_for(enrich(transport, IOCS), 30)
    check_exactly_once(items, IOCS, stats)
    batches = {tuple(keys) for _, keys in transport.posts}
    assert stats.ok == len(IOCS) and stats.retries == len(batches)  # each body, once more


async def test_a_transport_that_always_fails_oddly_fails_its_keys_cleanly() -> None:
    class Odd(FakeTransport):
        async def post(self, endpoint: Endpoint, body: bytes) -> bytes:
            await super().post(endpoint, body)
            return None  # type: ignore[return-value]

    items, stats = await asyncio.wait_for(enrich(Odd(answers_for(IOCS)), IOCS), 30)
    check_exactly_once(items, IOCS, stats)
    assert stats.failed == len(IOCS)
    assert {item["error"] for item in items} == {
        "transport: the transport answered NoneType, not bytes"
    }


async def test_a_limiter_factory_that_fails_leaves_nothing_open() -> None:
    transport = FakeTransport(answers_for(IOCS))

    def broken() -> AdaptiveLimiter:
        raise RuntimeError("no limiter today")

    e = Enricher(settings(), transport=transport, limiter=broken)
    with pytest.raises(RuntimeError, match="no limiter today"):
        await e.__aenter__()
    assert transport.opened == transport.closed == 1
    e2 = Enricher(settings(), transport=transport)
    async with e2:  # the transport can be used again
        items = [dict(item) async for item in e2.enrich(IOCS[:5])]
    assert len(items) == 5


async def test_the_suffix_tables_are_built_off_the_loop_as_it_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Judging the first name builds the public suffix tables (0.3-0.4 s): an Enricher builds
    them in a thread of its own as it opens, so the first run does not hold its loop (a
    service's other requests) that long (attack 19b, finding 6)."""
    import threading

    from enricher.inputs import suffixes

    built_in: list[str] = []
    build = suffixes.build_tables

    def recorded() -> None:
        built_in.append(threading.current_thread().name)
        build()

    monkeypatch.setattr(suffixes, "build_tables", recorded)
    suffixes._list.cache_clear()
    suffixes.top_labels.cache_clear()
    loop_thread = threading.current_thread().name
    async with Enricher(settings(), transport=FakeTransport(answers_for(IOCS))):
        assert suffixes.tables_built()
    assert built_in == ["suffix tables"] != [loop_thread]
    async with Enricher(settings(), transport=FakeTransport(answers_for(IOCS))):
        pass
    assert built_in == ["suffix tables"]  # once a process


class _OldStore:
    """An `AnswerStore` written to the Protocol before `store_lines_soon` (a library user's
    own, as the README invites): the documented members, handed to a `MemoryAnswers`."""

    def __init__(self) -> None:
        from enricher.state.memory import MemoryAnswers

        self.inner = MemoryAnswers()
        self.fmt = self.inner.fmt
        self.stored = 0

    @property
    def identity(self) -> Any:
        return self.inner.identity

    def admit(self, identity: Any) -> object:
        self.inner.admit(identity)
        return None

    def bind(self, identity: Any) -> None:
        self.inner.bind(identity)

    async def unanswered_endpoints(self, *, identity: Any) -> set[Endpoint]:
        return await self.inner.unanswered_endpoints(identity=identity)

    async def answers(self, keys: Any, *, identity: Any) -> Any:
        return await self.inner.answers(keys, identity=identity)

    async def store_soon(self, endpoint: Endpoint, items: Any, *, identity: Any) -> None:
        items = list(items)
        self.stored += len(items)
        await self.inner.store_soon(endpoint, items, identity=identity)

    def tally(self, *, hits: int = 0, misses: int = 0) -> None:
        self.inner.tally(hits=hits, misses=misses)

    def report(self) -> dict[str, object]:
        return self.inner.report()

    async def aclose(self) -> None:
        await self.inner.aclose()


def _old_subclass() -> _OldStore:
    from enricher.state.ports import AnswerStore

    class Sub(_OldStore, AnswerStore):  # subclassing the Protocol, as MemoryAnswers does
        pass

    return Sub()


@pytest.mark.parametrize("make", [_OldStore, _old_subclass], ids=["structural", "subclass"])
async def test_a_store_without_store_lines_soon_is_given_its_answers(make: Any) -> None:
    # found attacking freshcache: the pipeline called `store_lines_soon`, which such a store
    # lacks: a structural one failed the run (AttributeError), a subclass of the Protocol
    # got its empty body and stored nothing, silently (every later run a miss)
    store = make()
    for n in (1, 2):
        stats = RunStats()
        transport = FakeTransport(answers_for(IOCS))
        async with Enricher(
            settings(), stats=stats, transport=transport, cache=store, cache_owner=False
        ) as e:
            items = [dict(item) async for item in e.enrich(IOCS)]
        check_exactly_once(items, IOCS, stats)
        assert store.stored == len(IOCS)  # the first run's, kept
        assert len(transport.posts) == (0 if n == 2 else len(transport.posts))
    assert store.report()["hits"] == len(IOCS)


class _Bytes(bytes):
    pass


class _SubclassTransport(FakeTransport):
    """Answers a bytes subclass (`isinstance(raw, bytes)`, as Sender._post checks it)."""

    async def post(self, endpoint: Endpoint, body: bytes) -> bytes:
        return _Bytes(await super().post(endpoint, body))


async def test_a_transport_answering_a_bytes_subclass_is_read_as_bytes() -> None:
    # the C readers of a body take exact bytes: the run neither crashes nor fails a key
    items, stats = await enrich(_SubclassTransport(answers_for(IOCS)), IOCS)
    check_exactly_once(items, IOCS, stats)
    assert all("verdict" in item for item in items) and stats.ok == len(IOCS)
