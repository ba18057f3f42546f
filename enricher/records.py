"""Output records (schema v1): one NDJSON line per unique IOC, and failure lines.

A record is a plain dict so that orjson writes it at full speed. The fields, their types and
their meaning are the README's "Output format"; change them only with a new schema version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, NotRequired, TypedDict, cast

import orjson

from .ioc import IocType

__all__ = [
    "SCHEMA_VERSION",
    "Deferred",
    "Failure",
    "Record",
    "deferred",
    "failure",
    "first_seen_iso",
    "record_format",
    "to_record",
]

SCHEMA_VERSION = 1


class Record(TypedDict):
    ioc: str
    type: str
    verdict: str
    classification: str | None
    score: int | float | None
    type_score: int | float | None
    source: str | None
    ttl_ms: int | None
    first_seen: str | None
    link: str | None
    product: dict[str, Any] | None
    cp_type: str | None
    response: dict[str, Any]
    origin: NotRequired[dict[str, Any]]
    cached: bool


class Failure(TypedDict):
    ioc: str
    type: str
    error: str
    attempts: int


class Deferred(TypedDict):
    ioc: str
    type: str
    reason: str


def first_seen_iso(epoch_ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC (`2016-12-14T12:38:41.821Z`), None when absent or
    out of range (years 1 to 9999)."""
    if epoch_ms is None:
        return None
    day, ms = divmod(epoch_ms, 86_400_000)
    prefix = _DAYS.get(day)
    if prefix is None:
        try:
            prefix = (_EPOCH + timedelta(days=day)).isoformat() + "T"
        except OverflowError:
            return None
        if len(_DAYS) >= 50_000:
            _DAYS.clear()
        _DAYS[day] = prefix
    second, ms = divmod(ms, 1000)
    clock = _CLOCK[second]
    if clock is None:
        clock = _CLOCK[second] = f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    return prefix + clock + _MILLIS[ms]


_EPOCH = date(1970, 1, 1)
#: "YYYY-MM-DDT" by days since the epoch, as met (dates repeat across IOCs; bounded)
_DAYS: dict[int, str] = {}
#: "HH:MM:SS" for each second of a day (made when first met), and ".mmmZ" for each
#: millisecond: a time of day is two lookups (this runs once per record)
_CLOCK: list[str | None] = [None] * 86_400
_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]
_NUMBER = frozenset((int, float))  # bool is not a number here
_NO_FIELDS: dict[str, Any] = {}


def to_record(
    ioc_type: IocType,
    ioc: str,
    entry: dict[str, Any],
    verdicts: Mapping[str, str],
    ttl_factor: int = 1,
    cached: bool = False,
    origin: tuple[str, int] | None = None,
) -> Record:
    """The output record for one answered IOC from its verbatim answer `entry`; absent or
    mistyped fields are None. `ttl_factor` turns the API's ttl unit into ms; `origin`
    (file, line) is where the IOC was first seen (`--with-source`).

    This runs once per IOC: it reads the fields as `protocol.answer_from_entry` does, inline.
    """
    agg = entry.get("aggregatedResult")
    if type(agg) is not dict:
        agg = _NO_FIELDS
    mal = agg.get("maliciousClassification")
    if type(mal) is not dict:
        mal = _NO_FIELDS
    ctype = mal.get("type")
    if type(ctype) is str:
        verdict = verdicts.get(ctype, "unknown")
    else:
        ctype = None
        verdict = "unknown"
    score = mal.get("classificationScore")
    type_score = mal.get("typeScore")
    source = mal.get("source")
    ttl = entry.get("ttl")
    first_seen = agg.get("firstSeen")
    link = agg.get("link")
    product = agg.get("productClassification")
    cp_type = entry.get("cpType")
    record: dict[str, Any] = {
        "ioc": ioc,
        "type": ioc_type.value,
        "verdict": verdict,
        "classification": ctype,
        "score": score if type(score) in _NUMBER else None,
        "type_score": type_score if type(type_score) in _NUMBER else None,
        "source": source if type(source) is str else None,
        "ttl_ms": ttl * ttl_factor if type(ttl) is int else None,
        "first_seen": first_seen_iso(first_seen) if type(first_seen) is int else None,
        "link": link if type(link) is str else None,
        "product": product if type(product) is dict else None,
        "cp_type": cp_type if type(cp_type) is str else None,
        "response": entry,
    }
    if origin is not None:
        record["origin"] = {"file": origin[0], "line": origin[1]}
    record["cached"] = cached  # always the last field
    return cast(Record, record)


def record_format(verdicts: Mapping[str, str], ttl_unit: str, with_source: bool = False) -> str:
    """What a record line depends on besides the answer: two runs with the same format write
    the same line for the same answer (so a cached line can be written again as it is)."""
    doc = orjson.dumps([SCHEMA_VERSION, ttl_unit, sorted(verdicts.items()), with_source])
    return hashlib.blake2b(doc, digest_size=8).hexdigest()


def failure(ioc_type: IocType, ioc: str, error: str, attempts: int) -> Failure:
    return {"ioc": ioc, "type": ioc_type.value, "error": error, "attempts": attempts}


def deferred(ioc_type: IocType, ioc: str, reason: str) -> Deferred:
    return {"ioc": ioc, "type": ioc_type.value, "reason": reason}
