"""The wire protocol, checked against the tutorial's own examples (tests/fixtures/tutorial)."""

from __future__ import annotations

import copy
import gc
import json
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.api.protocol import (
    CLASSIFICATION_TYPES,
    ParsedResponse,
    _parse_with_orjson,
    answer_from_entry,
    build_request,
    match_key,
    parse_response,
    read_entry,
    request_key,
)
from enricher.errors import ErrorBody, MalformedBody, SettingsError
from enricher.ioc import Endpoint, IocType
from enricher.output.records import Record, first_seen_iso, read_record, record_line
from enricher.pipeline.resolve import Settled, Tries, settle

TUTORIAL = Path(__file__).parents[1] / "fixtures" / "tutorial"


def fixture(name: str) -> bytes:
    return (TUTORIAL / f"{name}.json").read_bytes()


def matched(ioc_type: IocType, asked: list[str], parsed: ParsedResponse) -> Settled:
    """What the send stage makes of an answer to `asked` (`requeue`: the keys it left out)."""
    keys = [(ioc_type, value) for value in asked]
    return settle(keys, parsed, Tries(), missing_attempts=3, conflict_attempts=3, verdicts={})


def missing(ioc_type: IocType, asked: list[str], parsed: ParsedResponse) -> list[str]:
    return [value for _, value in matched(ioc_type, asked, parsed).requeue]


def record_of(
    parsed: ParsedResponse, ioc_type: IocType, key: str, verdicts: dict[str, str] | None = None
) -> Record:
    """The record the run writes for `key` from this answer."""
    entry, raw = parsed.answers[key]
    return read_record(record_line(ioc_type, key, entry, raw, verdicts or {})[0])


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("file_request", [(IocType.MD5, "92f44e405db16ac55d97e3bfe3b132fa")]),
        ("domain_request", [(IocType.DOMAIN, "www.cybereason.com")]),
        ("ip_request", [(IocType.IPV4, "12.34.56.78")]),
    ],
)
def test_build_request_equals_the_tutorial_request(name: str, keys: list) -> None:
    assert orjson.loads(build_request(keys)) == orjson.loads(fixture(name))


def test_build_request_is_compact_and_deterministic() -> None:
    keys = [(IocType.SHA1, "a" * 40), (IocType.MD5, "b" * 32)]
    body = build_request(keys)
    assert body == build_request(keys)
    assert body == (
        b'{"requestData":[{"requestKey":{"sha1":"' + b"a" * 40 + b'"}},'
        b'{"requestKey":{"md5":"' + b"b" * 32 + b'"}}]}'
    )


def test_ip_address_type_is_spelled_exactly() -> None:
    assert request_key(IocType.IPV4, "1.2.3.4") == {"ipAddress": "1.2.3.4", "addressType": "Ipv4"}
    assert request_key(IocType.IPV6, "2001:db8::1") == {
        "ipAddress": "2001:db8::1",
        "addressType": "Ipv6",
    }


def test_sha256_only_when_allowed() -> None:
    with pytest.raises(SettingsError, match="send_sha256"):
        build_request([(IocType.SHA256, "c" * 64)])
    body = build_request([(IocType.SHA256, "c" * 64)], allow_sha256=True)
    assert orjson.loads(body) == {"requestData": [{"requestKey": {"sha256": "c" * 64}}]}


def test_a_batch_never_mixes_endpoints() -> None:
    with pytest.raises(ValueError, match="mixes"):
        build_request([(IocType.MD5, "b" * 32), (IocType.DOMAIN, "example.com")])


def test_tutorial_file_response_round_trip() -> None:
    parsed = parse_response(Endpoint.FILE, fixture("file_response"))
    key = "92f44e405db16ac55d97e3bfe3b132fa"
    match = matched(IocType.MD5, [key], parsed)
    assert match.requeue == [] and match.extra == 0
    assert match.keys == [(IocType.MD5, key)] and list(parsed.answers) == [key]
    a = record_of(parsed, IocType.MD5, key)
    assert a["classification"] == "indifferent"
    assert a["score"] == -1 and a["type_score"] == -1
    assert a["ttl_ms"] == 62957583
    assert a["source"] is None and a["first_seen"] is None and a["cp_type"] is None
    assert a["product"] is not None and a["product"]["title"] == "Power Shell"
    assert a["link"] is not None and a["link"].startswith("https://www.virustotal.com/file/")
    assert a["response"] == orjson.loads(fixture("file_response"))["classificationResponses"][0]


def test_tutorial_domain_response_round_trip() -> None:
    parsed = parse_response(Endpoint.DOMAIN, fixture("domain_response"))
    assert missing(IocType.DOMAIN, ["www.cybereason.com"], parsed) == []
    a = record_of(parsed, IocType.DOMAIN, "www.cybereason.com")
    assert (a["classification"], a["source"], a["ttl_ms"]) == (
        "indifferent",
        "VirusTotal",
        52388991,
    )
    assert a["first_seen"] == first_seen_iso(1481719121821) == "2016-12-14T12:38:41.821Z"
    assert (a["cp_type"], a["response"]["cpId"]) == ("VIRUS_TOTAL", 2)
    assert a["product"] is None


def test_tutorial_ip_response_answers_another_key() -> None:
    # The tutorial asks for 12.34.56.78 and prints an answer for 1.2.3.4. Matched by
    # requestKey (never by position), that is an extra entry and a missing key.
    parsed = parse_response(Endpoint.IP, fixture("ip_response"))
    match = matched(IocType.IPV4, ["12.34.56.78"], parsed)
    assert match.requeue == [(IocType.IPV4, "12.34.56.78")]
    assert match.extra == 1
    a = record_of(parsed, IocType.IPV4, "1.2.3.4")
    assert (a["classification"], a["cp_type"], a["ttl_ms"], a["first_seen"]) == (
        "indifferent",
        "TOKEN",
        1920533,
        first_seen_iso(1476350974204),
    )


def test_match_is_case_insensitive_and_order_free() -> None:
    entries = [
        {"requestKey": {"domain": "B.Example.COM."}, "ttl": 2},
        {"requestKey": {"sha1": None, "md5": "ABCDEF" + "0" * 26}, "ttl": 1},
    ]
    domain = parse_response(Endpoint.DOMAIN, orjson.dumps({"classificationResponses": entries}))
    assert set(domain.answers) == {"b.example.com"}
    assert domain.unusable == 1  # the md5 entry has no domain
    files = parse_response(Endpoint.FILE, orjson.dumps({"classificationResponses": entries}))
    assert set(files.answers) == {"abcdef" + "0" * 26}


def test_ipv6_echo_matches_in_any_spelling() -> None:
    key = {"ipAddress": "2001:0DB8:0000:0000:0000:0000:0000:0001", "addressType": "Ipv6"}
    assert match_key(Endpoint.IP, key) == "2001:db8::1"


def test_duplicates_and_strangers_are_counted_not_used() -> None:
    body = orjson.dumps(
        {
            "classificationResponses": [
                {"requestKey": {"domain": "a.com"}, "ttl": 1},
                # the same answer again, its key echoed in another case: no conflict
                {"requestKey": {"domain": "A.COM."}, "ttl": 1},
                {"requestKey": {"domain": "stranger.com"}},
                "not an object",
                {"no": "requestKey"},
            ]
        }
    )
    parsed = parse_response(Endpoint.DOMAIN, body)
    assert parsed.answers["a.com"][0].ttl == 1 and not parsed.conflicts
    assert parsed.answers["a.com"][1] == b'{"requestKey":{"domain":"a.com"},"ttl":1}'  # the first
    match = matched(IocType.DOMAIN, ["a.com", "b.com"], parsed)
    assert match.requeue == [(IocType.DOMAIN, "b.com")]
    assert match.extra == 1 + 1 + 2  # stranger, duplicate, two unusable


WHITELIST = {"maliciousClassification": {"type": "whitelist"}}
MALWARE = {"maliciousClassification": {"type": "malware"}}


@pytest.mark.parametrize(
    "second",
    [
        {"aggregatedResult": MALWARE, "ttl": 5},  # another verdict
        {"aggregatedResult": WHITELIST, "ttl": 6},  # another ttl
        {"aggregatedResult": WHITELIST, "ttl": 5, "cpType": "OTHER"},  # another field
    ],
    ids=["verdict", "ttl", "field"],
)
@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_entries_that_disagree_answer_nothing(second: dict[str, Any], reference: bool) -> None:
    """Two entries for one key that say different things (a whitelist, then malware): the
    key has no answer from this body (`conflicts`), whichever came first; the other keys do."""
    first = {"requestKey": {"domain": "a.com"}, "aggregatedResult": WHITELIST, "ttl": 5}
    entries = [first, {"requestKey": {"domain": "b.com"}, "ttl": 1},
               {"requestKey": {"domain": "A.com"}, **second}, first]  # fmt: skip
    body = orjson.dumps({"classificationResponses": entries})
    parsed = (_parse_with_orjson if reference else parse_response)(Endpoint.DOMAIN, body)
    assert parsed.conflicts == {"a.com"}
    assert set(parsed.answers) == {"b.com"}
    assert missing(IocType.DOMAIN, ["a.com", "b.com"], parsed) == ["a.com"]


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_an_ipv4_mapped_echo_is_the_ipv4_key(reference: bool) -> None:
    """`::ffff:10.1.2.3` is asked as 10.1.2.3: an answer echoing both forms gave that key two
    entries, which disagree here (it counted as an extra entry, the other answer stood)."""
    entries = [
        {"requestKey": {"ipAddress": "10.1.2.3", "addressType": "Ipv4"},
         "aggregatedResult": WHITELIST},
        {"requestKey": {"ipAddress": "::ffff:10.1.2.3", "addressType": "Ipv6"},
         "aggregatedResult": {"maliciousClassification": {"type": "malware"}}},
    ]  # fmt: skip
    body = orjson.dumps({"classificationResponses": entries})
    parsed = (_parse_with_orjson if reference else parse_response)(Endpoint.IP, body)
    assert parsed.conflicts == {"10.1.2.3"} and parsed.answers == {}
    alone = orjson.dumps({"classificationResponses": entries[1:]})
    assert set(parse_response(Endpoint.IP, alone, {"10.1.2.3"}).answers) == {"10.1.2.3"}


def test_mistyped_fields_become_none() -> None:
    entry = {
        "requestKey": {"domain": "a.com"},
        "ttl": "soon",
        "cpId": True,
        "aggregatedResult": {
            "maliciousClassification": {"type": 7, "classificationScore": "high"},
            "firstSeen": 1.5,
            "productClassification": "nope",
        },
    }
    parsed = parse_response(Endpoint.DOMAIN, orjson.dumps({"classificationResponses": [entry]}))
    assert parsed.answers["a.com"][0].cpId is None
    record = record_of(parsed, IocType.DOMAIN, "a.com")
    assert (record["ttl_ms"], record["classification"], record["score"]) == (None,) * 3
    assert (record["first_seen"], record["product"], record["verdict"]) == (None, None, "unknown")


_FIELDS = (
    ("ttl",),
    ("cpType",),
    ("cpId",),
    ("requestKey",),
    ("aggregatedResult",),
    ("aggregatedResult", "firstSeen"),
    ("aggregatedResult", "link"),
    ("aggregatedResult", "productClassification"),
    ("aggregatedResult", "maliciousClassification"),
    ("aggregatedResult", "maliciousClassification", "type"),
    ("aggregatedResult", "maliciousClassification", "classificationScore"),
    ("aggregatedResult", "maliciousClassification", "typeScore"),
    ("aggregatedResult", "maliciousClassification", "source"),
    ("unknownField",),
)


def _set(entry: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """entry[path[0]][path[1]]... = value, making objects on the way where there are none."""
    node = entry
    for name in path[:-1]:
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    node[path[-1]] = value


def test_a_record_reads_the_fields_the_answer_view_reads() -> None:
    # a record is written from an entry's typed fields, read the fast way where they have the
    # types it takes (records.record_line); Answer is the reference reading, and the two must
    # agree on every shape
    good = orjson.loads(fixture("domain_response"))["classificationResponses"][0]
    odd_values: list[Any] = [None, True, 7, 2.5, "x", [], {}, {"type": "malware"}]
    for value in odd_values:
        for path in _FIELDS:
            entry = copy.deepcopy(good)
            _set(entry, path, value)
            a = answer_from_entry("www.cybereason.com", entry)
            body = orjson.dumps({"classificationResponses": [entry]})
            parsed = parse_response(Endpoint.DOMAIN, body, {"www.cybereason.com"})
            if path == ("requestKey",):  # no key to answer: no record
                assert parsed.answers == {}
                continue
            r = record_of(parsed, IocType.DOMAIN, "www.cybereason.com", {"malware": "malicious"})
            assert (r["classification"], r["score"], r["type_score"], r["source"]) == (
                a.classification,
                a.score,
                a.type_score,
                a.source,
            ), path
            assert r["ttl_ms"] == a.ttl and r["link"] == a.link and r["product"] == a.product
            assert r["cp_type"] == a.cp_type and r["response"] == entry
            assert r["first_seen"] == first_seen_iso(a.first_seen)


def test_what_was_asked_only_makes_matching_faster() -> None:
    entries = [
        {"requestKey": {"ipAddress": "2001:0DB8:0:0:0:0:0:1", "addressType": "Ipv6"}},
        {"requestKey": {"ipAddress": "2001:db8::2", "addressType": "Ipv6"}},
        {"requestKey": {"ipAddress": "10.0.0.1", "addressType": "Ipv4"}},
        {"requestKey": {"ipAddress": ["10.0.0.1"], "addressType": "Ipv4"}},
    ]
    body = orjson.dumps({"classificationResponses": entries})
    asked = {"2001:db8::1", "2001:db8::2", "10.0.0.1"}
    fast = parse_response(Endpoint.IP, body, asked)
    slow = parse_response(Endpoint.IP, body)
    assert fast.answers == slow.answers and set(fast.answers) == asked
    assert (fast.unusable, fast.duplicates) == (slow.unusable, slow.duplicates) == (1, 0)


def test_request_bodies_are_what_orjson_writes() -> None:
    keys = [(IocType.MD5, "a" * 32), (IocType.SHA1, "b" * 40), (IocType.SHA256, "c" * 64)]
    for batch in (
        keys,
        [(IocType.DOMAIN, "xn--e1afmkfd.example"), (IocType.DOMAIN, 'q"\\.com')],
        [(IocType.IPV4, "1.2.3.4"), (IocType.IPV6, "2001:db8::1")],
    ):
        data = [{"requestKey": request_key(t, v, allow_sha256=True)} for t, v in batch]
        assert build_request(batch, allow_sha256=True) == orjson.dumps({"requestData": data})


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"classificationResponses": [{"requestKey": {"md5": "ab',  # truncated
        b"<html><body>502 Bad Gateway</body></html>",
        b"[1, 2, 3]",
        b'{"classificationResponses": {"not": "a list"}}',
        b"[" * 5000 + b"]" * 5000,  # deeper than any JSON parser should follow
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_response(Endpoint.FILE, body)


def test_error_body_with_http_200() -> None:
    with pytest.raises(ErrorBody, match="quota exceeded"):
        parse_response(Endpoint.FILE, b'{"status": "ERROR", "message": "quota exceeded"}')
    with pytest.raises(ErrorBody):
        parse_response(Endpoint.FILE, b"{}")


def test_empty_answer_list_is_an_answer_with_every_key_missing() -> None:
    parsed = parse_response(Endpoint.FILE, b'{"classificationResponses": []}')
    assert missing(IocType.MD5, ["a" * 32], parsed) == ["a" * 32]


def test_fourteen_documented_types() -> None:
    assert len(CLASSIFICATION_TYPES) == 14 == len(set(CLASSIFICATION_TYPES))


def test_first_seen_is_what_datetime_writes() -> None:
    def reference(ms: int) -> str:
        dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    rng = random.Random(5)
    samples = [0, 1, 999, 1_481_719_121_821, -1, -86_400_001, 253_402_300_799_999]
    samples += [-62_135_596_800_000]  # 0001-01-01T00:00:00.000Z
    samples += [rng.randrange(-(10**12), 4 * 10**12) for _ in range(20_000)]
    for ms in samples:
        assert first_seen_iso(ms) == reference(ms), ms
    for ms in (253_402_300_800_000, -62_135_596_800_001, 10**20):  # beyond years 1..9999
        assert first_seen_iso(ms) is None
    assert first_seen_iso(None) is None


# -- the fast reading (msgspec, verbatim bytes) against the reference (orjson, dicts) --------

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


def _reference(endpoint: Endpoint, body: bytes) -> dict[str, Any]:
    parsed = _parse_with_orjson(endpoint, body)
    return {
        key: orjson.loads(record_line(IocType.DOMAIN, key, e, raw, {"malware": "malicious"})[0])
        for key, (e, raw) in parsed.answers.items()
    } | {"": (parsed.duplicates, parsed.unusable)}


def _fast(endpoint: Endpoint, body: bytes, asked: set[str]) -> dict[str, Any]:
    parsed = parse_response(endpoint, body, asked)
    out: dict[str, Any] = {"": (parsed.duplicates, parsed.unusable)}
    for key, (e, raw) in parsed.answers.items():
        line, verdict, ttl = record_line(IocType.DOMAIN, key, e, raw, {"malware": "malicious"})
        assert line.endswith(b"}\n") and line.count(b"\n") == 1  # one line, always
        record = read_record(line)
        assert (verdict, ttl) == (record["verdict"], record["ttl_ms"])
        out[key] = record
    return out


@settings(max_examples=300, deadline=None)
@given(
    changes=st.lists(st.tuples(st.sampled_from(_FIELDS), _JSON_VALUES), max_size=3),
    pretty=st.booleans(),
    upper=st.booleans(),
)
def test_the_fast_reading_gives_the_reference_records(
    changes: list[tuple[tuple[str, ...], Any]], pretty: bool, upper: bool
) -> None:
    good = orjson.loads(fixture("domain_response"))["classificationResponses"][0]
    entry = copy.deepcopy(good)
    for path, value in changes:
        _set(entry, path, value)
    if upper and isinstance(entry.get("requestKey"), dict):
        entry["requestKey"] = {"domain": "WWW.Cybereason.COM."}
    doc = {"classificationResponses": [entry, good, "not an object"]}
    body = json.dumps(doc, indent=2 if pretty else None).encode()
    fast = _fast(Endpoint.DOMAIN, body, {"www.cybereason.com"})
    reference = _reference(Endpoint.DOMAIN, body)
    assert fast.keys() == reference.keys()
    for key, record in fast.items():
        if key:
            # the fields as the reference reads them; the response as the server sent it
            # (the reference re-encodes it: an integer beyond 64 bits becomes a float there)
            assert record.pop("response") in (entry, good)
            reference[key].pop("response")
        assert record == reference[key]


def test_bodies_the_fast_reading_leaves_to_orjson() -> None:
    good = orjson.dumps(orjson.loads(fixture("domain_response")))  # on one line
    cases = [
        good.replace(b"VirusTotal", "Virus\u00e9Total".encode()),  # UTF-8: read fast
        good.replace(b"VirusTotal", b"Virus\xffTotal"),  # not UTF-8: orjson refuses it
        good.replace(b'"ttl"', b'"big":1e400,"ttl"'),  # a number orjson cannot read
        good.replace(b'"ttl"', b'"deep":' + b"[" * 300 + b"]" * 300 + b',"ttl"'),
        good.replace(b'"ttl"', b'"deep":' + b"[" * 5000 + b"]" * 5000 + b',"ttl"'),
    ]
    for body in cases:
        try:
            expected: Any = _reference(Endpoint.DOMAIN, body)
        except MalformedBody:
            expected = MalformedBody
        try:
            got: Any = _fast(Endpoint.DOMAIN, body, {"www.cybereason.com"})
        except MalformedBody:
            got = MalformedBody
        if expected is MalformedBody and got is not MalformedBody:
            # written as it came, where orjson would refuse the body: valid JSON (RFC 8259
            # sets no limit on numbers or depth), one line, and the fields are the same
            assert b"1e400" in body or b"[" * 300 in body
            continue
        assert got == expected


def test_an_entry_s_number_beyond_a_double_fails_no_other_entry() -> None:
    # `"ttl": 1e400` in one entry made the body malformed: every key of the batch failed
    def entry(domain: str, n: bytes) -> bytes:
        mal = b'{"maliciousClassification":{"type":"malware","classificationScore":%b}}' % n
        return b'{"requestKey":{"domain":"%b"},"ttl":%b,"aggregatedResult":%b}' % (
            domain.encode(),
            n,
            mal,
        )

    body = b'{"classificationResponses":[%b,%b]}' % (entry("a.com", b"1e400"), entry("b.com", b"7"))
    for asked, text in [({"a.com", "b.com"}, body), (set(), body.replace(b",", b",\n"))]:
        got = _fast(Endpoint.DOMAIN, text, asked)
        assert set(got) == {"", "a.com", "b.com"}
        assert (got["a.com"]["ttl_ms"], got["b.com"]["ttl_ms"]) == (None, 7)
        assert got["a.com"]["score"] is None and got["b.com"]["score"] == 7
        assert got["a.com"]["response"]["ttl"] == float("inf")  # kept as the server wrote it


def test_record_lines_keep_nothing_of_a_long_classification_or_cp_type() -> None:
    # the classifications and cpTypes record_line looks up are bounded in count; a server
    # whose `source` or `cpType` is long text, another in each entry, must not leave it all
    # held once the lines are written (4,000 of 60 kB each held 950 MiB, attack16 finding 1)
    long = "x" * 20_000
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(40):
            raw = orjson.dumps(
                {"requestKey": {"domain": f"d{i}.com"}, "cpType": f"{i}{long}",
                 "aggregatedResult": {"maliciousClassification": {
                     "type": "malware", "classificationScore": 1, "source": f"{i}{long}"}}}
            )  # fmt: skip
            entry, raw = read_entry(raw)
            line, _, _ = record_line(IocType.DOMAIN, f"d{i}.com", entry, raw, {})
            assert read_record(line)["source"] == read_record(line)["cp_type"] == f"{i}{long}"
            del entry, raw, line
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 200_000  # 40 records of 40 kB each: 3.2 MB if they were kept


@pytest.mark.parametrize("extra", [b"", b',"x":1e400'])
def test_an_integer_orjson_cannot_write_is_read_as_orjson_reads_it(extra: bytes) -> None:
    # an entry read the reference way with a number beyond a double (`_read_beyond`) kept a
    # score of 10**400 whole, and record_line's orjson.dumps stopped the run with a traceback
    for number, want in [
        (b"1" + b"0" * 400, None),
        (b"1" + b"0" * 30, 1e30),
        (b"-9223372036854775809", -9.223372036854776e18),
        (b"18446744073709551615", 18446744073709551615),
    ]:
        mal = b'{"type":"malware","classificationScore":%b,"typeScore":%b}' % (number, number)
        agg = b'{"maliciousClassification":%b,"firstSeen":%b}' % (mal, number)
        doc = b'{"requestKey":{"md5":"%b"},"cpId":%b,"aggregatedResult":%b%b}'
        entry, raw = read_entry(doc % (b"0" * 32, number, agg, extra))
        got = entry.aggregatedResult.maliciousClassification  # type: ignore[union-attr]
        assert (got.classificationScore, got.typeScore) == (want, want)
        line = read_record(record_line(IocType.MD5, "0" * 32, entry, raw, {"malware": "m"})[0])
        assert (line["score"], line["type_score"]) == (want, want)


@pytest.mark.parametrize("multiline", [False, True])
def test_an_entry_nested_too_deep_fails_no_other_entry(multiline: bool) -> None:
    # one entry deeper than MAX_DEPTH made the whole body malformed: every key of its batch
    # failed, after every try; now that entry is unusable (its key asked again) and the
    # others are answers. A body of such entries alone is still malformed
    deep = b"[" * 600 + b"]" * 600
    good = b'{"requestKey":{"domain":"b.com"},"ttl":7}'
    for bad in (b'{"requestKey":{"domain":"a.com"},"x":%b}' % deep, b"[%b]" % deep):
        body = b'{"classificationResponses":[%b,%b]}' % (bad, good)
        if multiline:
            body = body.replace(b",", b",\n")
        parsed = parse_response(Endpoint.DOMAIN, body, {"a.com", "b.com"})
        assert (sorted(parsed.answers), parsed.unusable) == (["b.com"], 1)
        with pytest.raises(MalformedBody, match="nested deeper than"):
            parse_response(Endpoint.DOMAIN, b'{"classificationResponses":[%b]}' % bad)


@pytest.mark.parametrize("multiline", [False, True])
def test_an_entry_with_a_lone_surrogate_fails_no_other_entry(multiline: bool) -> None:
    # `"\ud800"` in one entry (a lone UTF-16 surrogate escape, which neither msgspec nor orjson
    # reads) made the whole body malformed: every key of its batch failed, after every try.
    # Now that entry is unusable (its key asked again); escaped backslashes before a `u`, and
    # a surrogate pair, are read as they were; a body of such entries alone is still malformed
    good = b'{"requestKey":{"domain":"b.com"},"ttl":7,"note":"\\\\ud800 \\ud83d\\ude00 \\\\"}'
    for lone in (b"\\ud800", b"\\uDC00", b"x\\\\\\udbff"):
        bad = b'{"requestKey":{"domain":"a.com"},"x":"%b"}' % lone
        for body in (
            b'{"classificationResponses":[%b,%b]}' % (bad, good),
            b'{"classificationResponses":[%b, %b, %b]}' % (good, bad, good),
        ):
            if multiline:
                body = body.replace(b",", b",\n")
            parsed = parse_response(Endpoint.DOMAIN, body, {"a.com", "b.com"})
            assert sorted(parsed.answers) == ["b.com"]
            assert parsed.unusable == 1
            raw = parsed.answers["b.com"][1]
            assert orjson.loads(raw)["note"] == "\\ud800 \U0001f600 \\"  # the bytes as they came
        with pytest.raises(MalformedBody, match="orjson"):
            parse_response(Endpoint.DOMAIN, b'{"classificationResponses":[%b]}' % bad)
