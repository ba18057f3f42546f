"""`--output-format stix`: one STIX 2.1 bundle.

For each record, three objects: an `indicator` (its `pattern`, the verdict as
`indicator_types` and a `verdict:` label, valid from the answer's time until its ttl runs
out, the GTI link as an external reference, and GTI's classification and scores in a property
extension, not `x_` properties, so that a strict reader, `stix2.parse(allow_custom=False)`,
takes it), the observable it matches (`file`, `domain-name`, `ipv4-addr`, `ipv6-addr`, with
the deterministic id STIX 2.1 gives it), and a `based-on` relationship between them. Every
object has the same id in every bundle (the indicator's and relationship's are UUIDv5 of the
IOC and its type), and the same `created` (STIX: the time of an object's first version, which
no later version may change; enricher keeps nothing between runs, so it is a fixed time,
`CREATED`), so a platform importing every night's bundle updates its objects (a newer
`modified`) instead of adding copies or refusing a version whose `created` moved. Every
indicator is `created_by_ref` one `identity`, enricher's, the bundle's first object; the
`extension-definition` of the properties is the second.

The objects are written as `stix2` writes them, but not made by it record by record: stix2
builds an indicator in ~3 ms (its ANTLR pattern parser), ~135 records a second for the three
objects, where a night's run writes 100,000 a second. So `stix2` makes the identity, and, when
the writer starts, the three objects of a sample IOC of each type, which must equal ours
field for field (patterns parsed and validated): what the writer makes is checked by the
library on every run, and the tests parse every object of a bundle with `stix2.parse`.

The bundle is streamed: its opening is written before the first batch, objects as they come,
its closing when the run ends, so memory does not grow with the run. The file is one JSON
document only once closed: a run killed midway cannot be resumed (`--force` starts it anew).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import stix2

from ...ioc import IocType
from .base import RecordFields, RecordWriter, samples, utc_now

__all__ = [
    "BUNDLE_RECORDS",
    "CREATED",
    "EXTENSION_ID",
    "IDENTITY_ID",
    "StixLinesWriter",
    "StixWriter",
    "object_ids",
    "stix_objects",
]

#: enricher's identity: the same id in every bundle, so a platform merges them
IDENTITY_ID = "identity--" + str(uuid.uuid5(uuid.NAMESPACE_URL, "https://enricher/identity"))
#: the property extension holding GTI's answer in each indicator
EXTENSION_ID = "extension-definition--" + str(
    uuid.uuid5(uuid.NAMESPACE_URL, "https://enricher/stix/gti-reputation")
)
#: the namespace of the indicators' and relationships' ids
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://enricher/stix")
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # of enricher's identity and extension
#: the `created` of every indicator and relationship, whatever run writes it
CREATED = "2026-01-01T00:00:00.000Z"
#: STIX 2.1, 2.9: the namespace of cyber observables' deterministic ids
_SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
_INDICATOR_TYPES = {
    "malicious": ["malicious-activity"],
    "suspicious": ["anomalous-activity"],
    "benign": ["benign"],
}
_HASH = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}
_SCO = {"domain": "domain-name", "ipv4": "ipv4-addr", "ipv6": "ipv6-addr"}
_PATTERN = {
    "md5": "[file:hashes.MD5 = '{}']",
    "sha1": "[file:hashes.'SHA-1' = '{}']",
    "sha256": "[file:hashes.'SHA-256' = '{}']",
    "domain": "[domain-name:value = '{}']",
    "ipv4": "[ipv4-addr:value = '{}']",
    "ipv6": "[ipv6-addr:value = '{}']",
}


#: the extension's definition, in words (STIX lets a schema be plain text)
_SCHEMA = (
    "Properties of an indicator: verdict (string: malicious, suspicious, benign, unknown, ...), "
    "classification (string, GTI's maliciousClassification.type), score and type_score "
    "(numbers, GTI's classificationScore and typeScore), source (string), cp_type (string, "
    "the answering provider), first_seen (timestamp), cached (boolean: answered from "
    "enricher's cache). Each is left out when GTI gave none."
)


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _observable(kind: str, ioc: str) -> dict[str, Any]:
    if kind in _HASH:
        contributing: dict[str, Any] = {"hashes": {_HASH[kind]: ioc}}
        sco = "file"
    else:
        contributing = {"value": ioc}
        sco = _SCO[kind]
    # the canonical JSON (RFC 8785) of the id-contributing properties: ASCII here, so
    # sorted keys without spaces
    name = orjson.dumps(contributing, option=orjson.OPT_SORT_KEYS).decode()
    sco_id = f"{sco}--{uuid.uuid5(_SCO_NAMESPACE, name)}"
    return {"type": sco, "spec_version": "2.1", "id": sco_id, **contributing}


def object_ids(ioc_type: str, ioc: str) -> tuple[str, str]:
    """The ids of an IOC's indicator and relationship: the same in every bundle."""
    key = f"{ioc_type}:{ioc}"
    return (
        f"indicator--{uuid.uuid5(_NAMESPACE, key)}",
        f"relationship--{uuid.uuid5(_NAMESPACE, 'based-on:' + key)}",
    )


def stix_objects(
    r: RecordFields, now: datetime, ids: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """The indicator, observable and relationship of one record, as STIX 2.1 JSON objects.
    `ids`: the indicator's and relationship's (by default `object_ids`)."""
    stamp = _timestamp(now)
    ind_id, rel_id = ids or object_ids(r["type"], r["ioc"])
    observable = _observable(r["type"], r["ioc"])
    labels = [f"verdict:{r['verdict']}"]
    if r["classification"]:
        labels.append(f"classification:{r['classification']}")
    indicator: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": ind_id,
        "created_by_ref": IDENTITY_ID,
        "created": CREATED,
        "modified": stamp,
        "name": r["ioc"],
        "description": f"{r['verdict']}: {r['classification'] or 'no classification'}",
        "indicator_types": _INDICATOR_TYPES.get(r["verdict"], ["unknown"]),
        "pattern": _PATTERN[r["type"]].format(r["ioc"]),
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": stamp,
    }
    ttl = r["ttl_ms"]
    if ttl is not None and 0 < ttl < 100 * 365 * 86_400_000:
        indicator["valid_until"] = _timestamp(now + timedelta(milliseconds=ttl))
    indicator["labels"] = labels
    if r["link"]:
        indicator["external_references"] = [{"source_name": "cybereason-gti", "url": r["link"]}]
    answer = {
        "verdict": r["verdict"],
        "classification": r["classification"],
        "score": r["score"],
        "type_score": r["type_score"],
        "source": r["source"],
        "cp_type": r["cp_type"],
        "first_seen": r["first_seen"],
        "cached": r["cached"],
    }
    extension = {k: v for k, v in answer.items() if v is not None}
    indicator["extensions"] = {EXTENSION_ID: {"extension_type": "property-extension", **extension}}
    relationship = {
        "type": "relationship",
        "spec_version": "2.1",
        "id": rel_id,
        "created_by_ref": IDENTITY_ID,
        "created": CREATED,
        "modified": stamp,
        "relationship_type": "based-on",
        "source_ref": ind_id,
        "target_ref": observable["id"],
    }
    return [indicator, observable, relationship]


def _by_stix2(r: RecordFields, now: datetime, ids: tuple[str, str]) -> list[dict[str, Any]]:
    """The objects of `r` as stix2 builds and validates them, read back as JSON."""
    ours = stix_objects(r, now, ids)
    indicator = {k: v for k, v in ours[0].items() if k not in ("type", "spec_version")}
    built_indicator = stix2.Indicator(allow_custom=False, **indicator)
    kind, ioc = r["type"], r["ioc"]
    if kind in _HASH:
        built_observable = stix2.File(hashes={_HASH[kind]: ioc})
    else:
        cls = {"domain": stix2.DomainName, "ipv4": stix2.IPv4Address}.get(kind, stix2.IPv6Address)
        built_observable = cls(value=ioc)
    built_relationship = stix2.Relationship(
        built_indicator,
        "based-on",
        built_observable,
        id=ids[1],
        created_by_ref=IDENTITY_ID,
        created=CREATED,
        modified=now,
    )
    built = (built_indicator, built_observable, built_relationship)
    return [orjson.loads(obj.serialize()) for obj in built]


def self_check() -> None:
    """The objects this writer makes for a sample of each IOC type equal those stix2 makes
    (its patterns parsed and validated); AssertionError names the first that does not."""
    # a time whose milliseconds end in no 0: stix2 cuts trailing zeros off fractions
    # where the specification lets it; we always write milliseconds (both are valid)
    now = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    for record in samples():
        kind = record["type"]
        ids = object_ids(kind, record["ioc"])
        ours, theirs = stix_objects(record, now, ids), _by_stix2(record, now, ids)
        for mine, built in zip(ours, theirs, strict=True):
            if mine != built:
                raise AssertionError(f"STIX {mine['type']} of {kind} differs from stix2's: {built}")


class StixWriter(RecordWriter):
    name = "stix"
    resumable = False
    framed = True

    def __init__(self, *, now: Callable[[], datetime] | None = None) -> None:
        self.now = now or utc_now
        self._bundle = "bundle--" + str(uuid.uuid4())

    def begin(self) -> bytes:
        self_check()
        head = orjson.dumps({"type": "bundle", "id": self._bundle})[:-1]
        return head + b',"objects":[' + b",\n".join(_header_objects())

    def encode_records(self, records: list[RecordFields]) -> bytes:
        now = self.now()
        parts = [b""]  # each object after the identity, so each starts with a comma
        for r in records:
            parts += (orjson.dumps(obj) for obj in stix_objects(r, now))
        return b",\n".join(parts)

    def end(self) -> bytes:
        return b"]}\n"


@functools.cache
def _header_objects() -> tuple[bytes, bytes]:
    """enricher's identity and the extension's definition, as stix2 writes them (each on one
    line): the first objects of every bundle."""
    identity = stix2.Identity(
        id=IDENTITY_ID,
        name="enricher (Cybereason GTI reputation)",
        identity_class="system",
        created=_EPOCH,
        modified=_EPOCH,
    )
    extension = stix2.ExtensionDefinition(
        id=EXTENSION_ID,
        created_by_ref=IDENTITY_ID,
        created=_EPOCH,
        modified=_EPOCH,
        name="Cybereason GTI reputation (enricher)",
        description="GTI's answer for the indicator's IOC, as enricher records it.",
        schema=_SCHEMA,
        version="1.0.0",
        extension_types=["property-extension"],
    )
    return identity.serialize().encode(), extension.serialize().encode()


#: indicators in a bundle of `stix-lines` at most (with their observables and relationships
#: and the two header objects: 3,002 objects, about 1.5 MB)
BUNDLE_RECORDS = 1000
#: and bytes at most: the strings a server sends have no bound, and a platform refuses a
#: request over its size limit (a bundle of one indicator may be larger, alone)
BUNDLE_BYTES = 4 << 20
_PATTERN_TYPES: dict[str, IocType] = {
    "[file:hashes.MD5 ": IocType.MD5,
    "[file:hashes.'SHA-1' ": IocType.SHA1,
    "[file:hashes.'SHA-256' ": IocType.SHA256,
    "[domain-name:value ": IocType.DOMAIN,
    "[ipv4-addr:value ": IocType.IPV4,
    "[ipv6-addr:value ": IocType.IPV6,
}


class StixLinesWriter(RecordWriter):
    """`--output-format stix-lines`: STIX 2.1 bundles, one a line, each complete (its own
    identity and extension definition first) and of at most `BUNDLE_RECORDS` indicators and
    `BUNDLE_BYTES`: for a platform that takes bundles of a limited size, a line an upload. The
    file is complete after every batch, so a killed run is resumed like an NDJSON one."""

    name = "stix-lines"

    def __init__(
        self,
        *,
        now: Callable[[], datetime] | None = None,
        size: int = BUNDLE_RECORDS,
        max_bytes: int = BUNDLE_BYTES,
    ) -> None:
        self.now = now or utc_now
        self.size = size
        self.max_bytes = max_bytes
        self._checked = False

    def encode_records(self, records: list[RecordFields]) -> bytes:
        if not self._checked:  # once a run, as the bundle writer does as it begins
            self_check()
            self._checked = True
        now = self.now()
        head = b",".join(_header_objects())
        lines: list[bytes] = []
        parts: list[bytes] = []
        empty = len(head) + 100  # the bundle's own bytes: its type, id and brackets
        count, size = 0, empty

        def close() -> None:
            bundle = f'{{"type":"bundle","id":"bundle--{uuid.uuid4()}","objects":['
            lines.append(b",".join([bundle.encode() + head, *parts]) + b"]}\n")

        for r in records:
            objects = [orjson.dumps(obj) for obj in stix_objects(r, now)]
            more = sum(map(len, objects)) + 3
            if count and (count == self.size or size + more > self.max_bytes):
                close()
                parts, count, size = [], 0, empty
            parts += objects
            count += 1
            size += more
        if count:
            close()
        return b"".join(lines)

    def recognizes(self, first_line: bytes) -> bool:
        # only the line's head: a bundle of 1,000 indicators is longer than what is read of
        # a first line. Both header objects on it: a `stix` bundle has the same start, but
        # its extension definition on the next line (resumed as this, it was corrupted)
        head = b'{"type":"bundle","id":"bundle--'
        start = first_line[:8192]
        return (
            first_line.startswith(head)
            and IDENTITY_ID.encode() in start
            and EXTENSION_ID.encode() in start
        )

    def keys(self, path: str | Path) -> Iterator[tuple[IocType, str]]:
        with open(path, "rb") as f:
            for line in f:
                try:
                    objects = orjson.loads(line)["objects"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # not a bundle of ours: skipped, never fatal
                for obj in objects if isinstance(objects, list) else ():
                    if not isinstance(obj, dict) or obj.get("type") != "indicator":
                        continue
                    pattern, ioc = obj.get("pattern"), obj.get("name")
                    if isinstance(pattern, str) and isinstance(ioc, str):
                        kind = _PATTERN_TYPES.get(pattern[: pattern.find("=")])
                        if kind is not None:
                            yield kind, ioc
