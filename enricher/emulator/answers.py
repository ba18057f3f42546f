"""Deterministic answers: every field of an entry is a pure function of (endpoint, key).

Each normalized key is hashed with BLAKE2b (personalised by endpoint) and the digest's bytes
are cut into the draws that pick the classification, scores, ttl, provider and so on. Python's
`hash()` is salted per process, so it is never used: the same key gets the same answer in every
process and run, in any batch, in any case it was sent in.

This is the emulator's hot path (about 2 µs a key): everything that follows from the
classification alone is looked up in one table built at import, and the server serializes the
entries with orjson. (Rendering JSON text from templates instead was measured: no faster.)
"""

from __future__ import annotations

import bisect
import ipaddress
import struct
from hashlib import blake2b
from itertools import accumulate
from typing import Any

import orjson

from ..ioc import Endpoint
from .catalog import CP_IDS, FAMILY, NO_SCORE, PRODUCTS, PROVIDERS, TYPE_WEIGHTS
from .keys import normalize_key

__all__ = [
    "answer_body",
    "answer_for",
    "classification_of",
    "echo_of",
    "entry",
    "entry_for",
]

# One row per classification, in weight order:
#   (type, scored, whitelist, providers as (cpType, cpId, source), file products)
# Whitelisted answers carry a score only half of the time; unscored ones have -1.
_Verdict = tuple[str, bool, bool, tuple[tuple[str, int, str], ...], tuple[dict[str, Any], ...]]


def _verdicts(endpoint: Endpoint) -> tuple[tuple[_Verdict, ...], tuple[int, ...]]:
    weights = TYPE_WEIGHTS[endpoint]
    rows = []
    for kind in weights:
        family = FAMILY[kind]
        providers = tuple((cp, *CP_IDS[cp]) for cp in PROVIDERS[family])
        products = PRODUCTS.get(family, ()) if endpoint is Endpoint.FILE else ()
        rows.append((kind, kind not in NO_SCORE, family == "whitelist", providers, products))
    return tuple(rows), tuple(accumulate(weights.values()))


_VERDICTS = {ep: _verdicts(ep) for ep in Endpoint}
_PERSON = {ep: ep.value.encode() for ep in Endpoint}  # BLAKE2b personalisation, <= 16 bytes
# 12 little-endian draws from the first 28 bytes of the 32-byte digest.
_DRAWS = struct.Struct("<HHHHHHHHHIIH")
_MIN_TTL_MS = 60_000
_TTL_SPAN_MS = 30 * 86_400_000 - _MIN_TTL_MS  # the server caps ttl at 30 days
_FIRST_SEEN_FROM_MS = 1_262_304_000_000  # 2010-01-01
_FIRST_SEEN_SPAN_S = 15 * 365 * 86_400


def _verdict(endpoint: Endpoint, draw: int) -> _Verdict:
    rows, cumulative = _VERDICTS[endpoint]
    return rows[bisect.bisect_right(cumulative, draw % cumulative[-1])]


def classification_of(endpoint: Endpoint | str, key: str) -> str:
    """The `maliciousClassification.type` the emulator gives a (normalized) key."""
    endpoint = Endpoint(endpoint)
    key = _loose(endpoint, key)
    digest = blake2b(key.encode(), digest_size=32, person=_PERSON[endpoint]).digest()
    return _verdict(endpoint, _DRAWS.unpack_from(digest)[0])[0]


def _loose(endpoint: Endpoint, key: str) -> str:
    """Normalize a key that should already be normalized, for callers that are not sure."""
    if endpoint is Endpoint.IP:
        if ":" in key:
            try:
                return ipaddress.IPv6Address(key).compressed
            except ValueError:
                return key.lower()
        return key
    return key.lower().rstrip(".")


def echo_of(endpoint: Endpoint, key: str, *, upper: bool = False) -> dict[str, Any]:
    """The `requestKey` echo for a normalized key; file echoes carry md5 and sha1 both.

    The echo is the normalized key, as a canonicalising server would send it back; `upper`
    gives the upper-cased hashes and domains of the `upper_echo` fault.
    """
    if endpoint is Endpoint.FILE:
        value = key.upper() if upper else key
        n = len(key)
        if n == 32:
            return {"sha1": None, "md5": value}
        if n == 40:
            return {"sha1": value, "md5": None}
        return {"sha1": None, "md5": None, "sha256": value}
    if endpoint is Endpoint.DOMAIN:
        return {"domain": key.upper() if upper else key}
    return {"ipAddress": key, "addressType": "Ipv6" if ":" in key else "Ipv4"}


def entry(endpoint: Endpoint, key: str, *, upper_echo: bool = False) -> dict[str, Any]:
    """The `classificationResponses` entry for a normalized key: the server's fast path.

    The product object is shared between entries; use `entry_for` for a private copy.
    """
    digest = blake2b(key.encode(), digest_size=32, person=_PERSON[endpoint]).digest()
    (
        d_type,
        d_provider,
        d_source,
        d_score,
        d_type_score,
        d_first_seen_ms,
        d_first_seen_absent,
        d_product,
        d_allow,
        d_ttl,
        d_first_seen_s,
        d_link,
    ) = _DRAWS.unpack_from(digest)
    kind, scored, whitelist, providers, products = _verdict(endpoint, d_type)
    cp_type, cp_id, source = providers[d_provider % len(providers)]

    if scored and not (whitelist and d_score & 1):
        malicious: dict[str, Any] = {
            "type": kind,
            "classificationScore": 1 + d_score % 100,
            "typeScore": 1 + d_type_score % 100,
        }
    else:
        malicious = {"type": kind, "classificationScore": -1, "typeScore": -1}
    if d_source & 3:  # the source is absent in a quarter of the answers
        malicious["source"] = source
    aggregated: dict[str, Any] = {"maliciousClassification": malicious}
    if products:
        aggregated["productClassification"] = products[d_product % len(products)]
    aggregated["link"] = _link(endpoint, key, cp_type, digest, d_link)
    if d_first_seen_absent & 7:  # firstSeen is absent in an eighth of the answers
        aggregated["firstSeen"] = (
            _FIRST_SEEN_FROM_MS
            + d_first_seen_s % _FIRST_SEEN_SPAN_S * 1000
            + d_first_seen_ms % 1000
        )
    return {
        "requestKey": echo_of(endpoint, key, upper=upper_echo),
        "ttl": _MIN_TTL_MS + d_ttl % _TTL_SPAN_MS,
        "aggregatedResult": aggregated,
        "allowFurtherClassification": d_allow % 5 != 0,
        "cpId": cp_id,
        "cpType": cp_type,
    }


def _link(endpoint: Endpoint, key: str, cp_type: str, digest: bytes, draw: int) -> str:
    """VirusTotal's page for the key (files: by a sha256, as in the tutorial), or the
    provider's site."""
    if cp_type != "VIRUS_TOTAL":
        return "http://www.cybereason.com"
    if endpoint is Endpoint.FILE:
        sha256 = key if len(key) == 64 else digest.hex()
        return f"https://www.virustotal.com/file/{sha256}/analysis/{1_500_000_000 + draw * 1000}/"
    if endpoint is Endpoint.DOMAIN:
        return f"https://www.virustotal.com/en/domain/{key}/information"
    return f"https://www.virustotal.com/en/ip-address/{key}/information"


def answer_body(entries: list[dict[str, Any]]) -> bytes:
    """A whole 200 body for these entries."""
    return orjson.dumps({"classificationResponses": entries})


def entry_for(endpoint: Endpoint | str, key: str) -> dict[str, Any]:
    """The entry for an already normalized key, all of it the caller's to keep or change."""
    endpoint = Endpoint(endpoint)
    result = entry(endpoint, key)
    aggregated = result["aggregatedResult"]
    if "productClassification" in aggregated:
        aggregated["productClassification"] = dict(aggregated["productClassification"])
    return result


def answer_for(endpoint: Endpoint | str, key_object: dict[str, Any]) -> dict[str, Any]:
    """The entry the emulator returns for the `requestKey` object `key_object`, echo included.

    Raises `InvalidRequest` (a ValueError) for a key the emulator would answer with 400.
    """
    endpoint = Endpoint(endpoint)
    return entry_for(endpoint, normalize_key(endpoint, key_object))
