"""`--output-format ecs`: Elastic Common Schema documents, ready for the `_bulk` API.

Two lines a record: the action (`{"create":{"_id":"..."}}`: the index or data stream is the
one the `_bulk` request names; the `_id` is derived from the IOC and its type, so a file sent
twice, after a partial failure or a resumed run, adds no second document: Elasticsearch
refuses the copy with a 409) and the document, an indicator as ECS's threat-intelligence
integrations write them (`event.kind: enrichment`, `event.category: [threat]`, `event.type:
[indicator]`, `threat.indicator.*`), with what ECS has no field for (the verdict, GTI's
classification and scores) under `enricher.*`:

    curl -s -H 'Content-Type: application/x-ndjson' --data-binary @out.ecs.ndjson \\
        'https://elastic:9200/iocs-gti/_bulk'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from ...ioc import IocType
from ...state.resume import repair
from .base import RecordFields, RecordWriter, utc_now

__all__ = ["ECS_VERSION", "EcsWriter", "document", "document_id"]

ECS_VERSION = "8.11.0"
#: how every action line begins (what follows is the document's `_id`)
ACTION = b'{"create":{'
_TYPES = {t.value: t for t in IocType}
#: threat.indicator.type (STIX 2.1 cyber observable names, as ECS asks)
_INDICATOR_TYPE = {
    "md5": "file",
    "sha1": "file",
    "sha256": "file",
    "domain": "domain-name",
    "ipv4": "ipv4-addr",
    "ipv6": "ipv6-addr",
}


def _observable(r: RecordFields) -> dict[str, Any]:
    kind, ioc = r["type"], r["ioc"]
    if kind in ("md5", "sha1", "sha256"):
        return {"file": {"hash": {kind: ioc}}}
    if kind == "domain":
        return {"url": {"domain": ioc}}
    return {"ip": ioc}


def document_id(ioc_type: str, ioc: str) -> str:
    """The `_id` of an IOC's document: the same in every run (128 bits of BLAKE2b of its
    type and value; an `_id` is at most 512 bytes, a URL's host may be longer)."""
    return hashlib.blake2b(f"{ioc_type}:{ioc}".encode(), digest_size=16).hexdigest()


def _action(r: RecordFields) -> bytes:
    return b'{"create":{"_id":"%s"}}\n' % document_id(r["type"], r["ioc"]).encode()


def document(r: RecordFields, timestamp: str) -> dict[str, Any]:
    """The ECS document of one record."""
    indicator: dict[str, Any] = {
        "type": _INDICATOR_TYPE[r["type"]],
        "name": r["ioc"],
        **_observable(r),
        "provider": r["source"],
        "reference": r["link"],
        "first_seen": r["first_seen"],
        "description": f"{r['verdict']}: {r['classification'] or 'no classification'}",
    }
    enricher: dict[str, Any] = {
        "type": r["type"],
        "verdict": r["verdict"],
        "classification": r["classification"],
        "score": r["score"],
        "type_score": r["type_score"],
        "cp_type": r["cp_type"],
        "ttl_ms": r["ttl_ms"],
        "cached": r["cached"],
    }
    if "origin" in r:
        enricher["origin"] = r["origin"]
    return {
        "@timestamp": timestamp,
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "enrichment",
            "category": ["threat"],
            "type": ["indicator"],
            "module": "enricher",
            "dataset": "enricher.gti",
        },
        "threat": {"indicator": {k: v for k, v in indicator.items() if v is not None}},
        "enricher": enricher,
    }


class EcsWriter(RecordWriter):
    name = "ecs"

    def __init__(self, *, now: Callable[[], datetime] | None = None) -> None:
        self.now = now or utc_now

    def encode_records(self, records: list[RecordFields]) -> bytes:
        stamp = self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        nl = orjson.OPT_APPEND_NEWLINE
        return b"".join(_action(r) + orjson.dumps(document(r, stamp), option=nl) for r in records)

    def recognizes(self, first_line: bytes) -> bool:
        return first_line.startswith(ACTION) and first_line.endswith(b"}}")

    def keys(self, path: str | Path) -> Iterator[tuple[IocType, str]]:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(ACTION):
                    continue
                try:
                    doc = orjson.loads(line)
                    t = _TYPES.get(doc["enricher"]["type"])
                    ioc = doc["threat"]["indicator"]["name"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # not a document of ours: skipped, never fatal
                if t is not None and isinstance(ioc, str):
                    yield t, ioc

    def repair(self, path: str | Path) -> int:
        """A torn line cut off, then an action line left without its document."""
        cut = repair(path)
        if not os.path.isfile(path):
            return cut
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(size - 256, 0)  # an action line is 54 bytes
            f.seek(start)
            tail = f.read()
            last = tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]
            if last.startswith(ACTION) and (start == 0 or len(last) < len(tail)):
                f.truncate(size - len(last))
                cut += len(last)
        return cut
