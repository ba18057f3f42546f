"""The emulator's pure parts: request validation and deterministic answers (no network)."""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.api.protocol import CLASSIFICATION_TYPES, match_key, parse_response
from enricher.emulator import (
    CP_IDS,
    MALICIOUS_TYPES,
    EmulatorConfig,
    InvalidRequest,
    answer_for,
    classification_of,
    normalize_key,
)
from enricher.emulator.faults import FaultDrawer, Outcome
from enricher.emulator.keys import normalize_keys, parse_body
from enricher.emulator.window import PeakCounter, RateWindow, retry_after_seconds
from enricher.ioc import Endpoint

TUTORIAL_MD5 = "92f44e405db16ac55d97e3bfe3b132fa"
MAX_TTL_MS = 30 * 86_400_000
PRODUCT_FIELDS = {
    "productType": str,
    "type": str,
    "title": str,
    "manufacturer": str,
    "signatureVerified": bool,
    "externalSignatureVerificationStatus": str,
    "signed": bool,
}


VALID = {
    Endpoint.FILE: {"md5": TUTORIAL_MD5},
    Endpoint.DOMAIN: {"domain": "www.cybereason.com"},
    Endpoint.IP: {"ipAddress": "12.34.56.78", "addressType": "Ipv4"},
}


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_entry(endpoint: Endpoint, entry: dict[str, Any]) -> None:
    """The documented shape and field types of one classificationResponses entry."""
    assert set(entry) == {
        "requestKey",
        "ttl",
        "aggregatedResult",
        "allowFurtherClassification",
        "cpId",
        "cpType",
    }
    assert is_int(entry["ttl"]) and 0 < entry["ttl"] <= MAX_TTL_MS
    assert isinstance(entry["allowFurtherClassification"], bool)
    assert entry["cpType"] in CP_IDS and CP_IDS[entry["cpType"]][0] == entry["cpId"]
    agg = entry["aggregatedResult"]
    assert set(agg) <= {"maliciousClassification", "productClassification", "link", "firstSeen"}
    mal = agg["maliciousClassification"]
    assert set(mal) <= {"type", "classificationScore", "typeScore", "source"}
    assert mal["type"] in CLASSIFICATION_TYPES
    assert is_int(mal["classificationScore"]) and is_int(mal["typeScore"])
    assert mal["classificationScore"] == -1 or 0 <= mal["classificationScore"] <= 100
    assert isinstance(mal.get("source", ""), str)
    assert isinstance(agg["link"], str) and agg["link"].startswith("http")
    if "firstSeen" in agg:
        assert (
            is_int(agg["firstSeen"]) and 1_262_304_000_000 <= agg["firstSeen"] < 1_800_000_000_000
        )
    key = entry["requestKey"]
    if endpoint is Endpoint.FILE:
        product = agg["productClassification"]
        assert {k: type(v) for k, v in product.items()} == PRODUCT_FIELDS
        assert set(key) in ({"md5", "sha1"}, {"md5", "sha1", "sha256"})
        assert sum(v is not None for v in key.values()) == 1
    else:
        assert "productClassification" not in agg
        expected = {"domain"} if endpoint is Endpoint.DOMAIN else {"ipAddress", "addressType"}
        assert set(key) == expected


def random_keys(endpoint: Endpoint, n: int, seed: int = 1) -> list[dict[str, str]]:
    """n distinct valid requestKey objects for an endpoint."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if endpoint is Endpoint.FILE:
            name = ("md5", "sha1", "sha256")[i % 3]
            length = {"md5": 32, "sha1": 40, "sha256": 64}[name]
            out.append({name: f"{rng.getrandbits(length * 4):0{length}x}"})
        elif endpoint is Endpoint.DOMAIN:
            out.append({"domain": f"h{rng.getrandbits(40):x}.example{i % 7}.com"})
        elif i % 5:
            quad = ".".join(str(b) for b in rng.getrandbits(32).to_bytes(4, "big"))
            out.append({"ipAddress": quad, "addressType": "Ipv4"})
        else:
            out.append(
                {"ipAddress": f"2001:db8::{i:x}:{rng.getrandbits(16):x}", "addressType": "Ipv6"}
            )
    return out


# -- the tutorial's examples --------------------------------------------------------------


def test_tutorial_file_example_shape() -> None:
    entry = answer_for(Endpoint.FILE, {"md5": TUTORIAL_MD5})
    check_entry(Endpoint.FILE, entry)
    assert entry["requestKey"] == {"sha1": None, "md5": TUTORIAL_MD5}


def test_tutorial_domain_and_ip_examples_shape() -> None:
    domain = answer_for("domain_batch", {"domain": "www.cybereason.com"})
    check_entry(Endpoint.DOMAIN, domain)
    assert domain["requestKey"] == {"domain": "www.cybereason.com"}
    ip = answer_for("ip_batch", {"ipAddress": "12.34.56.78", "addressType": "Ipv4"})
    check_entry(Endpoint.IP, ip)
    assert ip["requestKey"] == {"ipAddress": "12.34.56.78", "addressType": "Ipv4"}


def test_answers_are_pinned_across_versions() -> None:
    # Stored test expectations elsewhere depend on these: change the algorithm deliberately.
    assert classification_of(Endpoint.FILE, TUTORIAL_MD5) == "whitelist"
    assert answer_for(Endpoint.FILE, {"md5": TUTORIAL_MD5})["ttl"] == 2317860839
    assert classification_of(Endpoint.DOMAIN, "www.cybereason.com") == "unknown"
    assert classification_of(Endpoint.IP, "12.34.56.78") == "unknown"


def test_sha1_and_sha256_echo_forms() -> None:
    sha1 = "a" * 40
    assert answer_for(Endpoint.FILE, {"sha1": sha1})["requestKey"] == {"sha1": sha1, "md5": None}
    sha256 = "b" * 64
    echo = answer_for(Endpoint.FILE, {"sha256": sha256})["requestKey"]
    assert echo == {"sha1": None, "md5": None, "sha256": sha256}


def test_every_shape_holds_and_the_protocol_module_reads_it() -> None:
    for endpoint in Endpoint:
        keys = random_keys(endpoint, 600, seed=7)
        entries = [answer_for(endpoint, key) for key in keys]
        for entry in entries:
            check_entry(endpoint, entry)
        parsed = parse_response(endpoint, orjson.dumps({"classificationResponses": entries}))
        asked = [match_key(endpoint, key) for key in keys]
        assert list(parsed.answers) == asked
        for key in asked:
            assert key is not None
            agg = parsed.answers[key][0].aggregatedResult
            assert agg is not None and agg.maliciousClassification is not None
            assert agg.maliciousClassification.type == classification_of(endpoint, key)


# -- determinism ---------------------------------------------------------------------------


def test_same_key_same_answer_whatever_the_case_or_form() -> None:
    md5 = "92F44E405DB16AC55D97E3BFE3B132FA"
    assert answer_for(Endpoint.FILE, {"md5": md5}) == answer_for(
        Endpoint.FILE, {"md5": md5.lower()}
    )
    assert answer_for(Endpoint.FILE, {"md5": md5, "sha1": None}) == answer_for(
        Endpoint.FILE, {"md5": md5.lower()}
    )
    assert answer_for(Endpoint.DOMAIN, {"domain": "WWW.Cybereason.COM."}) == answer_for(
        Endpoint.DOMAIN, {"domain": "www.cybereason.com"}
    )
    long_v6 = {"ipAddress": "2001:0DB8:0000:0000:0000:0000:0000:0001", "addressType": "Ipv6"}
    short_v6 = {"ipAddress": "2001:db8::1", "addressType": "Ipv6"}
    assert answer_for(Endpoint.IP, long_v6) == answer_for(Endpoint.IP, short_v6)


def test_endpoints_are_answered_independently() -> None:
    # The same string asked at two endpoints is two different questions.
    digests = {str(answer_for(Endpoint.DOMAIN, {"domain": f"k{i}.com"})) for i in range(50)} | {
        str(answer_for(Endpoint.FILE, {"md5": f"{i:032x}"})) for i in range(50)
    }
    assert len(digests) == 100


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40))
def test_hash_answers_ignore_case(sha1: str) -> None:
    entry = answer_for(Endpoint.FILE, {"sha1": sha1})
    check_entry(Endpoint.FILE, entry)
    assert entry == answer_for(Endpoint.FILE, {"sha1": sha1.swapcase()})
    assert entry["requestKey"]["sha1"] == sha1.lower()
    assert (
        classification_of(Endpoint.FILE, sha1)
        == entry["aggregatedResult"]["maliciousClassification"]["type"]
    )


def test_normalized_keys_agree_with_the_protocol_module() -> None:
    for endpoint in Endpoint:
        for key in random_keys(endpoint, 300, seed=3):
            upper = {k: v.upper() if k != "addressType" else v for k, v in key.items()}
            normalized = normalize_key(endpoint, upper)
            assert normalized == match_key(endpoint, key) == match_key(endpoint, upper)
            assert match_key(endpoint, answer_for(endpoint, upper)["requestKey"]) == normalized


# -- proportions ---------------------------------------------------------------------------


def test_classification_proportions_are_realistic() -> None:
    seen: Counter[str] = Counter()
    for endpoint in Endpoint:
        counts = Counter(
            classification_of(endpoint, normalize_key(endpoint, key))
            for key in random_keys(endpoint, 20_000, seed=11)
        )
        seen += counts
        total = sum(counts.values())
        malicious = sum(counts[t] for t in MALICIOUS_TYPES) / total
        assert 0.02 <= malicious <= 0.08, (endpoint, malicious)
        common = counts["indifferent"] + counts["unknown"] + counts["no_type_found"]
        assert common / total > 0.6
        assert 0.05 <= counts["whitelist"] / total <= 0.3
        if endpoint is Endpoint.DOMAIN:
            assert counts["sinkholed"] > 0 and counts["unresolved"] > 0
        else:
            assert counts["sinkholed"] == counts["unresolved"] == 0
    assert set(seen) == set(CLASSIFICATION_TYPES)


def test_all_provider_types_appear() -> None:
    cp_types = Counter(
        answer_for(endpoint, key)["cpType"]
        for endpoint in Endpoint
        for key in random_keys(endpoint, 3000, seed=5)
    )
    assert set(cp_types) == set(CP_IDS)


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b"{}", "no requestData"),
        (b'{"requestData": {}}', "requestData must be a list"),
        (b'{"requestData": [], "x": 1}', "unknown field 'x'"),
        (b'{"requestData": [{"key": {}}]}', "requestData[0] must be an object"),
        (b'{"requestData": [5]}', "requestData[0] must be an object"),
        (b'{"requestData": [{"requestKey": {}, "more": 1}]}', "unknown field 'more'"),
    ],
)
def test_bodies_of_the_wrong_shape_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        parse_body(body)


@pytest.mark.parametrize(
    ("endpoint", "key", "message"),
    [
        (Endpoint.FILE, {"md5": "xyz"}, "malformed md5 'xyz' at requestData[3]"),
        (Endpoint.FILE, {"md5": "g" * 32}, "malformed md5"),
        (Endpoint.FILE, {"sha1": "a" * 32}, "malformed sha1"),
        (Endpoint.FILE, {"md5": 5}, "malformed md5"),
        (Endpoint.FILE, {"sha512": "a" * 128}, "unknown key name 'sha512' at requestData[3]"),
        (Endpoint.FILE, {"domain": "a.com"}, "unknown key name 'domain'"),
        (Endpoint.FILE, {}, "no md5, sha1 or sha256"),
        (Endpoint.FILE, {"md5": "a" * 32, "sha1": "b" * 40}, "more than one hash"),
        (Endpoint.DOMAIN, {"domain": ""}, "malformed domain"),
        (Endpoint.DOMAIN, {"domain": "a b.com"}, "malformed domain"),
        (Endpoint.DOMAIN, {"domain": None}, "domain must be a string"),
        (Endpoint.DOMAIN, {"host": "a.com"}, "unknown key name 'host'"),
        (
            Endpoint.IP,
            {"ipAddress": "1.2.3.4", "addressType": "ipv4"},
            "invalid addressType 'ipv4' at requestData[3]",
        ),
        (Endpoint.IP, {"ipAddress": "1.2.3.4"}, "invalid addressType None"),
        (Endpoint.IP, {"ipAddress": "::1", "addressType": "Ipv4"}, "is not an Ipv4 address"),
        (Endpoint.IP, {"ipAddress": "1.2.3.4", "addressType": "Ipv6"}, "is not an Ipv6 address"),
        (Endpoint.IP, {"ipAddress": "01.2.3.4", "addressType": "Ipv4"}, "is not an Ipv4"),
        (Endpoint.IP, {"ipAddress": "1.2.3.4", "addressType": "Ipv4", "x": 1}, "unknown key"),
    ],
)
def test_bad_keys_are_refused_with_their_cause(
    endpoint: Endpoint, key: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        normalize_key(endpoint, key, 3)
    # In a whole request, the position named is the key's own.
    with pytest.raises(InvalidRequest, match=re.escape(message.replace("[3]", "[1]"))):
        normalize_keys(endpoint, [VALID[endpoint], key])


def test_sha256_can_be_refused() -> None:
    key = {"sha256": "c" * 64}
    assert normalize_key(Endpoint.FILE, key) == "c" * 64
    with pytest.raises(InvalidRequest, match="unknown key name 'sha256'"):
        normalize_key(Endpoint.FILE, key, accept_sha256=False)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=60).filter(lambda s: not any(c.isspace() for c in s)))
def test_any_domain_gets_a_serializable_answer(domain: str) -> None:
    try:
        normalized = normalize_key(Endpoint.DOMAIN, {"domain": domain})
    except InvalidRequest:
        assert not domain.lower().rstrip(".")  # only dots: nothing left of the name
        return
    entry = answer_for(Endpoint.DOMAIN, {"domain": domain})
    check_entry(Endpoint.DOMAIN, entry)
    assert orjson.loads(orjson.dumps(entry)) == entry
    assert match_key(Endpoint.DOMAIN, entry["requestKey"]) == normalized


def test_public_names() -> None:
    import enricher.emulator as package

    assert sorted(package.__all__) == [
        "API_PREFIX",
        "CP_IDS",
        "Emulator",
        "EmulatorConfig",
        "FAULT_NAMES",
        "InvalidRequest",
        "LogEntry",
        "MALICIOUS_TYPES",
        "NO_RESPONSE",
        "RetryAfter",
        "TYPE_WEIGHTS",
        "answer_for",
        "classification_of",
        "entry_for",
        "normalize_key",
    ]
    for name in package.__all__:
        assert getattr(package, name) is not None


# -- config, fault plans, windows (pure) ---------------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"drop_rate": 1.5}, "drop_rate must be a probability"),
        ({"missing_key_rate": -0.1}, "missing_key_rate must be a probability"),
        ({"server_error_rate": 0.7, "hang_rate": 0.4}, "must sum to <= 1"),
        ({"rate_limit": 0}, "rate_limit must be >= 1"),
        ({"max_batch": 0}, "max_batch must be >= 1"),
        ({"latency_ms": -5}, "latency_ms must be"),
        ({"api_token": ""}, "api_token must not be empty"),
        ({"token_header": "Bad Header"}, "token_header must be a header name"),
        ({"login_credentials": ("user", "")}, "login_credentials must be"),
        ({"refuse_keys": "a.com"}, "refuse_keys must be a set"),
    ],
)
def test_config_is_validated(knobs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        EmulatorConfig(**knobs)


def test_config_normalizes_refused_keys_and_hides_secrets() -> None:
    config = EmulatorConfig(
        refuse_keys={"A.Example.", "2001:DB8:0:0::1"},
        api_token="zq-secret-1",
        login_credentials=("zq-user", "zq-secret-2"),
    )
    assert config.refuse_keys == {"a.example", "2001:db8::1"}
    assert "zq-" not in repr(config)


def test_fault_plans_follow_the_seed_and_the_rates() -> None:
    config = EmulatorConfig(
        seed=5, server_error_rate=0.1, drop_rate=0.05, shuffle_rate=0.5, latency_ms=10, jitter_ms=5
    )
    drawer, again = FaultDrawer(config), FaultDrawer(config)
    plans = [drawer.draw() for _ in range(10_000)]
    assert plans == [again.draw() for _ in range(10_000)]
    outcomes = Counter(p.outcome for p in plans)
    assert 900 < outcomes[Outcome.SERVER_ERROR] < 1100 and 400 < outcomes[Outcome.DROP] < 600
    assert outcomes[Outcome.HANG] == 0
    assert 4700 < sum(p.shuffle for p in plans) < 5300
    assert all(0.005 <= p.latency <= 0.015 for p in plans)
    assert {p.error_status for p in plans} == {500, 502, 503, 504}


def test_rate_window_and_peak_counter() -> None:
    window, peak = RateWindow(3), PeakCounter()
    results = []
    for t in (0.0, 0.1, 0.2, 0.3, 0.9, 1.0, 1.05, 1.2):
        peak.add(t)
        results.append(window.admit(t))
    # 0.0, 0.1, 0.2 fill the window; 0.3 and 0.9 wait for 0.0 to leave; at 1.0 it has left.
    assert results[:3] == [None, None, None]
    assert results[3] == pytest.approx(0.7) and results[4] == pytest.approx(0.1)
    assert results[5] is None and results[6] == pytest.approx(0.05) and results[7] is None
    assert peak.peak == 6  # 0.1 .. 1.05 arrived within (0.05, 1.05]
    assert RateWindow(None).admit(0.0) is None
    assert retry_after_seconds(0.01) == 1 and retry_after_seconds(1.0) == 1
    assert retry_after_seconds(1.2) == 2
