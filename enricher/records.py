"""Output records (schema v1): one NDJSON line per unique IOC, and failure lines.

A record is a plain dict so that orjson writes it at full speed. The fields, their types and
their meaning are the README's "Output format"; change them only with a new schema version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict, cast

import orjson

from .ioc import IocType
from .protocol import Answer

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
    """Epoch milliseconds as ISO-8601 UTC (`2016-12-14T12:38:41.821Z`), None when absent."""
    if epoch_ms is None:
        return None
    try:
        dt = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_record(
    ioc_type: IocType,
    ioc: str,
    answer: Answer,
    verdicts: Mapping[str, str],
    ttl_factor: int = 1,
    cached: bool = False,
    origin: tuple[str, int] | None = None,
) -> Record:
    """The output record for one answered IOC. `ttl_factor` turns the API's ttl unit into ms;
    `origin` (file, line) is where the IOC was first seen (`--with-source`)."""
    if origin is not None:
        base = _record(ioc_type, ioc, answer, verdicts, ttl_factor, cached)
        # `cached` stays the last field
        record: dict[str, Any] = {k: v for k, v in base.items() if k != "cached"}
        record["origin"] = {"file": origin[0], "line": origin[1]}
        record["cached"] = cached
        return cast(Record, record)
    return _record(ioc_type, ioc, answer, verdicts, ttl_factor, cached)


def _record(
    ioc_type: IocType,
    ioc: str,
    answer: Answer,
    verdicts: Mapping[str, str],
    ttl_factor: int,
    cached: bool,
) -> Record:
    ctype = answer.classification
    ttl = answer.ttl
    return {
        "ioc": ioc,
        "type": ioc_type.value,
        "verdict": verdicts.get(ctype, "unknown") if ctype is not None else "unknown",
        "classification": ctype,
        "score": answer.score,
        "type_score": answer.type_score,
        "source": answer.source,
        "ttl_ms": ttl * ttl_factor if ttl is not None else None,
        "first_seen": first_seen_iso(answer.first_seen),
        "link": answer.link,
        "product": answer.product,
        "cp_type": answer.cp_type,
        "response": answer.entry,
        "cached": cached,
    }


def record_format(verdicts: Mapping[str, str], ttl_unit: str, with_source: bool = False) -> str:
    """What a record line depends on besides the answer: two runs with the same format write
    the same line for the same answer (so a cached line can be written again as it is)."""
    doc = orjson.dumps([SCHEMA_VERSION, ttl_unit, sorted(verdicts.items()), with_source])
    return hashlib.blake2b(doc, digest_size=8).hexdigest()


def failure(ioc_type: IocType, ioc: str, error: str, attempts: int) -> Failure:
    return {"ioc": ioc, "type": ioc_type.value, "error": error, "attempts": attempts}


def deferred(ioc_type: IocType, ioc: str, reason: str) -> Deferred:
    return {"ioc": ioc, "type": ioc_type.value, "reason": reason}
