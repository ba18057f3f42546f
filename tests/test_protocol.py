"""The wire protocol, checked against the tutorial's own examples (tests/fixtures/tutorial)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from enricher.errors import ErrorBody, MalformedBody, SettingsError
from enricher.ioc import Endpoint, IocType
from enricher.protocol import (
    CLASSIFICATION_TYPES,
    build_request,
    match_answers,
    match_key,
    parse_response,
    request_key,
)

TUTORIAL = Path(__file__).parent / "fixtures" / "tutorial"


def fixture(name: str) -> bytes:
    return (TUTORIAL / f"{name}.json").read_bytes()


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
    match = match_answers(["92f44e405db16ac55d97e3bfe3b132fa"], parsed)
    assert match.missing == [] and match.extra == 0
    a = match.found["92f44e405db16ac55d97e3bfe3b132fa"]
    assert a.classification == "indifferent"
    assert a.score == -1 and a.type_score == -1
    assert a.ttl == 62957583
    assert a.source is None and a.first_seen is None and a.cp_type is None
    assert a.product is not None and a.product["title"] == "Power Shell"
    assert a.link is not None and a.link.startswith("https://www.virustotal.com/file/")
    assert a.entry == orjson.loads(fixture("file_response"))["classificationResponses"][0]


def test_tutorial_domain_response_round_trip() -> None:
    parsed = parse_response(Endpoint.DOMAIN, fixture("domain_response"))
    a = match_answers(["www.cybereason.com"], parsed).found["www.cybereason.com"]
    assert (a.classification, a.source, a.ttl) == ("indifferent", "VirusTotal", 52388991)
    assert a.first_seen == 1481719121821
    assert (a.cp_type, a.cp_id) == ("VIRUS_TOTAL", 2)
    assert a.product is None


def test_tutorial_ip_response_answers_another_key() -> None:
    # The tutorial asks for 12.34.56.78 and prints an answer for 1.2.3.4. Matched by
    # requestKey (never by position), that is an extra entry and a missing key.
    parsed = parse_response(Endpoint.IP, fixture("ip_response"))
    match = match_answers(["12.34.56.78"], parsed)
    assert match.missing == ["12.34.56.78"]
    assert match.extra == 1
    a = parsed.answers["1.2.3.4"]
    assert (a.classification, a.cp_type, a.ttl, a.first_seen) == (
        "indifferent",
        "TOKEN",
        1920533,
        1476350974204,
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
                {"requestKey": {"domain": "a.com"}, "ttl": 2},
                {"requestKey": {"domain": "stranger.com"}},
                "not an object",
                {"no": "requestKey"},
            ]
        }
    )
    parsed = parse_response(Endpoint.DOMAIN, body)
    assert parsed.answers["a.com"].ttl == 1  # the first answer wins
    match = match_answers(["a.com", "b.com"], parsed)
    assert match.missing == ["b.com"]
    assert match.extra == 1 + 1 + 2  # stranger, duplicate, two unusable


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
    a = parsed.answers["a.com"]
    assert (a.ttl, a.cp_id, a.classification, a.score, a.first_seen, a.product) == (None,) * 6


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
    assert match_answers(["a" * 32], parsed).missing == ["a" * 32]


def test_fourteen_documented_types() -> None:
    assert len(CLASSIFICATION_TYPES) == 14 == len(set(CLASSIFICATION_TYPES))
