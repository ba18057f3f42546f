"""The send stage's policy, case by case, without I/O: what a failed request's keys become
(`decide`) and what an answer does for a batch's keys (`settle`)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from enricher.api.protocol import parse_response
from enricher.errors import (
    BadRequest,
    BatchTooLarge,
    BudgetSpent,
    HTTPStatusError,
    MalformedBody,
    QuotaExhausted,
    RequestError,
    Stopping,
    TransportError,
)
from enricher.ioc import Endpoint, IocType
from enricher.output.records import read_record
from enricher.pipeline.batcher import Key
from enricher.pipeline.resolve import (
    ECHOED,
    MISSING,
    Bisect,
    Decision,
    Defer,
    FailAll,
    FailKey,
    Settled,
    Split,
    Tries,
    decide,
    failure_of,
    settle,
)

KEYS: list[Key] = [(IocType.DOMAIN, f"k{i}.example.com") for i in range(5)]


@pytest.mark.parametrize(
    ("error", "keys", "decision"),
    [
        (BudgetSpent("budget spent: 10 requests"), KEYS, Defer("budget spent: 10 requests")),
        (QuotaExhausted("quota: until 12:00", 0.0), KEYS, Defer("quota: until 12:00")),
        (Stopping("interrupted"), KEYS[:1], Defer("interrupted")),
        (TransportError("reset"), KEYS, FailAll()),
        (HTTPStatusError(503), KEYS, FailAll()),
        (MalformedBody("truncated"), KEYS, FailAll()),
        (BatchTooLarge(), KEYS, Split(2)),
        (BatchTooLarge(), KEYS[:2], Split(1)),
        (BatchTooLarge(), KEYS[:1], FailAll()),  # nothing left to split
        (BadRequest(), KEYS, Bisect(2)),
        (BadRequest("bad key"), KEYS[:4], Bisect(2)),
        (BadRequest("invalid domain at requestData[3]"), KEYS, FailKey(3)),
        (BadRequest("invalid domain at requestData[0]"), KEYS, FailKey(0)),
        (BadRequest("at requestData[5]"), KEYS, Bisect(2)),  # names no key of these
        (BadRequest("invalid domain at requestData[0]"), KEYS[:1], FailAll()),
    ],
)
def test_decide(
    error: RequestError | BudgetSpent | Stopping, keys: list[Key], decision: Decision
) -> None:
    assert decide(error, keys) == decision


def test_a_failure_says_the_kind_and_counts_one_attempt_at_least() -> None:
    error = HTTPStatusError(503, "busy")
    assert failure_of(error) == ("http_503: HTTP 503: busy", 1)
    error.attempts = 4
    assert failure_of(error) == ("http_503: HTTP 503: busy", 4)


def body(*entries: dict[str, Any]) -> bytes:
    return orjson.dumps({"classificationResponses": list(entries)})


def entry(value: str, kind: str = "malware", **more: Any) -> dict[str, Any]:
    return {
        "requestKey": {"domain": value},
        "aggregatedResult": {"maliciousClassification": {"type": kind}},
        "ttl": 7,
        **more,
    }


def answer(*entries: dict[str, Any], asked: list[Key] = KEYS) -> Any:
    return parse_response(Endpoint.DOMAIN, body(*entries), {v for _, v in asked})


def run_settle(keys: list[Key], parsed: Any, tries: Tries, **kw: Any) -> Settled:
    kw.setdefault("missing_attempts", 2)
    kw.setdefault("conflict_attempts", 3)
    kw.setdefault("verdicts", {"malware": "malicious", "whitelist": "benign"})
    return settle(keys, parsed, tries, **kw)


def test_answered_keys_get_their_record_lines_in_the_order_asked() -> None:
    tries = Tries()
    parsed = answer(entry(KEYS[2][1]), entry(KEYS[0][1], "whitelist"), entry("stranger.com"))
    done = run_settle(KEYS[:3], parsed, tries, ttl_factor=1000)
    assert done.keys == [KEYS[0], KEYS[2]]
    assert [(a[0], a[1], a[2]) for a in done.answered] == [
        (KEYS[0][1], "benign", 7000),
        (KEYS[2][1], "malicious", 7000),
    ]
    records = [read_record(line) for line in done.lines]
    assert [(r["ioc"], r["verdict"], r["cached"]) for r in records] == [
        (KEYS[0][1], "benign", False),
        (KEYS[2][1], "malicious", False),
    ]
    assert records[1]["response"] == entry(KEYS[2][1])
    assert done.requeue == [KEYS[1]] and done.failed == [] and done.deferred == []
    assert done.extra == 1  # the stranger
    assert tries.missing == {KEYS[1][1]: 1}


def test_origins_go_into_the_lines() -> None:
    done = run_settle(
        KEYS[:1], answer(entry(KEYS[0][1])), Tries(), origins={KEYS[0][1]: ("in.txt", 4)}
    )
    assert read_record(done.lines[0])["origin"] == {"file": "in.txt", "line": 4}


def test_a_key_left_out_is_asked_again_then_fails() -> None:
    tries = Tries()
    empty = answer()
    for n in (1, 2):
        done = run_settle(KEYS[:1], empty, tries)
        assert done.requeue == KEYS[:1] and not done.failed
        assert tries.missing == {KEYS[0][1]: n}
    done = run_settle(KEYS[:1], empty, tries)
    assert done.requeue == [] and done.failed == [(KEYS[0], MISSING, 3)]
    assert tries.missing == {}  # settled: forgotten


def test_an_answer_at_last_forgets_the_tries() -> None:
    tries = Tries()
    run_settle(KEYS[:1], answer(), tries)
    assert tries.missing
    done = run_settle(KEYS[:1], answer(entry(KEYS[0][1])), tries)
    assert done.keys == KEYS[:1] and tries.missing == {}


def test_entries_that_disagree_are_asked_again_then_fail() -> None:
    value = KEYS[0][1]
    parsed = answer(entry(value, "whitelist"), entry(value, "malware"), entry(KEYS[1][1]))
    assert parsed.conflicts == {value}
    tries = Tries()
    for n in (1, 2):
        done = run_settle(KEYS[:2], parsed, tries)
        assert done.keys == [KEYS[1]] and done.requeue == [KEYS[0]]
        assert tries.conflicts == {value: n}
    done = run_settle(KEYS[:2], parsed, tries)
    why = "conflicting_answers: 3 answers each gave it entries that disagree"
    assert done.requeue == [] and done.failed == [(KEYS[0], why, 3)]
    assert tries.conflicts == {}


def test_an_answer_holding_our_secret_fails_at_once() -> None:
    parsed = answer(entry(KEYS[1][1]))
    parsed.echoed.add(KEYS[0][1])
    tries = Tries(missing={KEYS[0][1]: 1})
    done = run_settle(KEYS[:2], parsed, tries)
    assert done.failed == [(KEYS[0], ECHOED, 1)] and done.keys == [KEYS[1]]
    assert done.requeue == [] and tries.missing == {}


def test_settle_adds_to_what_a_batch_settled_already() -> None:
    done = Settled()
    done.fail(KEYS[:1], TransportError("reset"), Tries())
    run_settle(KEYS[1:3], answer(entry(KEYS[1][1])), Tries(), into=done)
    run_settle(KEYS[3:], answer(entry(KEYS[3][1]), entry(KEYS[4][1])), Tries(), into=done)
    assert done.keys == [KEYS[1], KEYS[3], KEYS[4]] and len(done.lines) == 3
    assert done.requeue == [KEYS[2]]
    assert done.failed == [(KEYS[0], "transport: reset", 1)]


def test_failing_keys_forgets_their_tries() -> None:
    tries = Tries(missing={KEYS[0][1]: 1, KEYS[1][1]: 1}, conflicts={KEYS[0][1]: 2})
    Settled().fail(KEYS[:1], TransportError("reset"), tries)
    assert tries.missing == {KEYS[1][1]: 1} and tries.conflicts == {}
