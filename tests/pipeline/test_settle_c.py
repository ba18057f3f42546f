"""The C steps of the answer side give what their Python loops give: `_records.match`
(parse_response's loop over a plain body) and `_records.answer_lines` (settle's loop over
the keys answered), each against the same call with the C step turned off."""

from __future__ import annotations

import copy
from typing import Any
from unittest.mock import patch

import orjson
import pytest

from enricher.api import protocol
from enricher.api.protocol import parse_response
from enricher.ioc import Endpoint, IocType
from enricher.output.records import python_record_line
from enricher.pipeline import resolve
from enricher.pipeline.batcher import Key
from enricher.pipeline.resolve import Settled, Tries, settle

VERDICTS = {"malware": "malicious", "whitelist": "benign"}
KEYS: list[Key] = [(IocType.DOMAIN, f"k{i}.example.com") for i in range(6)]
HASHES: list[Key] = [(IocType.MD5, "a" * 32), (IocType.SHA1, "b" * 40), (IocType.SHA256, "c" * 64)]


def entry(echo: dict[str, Any], kind: str = "malware", **more: Any) -> dict[str, Any]:
    return {
        "requestKey": echo,
        "aggregatedResult": {"maliciousClassification": {"type": kind, "classificationScore": 3}},
        "ttl": 7,
        **more,
    }


def domain(value: str, **more: Any) -> dict[str, Any]:
    return entry({"domain": value}, **more)


def both(endpoint: Endpoint, body: bytes, asked: Any) -> Any:
    """parse_response with the C match and without it: the same, or the same error."""
    out = []
    for c in (protocol._C_MATCH, None):
        with patch.object(protocol, "_C_MATCH", c):
            try:
                out.append(parse_response(endpoint, body, asked))
            except Exception as exc:  # compared below
                out.append(repr(exc))
    assert out[0] == out[1]
    return out[0]


def body(*entries: Any) -> bytes:
    return orjson.dumps({"classificationResponses": list(entries)})


@pytest.mark.skipif(protocol._C_MATCH is None, reason="the C module is not built")
def test_the_c_match_is_the_loop_s() -> None:
    asked = {v for _, v in KEYS}
    hashes = {v for _, v in HASHES}
    plain = body(*(domain(v) for _, v in KEYS))
    assert list(both(Endpoint.DOMAIN, plain, asked).answers) == [v for _, v in KEYS]
    assert protocol._C_MATCH is not None and protocol._C_ENTRIES is not None
    entries, raws = protocol._entries(plain), protocol._C_ENTRIES(plain)
    assert entries is not None and raws is not None
    found = protocol._C_MATCH(entries, raws, asked, ("domain",), 1000)
    assert found is not None and list(found) == [v for _, v in KEYS]  # taken in C
    cases = [
        body(*(domain(v) for _, v in KEYS[::-1])),  # any order
        body(domain("K0.example.com."), domain(KEYS[1][1])),  # echoed in another form
        body(domain(KEYS[0][1]), domain(KEYS[0][1])),  # twice, the same
        body(domain(KEYS[0][1]), domain(KEYS[0][1], ttl=8)),  # twice, not the same
        body(domain(KEYS[0][1]), {"ttl": 1}),  # no requestKey
        body(domain(KEYS[0][1]), entry({"domain": None})),
        body(domain(KEYS[0][1]), entry({"domain": 5})),
        body(domain("stranger.example.com")),
        body(domain(KEYS[0][1], deep=[[[[]]]] * 400)),  # long: its depth is checked
        body(domain(KEYS[0][1]), "not an object"),
        body(),
    ]
    for case in cases:
        both(Endpoint.DOMAIN, case, asked)
        both(Endpoint.DOMAIN, case, frozenset(asked))
        both(Endpoint.DOMAIN, case, list(asked))  # not a set: the loop
    files = [
        body(*(entry({"md5": v, "sha1": None}) for v in hashes)),
        body(entry({"md5": None, "sha1": "b" * 40}), entry({"md5": "", "sha256": "c" * 64})),
        body(entry({"md5": "a" * 32, "sha1": "b" * 40})),  # md5 first
        body(entry({"md5": 0, "sha1": "", "sha256": "c" * 64})),
        body(entry({"md5": [], "sha1": None, "sha256": None})),
        body(entry({"md5": "A" * 32})),
    ]
    for case in files:
        both(Endpoint.FILE, case, hashes)
    ips = body(entry({"ipAddress": "::1", "addressType": "Ipv6"}), entry({"ipAddress": "1.2.3.4"}))
    both(Endpoint.IP, ips, {"::1", "1.2.3.4"})
    # what it is given wrong is said, not read
    with pytest.raises(TypeError):
        protocol._C_MATCH([], [], [], ("domain",), 1000)  # type: ignore[arg-type]
    assert protocol._C_MATCH([1], [b"x"], set(), ("domain",), 0) is None


def settle_both(keys: Any, parsed: Any, tries: Tries, **kw: Any) -> Settled:
    """settle with the C lines and without them: the same Settled and tries."""
    out = []
    for c in (resolve._C_ANSWER_LINES, None):
        mine = copy.deepcopy(tries)
        with patch.object(resolve, "_C_ANSWER_LINES", c):
            done = settle(keys, parsed, mine, missing_attempts=2, conflict_attempts=3,
                          verdicts=VERDICTS, **kw)  # fmt: skip
        out.append((done, mine))
    assert out[0] == out[1]
    tries.missing, tries.conflicts = out[0][1].missing, out[0][1].conflicts
    return out[0][0]


@pytest.mark.skipif(resolve._C_ANSWER_LINES is None, reason="the C module is not built")
def test_the_c_lines_are_the_loop_s() -> None:
    asked = {v for _, v in KEYS}
    tries = Tries()
    everyone = parse_response(Endpoint.DOMAIN, body(*(domain(v) for _, v in KEYS)), asked)
    assert len(settle_both(KEYS, everyone, tries).lines) == 6
    assert len(settle_both(tuple(KEYS), everyone, tries, ttl_factor=1000).lines) == 6
    # some left out (asked again), then answered (their tries forgotten), with others
    # that disagree, one whose answer holds our secret, and a float score (Python's line)
    some = parse_response(Endpoint.DOMAIN, body(domain(KEYS[0][1]), domain(KEYS[5][1])), asked)
    done = settle_both(KEYS, some, tries)
    assert len(done.requeue) == 4 and tries.missing
    mixed = parse_response(
        Endpoint.DOMAIN,
        body(domain(KEYS[1][1]), domain(KEYS[2][1], ttl=1), domain(KEYS[2][1], ttl=2),
             domain(KEYS[3][1], aggregatedResult={"maliciousClassification": {
                 "type": "whitelist", "classificationScore": 0.5}}),
             domain(KEYS[4][1])),
        asked,
    )  # fmt: skip
    mixed.echoed.add(KEYS[4][1])
    del mixed.answers[KEYS[4][1]]
    done = settle_both(KEYS[1:5], mixed, tries)
    assert [k for k, _, _ in done.failed] == [KEYS[4]] and done.requeue == [KEYS[2]]
    assert KEYS[1][1] not in tries.missing and KEYS[3][1] not in tries.missing
    assert b'"score":0.5' in done.lines[1]
    # into what a batch settled already; with origins (the Python loop)
    into = Settled(keys=[KEYS[0]], lines=[b"x\n"], answered=[(KEYS[0][1], "benign", None)])
    settle_both(KEYS, everyone, tries, into=into)
    settle_both(KEYS, everyone, tries, origins={KEYS[0][1]: ("in.txt", 3)})


@pytest.mark.skipif(resolve._C_ANSWER_LINES is None, reason="the C module is not built")
def test_the_c_lines_refuse_what_is_not_theirs() -> None:
    lines = resolve._C_ANSWER_LINES
    assert lines is not None
    parsed = parse_response(Endpoint.DOMAIN, body(domain(KEYS[0][1])), {KEYS[0][1]})
    done: list[Any] = []
    made: list[bytes] = []
    answered: list[Any] = []
    # a key that is not an (IocType, str) pair: nothing done, the loop decides
    assert lines([KEYS[0], ("x",)], parsed.answers, VERDICTS, 1, done, made, answered) is None
    assert lines([(IocType.DOMAIN, 5)], parsed.answers, VERDICTS, 1, done, made, answered) is None
    assert done == made == answered == []
    with pytest.raises(TypeError):
        lines([KEYS[0]], {KEYS[0][1]: "not a pair"}, VERDICTS, 1, done, made, answered)
    with pytest.raises(TypeError):
        lines((KEYS[0],), parsed.answers, VERDICTS, 1, done, made, answered)  # type: ignore[arg-type]
    # the keys list changed under a Python record_line (it makes a float score's line)
    keys = [KEYS[0], KEYS[1]]
    answers = dict(parsed.answers)
    float_entry = parse_response(
        Endpoint.DOMAIN,
        body(domain(KEYS[1][1], aggregatedResult={"maliciousClassification": {
            "classificationScore": 0.5}})),
        {KEYS[1][1]},
    ).answers  # fmt: skip
    answers = {KEYS[0][1]: float_entry[KEYS[1][1]], KEYS[1][1]: float_entry[KEYS[1][1]]}

    def meddling(*args: Any) -> Any:
        keys[1] = "not a key"  # type: ignore[call-overload]
        return python_record_line(*args)

    from enricher.output import records

    native = records._NATIVE
    native.setup(records._TYPE, records.FRESH_TAIL, records.CACHED_TAIL, meddling)
    try:
        with pytest.raises(TypeError):
            lines(keys, answers, VERDICTS, 1, done, made, answered)
    finally:
        native.setup(records._TYPE, records.FRESH_TAIL, records.CACHED_TAIL, python_record_line)
    assert len(done) == len(made) == len(answered) == 1
