"""The GTI classification wire protocol: request bodies out, validated answers in.

Everything that knows the JSON shape of the three batch endpoints lives here; the rest of
enricher sees `(IocType, value)` pairs going out and `Answer`s coming back. Answers are
matched to the keys asked by `requestKey`, never by position: the server may answer in any
order, echo hashes and domains in another case, leave keys out, or add entries.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from .errors import ErrorBody, MalformedBody, SettingsError
from .ioc import ENDPOINT_OF, Endpoint, IocType

__all__ = [
    "CLASSIFICATION_TYPES",
    "Answer",
    "Match",
    "ParsedResponse",
    "answer_from_entry",
    "build_request",
    "match_answers",
    "match_key",
    "parse_response",
    "request_key",
]

#: The 14 documented values of `maliciousClassification.type`. Others pass through unchanged.
CLASSIFICATION_TYPES: tuple[str, ...] = (
    "ransomware",
    "maltool",
    "hacktool",
    "unwanted",
    "malware",
    "sinkholed",
    "suspicious",
    "whitelist",
    "indifferent",
    "unresolved",
    "unknown",
    "no_type_found",
    "blacklist",
    "av_detected",
)

_HASH_FIELDS = ("md5", "sha1", "sha256")
_ADDRESS_TYPE = {IocType.IPV4: "Ipv4", IocType.IPV6: "Ipv6"}


def request_key(ioc_type: IocType, value: str, *, allow_sha256: bool = False) -> dict[str, str]:
    """The `requestKey` object for one normalized IOC.

    sha256 is not documented for `file_batch`; it is sent only when `allow_sha256` is set.
    """
    if ioc_type is IocType.DOMAIN:
        return {"domain": value}
    if ioc_type is IocType.IPV4 or ioc_type is IocType.IPV6:
        return {"ipAddress": value, "addressType": _ADDRESS_TYPE[ioc_type]}
    if ioc_type is IocType.SHA256 and not allow_sha256:
        raise SettingsError(
            "sha256 keys are not documented for file_batch; set api.send_sha256 = true to send them"
        )
    return {ioc_type.value: value}


def build_request(keys: Iterable[tuple[IocType, str]], *, allow_sha256: bool = False) -> bytes:
    """The JSON body of one batch request: `{"requestData": [{"requestKey": {...}}, ...]}`.

    All keys must belong to one endpoint. The body is a pure function of the keys, so sending
    it twice (a retry after a dropped connection) asks the same question twice.
    """
    keys = list(keys)
    types = {ioc_type for ioc_type, _ in keys}
    endpoints = {ENDPOINT_OF[t] for t in types}
    if len(endpoints) > 1:
        raise ValueError(f"a batch mixes {' and '.join(sorted(endpoints))} keys")
    if IocType.SHA256 in types and not allow_sha256:
        request_key(IocType.SHA256, "", allow_sha256=False)  # raises the error that says why
    if _PLAIN("".join([value for _, value in keys])) is None:
        # not only the characters normalize() makes: let orjson escape what needs it
        data = [{"requestKey": request_key(t, v, allow_sha256=True)} for t, v in keys]
        return orjson.dumps({"requestData": data})
    # the same JSON orjson writes, formatted without a dict per key
    template = _TEMPLATE
    items = ",".join([template[t] % v for t, v in keys])
    return ('{"requestData":[' + items + "]}").encode()


#: the characters of normalized hashes, domains and IPs: none that JSON must escape
_PLAIN = re.compile(r"[0-9a-zA-Z.:_-]*").fullmatch
#: one `requestData` item per IOC type, with `%s` where the value goes
_TEMPLATE: dict[IocType, str] = {
    t: orjson.dumps({"requestKey": request_key(t, "%s", allow_sha256=True)}).decode()
    for t in IocType
}


def match_key(endpoint: Endpoint, key: Any) -> str | None:
    """The normalized IOC a `requestKey` object (sent or echoed) stands for, or None.

    Hashes and domains compare case-insensitively (domains without a trailing dot); IPv6 in
    its compressed form. The file echo carries every hash field, the unasked ones null.
    """
    if not isinstance(key, dict):
        return None
    if endpoint is Endpoint.FILE:
        for name in _HASH_FIELDS:
            v = key.get(name)
            if isinstance(v, str) and v:
                return v.lower()
        return None
    if endpoint is Endpoint.DOMAIN:
        v = key.get("domain")
        return v.lower().rstrip(".") if isinstance(v, str) and v else None
    v = key.get("ipAddress")
    if not isinstance(v, str) or not v:
        return None
    if ":" in v:
        try:
            return ipaddress.IPv6Address(v).compressed
        except ValueError:
            return v.lower()
    return v


class Answer(NamedTuple):
    """One validated `classificationResponses` entry. Absent or mistyped fields are None."""

    key: str
    classification: str | None
    score: int | float | None
    type_score: int | float | None
    source: str | None
    ttl: int | None
    first_seen: int | None
    link: str | None
    product: dict[str, Any] | None
    cp_type: str | None
    cp_id: int | None
    entry: dict[str, Any]  # the verbatim entry


def _num(v: Any) -> int | float | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def answer_from_entry(key: str, entry: dict[str, Any]) -> Answer:
    """The validated Answer for one entry already matched to `key` (e.g. from the cache)."""
    agg = entry.get("aggregatedResult")
    if not isinstance(agg, dict):
        agg = {}
    mal = agg.get("maliciousClassification")
    if not isinstance(mal, dict):
        mal = {}
    product = agg.get("productClassification")
    return Answer(
        key,
        _str(mal.get("type")),
        _num(mal.get("classificationScore")),
        _num(mal.get("typeScore")),
        _str(mal.get("source")),
        _int(entry.get("ttl")),
        _int(agg.get("firstSeen")),
        _str(agg.get("link")),
        product if isinstance(product, dict) else None,
        _str(entry.get("cpType")),
        _int(entry.get("cpId")),
        entry,
    )


@dataclass(slots=True)
class ParsedResponse:
    """A well-formed answer body: the verbatim entry for each key it answers, and what could
    not be used. `answer(key)` gives an entry's validated fields."""

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0  # further entries for a key already answered
    unusable: int = 0  # entries that are not objects or have no recognizable requestKey

    def answer(self, key: str) -> Answer | None:
        entry = self.answers.get(key)
        return None if entry is None else answer_from_entry(key, entry)


#: the `requestKey` fields that carry the IOC, in the order `match_key` reads them
_ECHO_FIELDS = {
    Endpoint.FILE: _HASH_FIELDS,
    Endpoint.DOMAIN: ("domain",),
    Endpoint.IP: ("ipAddress",),
}


def _error_text(doc: Any) -> str:
    if isinstance(doc, dict):
        for name in ("message", "error", "errorMessage", "status", "reason"):
            v = doc.get(name)
            if isinstance(v, str) and v:
                return v[:200]
        return "keys: " + ", ".join(sorted(str(k) for k in doc)[:8])
    return type(doc).__name__


def parse_response(
    endpoint: Endpoint, body: bytes, asked: Container[str] = ()
) -> ParsedResponse:
    """Parse and validate one HTTP-200 body; `asked`, the normalized keys the request asked
    for, only makes matching faster.

    Raises `MalformedBody` for a truncated, non-JSON or wrongly shaped body and `ErrorBody`
    for a JSON object without a `classificationResponses` list (an error said with 200).
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not JSON ({len(body)} bytes): {exc.msg}") from None
    if not isinstance(doc, dict):
        raise MalformedBody(f"body is a JSON {type(doc).__name__}, not an object")
    responses = doc.get("classificationResponses")
    if responses is None:
        raise ErrorBody(f"HTTP 200 without classificationResponses ({_error_text(doc)})")
    if not isinstance(responses, list):
        raise MalformedBody("classificationResponses is not a list")
    parsed = ParsedResponse()
    answers = parsed.answers
    names = _ECHO_FIELDS[endpoint]
    duplicates = unusable = 0
    for entry in responses:
        # the server mostly echoes a key just as it was asked: look that up first, and make
        # the canonical form (lower case, no trailing dot, compressed IPv6) only when not
        echo = entry.get("requestKey") if type(entry) is dict else None
        key: str | None = None
        if type(echo) is dict:
            v = None
            for name in names:
                v = echo.get(name)
                if v:
                    break
            key = v if type(v) is str and v in asked else match_key(endpoint, echo)
        if key is None:
            unusable += 1
        elif key in answers:
            duplicates += 1
        else:
            answers[key] = entry
    parsed.duplicates = duplicates
    parsed.unusable = unusable
    return parsed


class Match(NamedTuple):
    """Answers paired with the keys asked: found (verbatim entries), missing (to ask again),
    and extras."""

    found: dict[str, dict[str, Any]]
    missing: list[str]
    extra: int  # answered keys nobody asked for, duplicates and unusable entries


def match_answers(
    asked: Sequence[str], parsed: ParsedResponse | Mapping[str, dict[str, Any]]
) -> Match:
    """Pair each asked (normalized) key with its answer, in the order asked."""
    answers = parsed.answers if isinstance(parsed, ParsedResponse) else parsed
    found: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for key in asked:
        a = answers.get(key)
        if a is None:
            missing.append(key)
        else:
            found[key] = a
    extra = len(answers) - len(found)
    if isinstance(parsed, ParsedResponse):
        extra += parsed.duplicates + parsed.unusable
    return Match(found, missing, extra)
