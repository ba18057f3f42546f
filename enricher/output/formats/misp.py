"""`--output-format misp`: one MISP event, built with `pymisp`, for MISP's "Add event from
JSON" (or `PyMISP.add_event`), loadable by `MISPEvent.load_file`.

An attribute per record, written as pymisp writes it but not made by it record by record
(`MISPAttribute` takes ~0.5 ms; checked against it for each IOC type when the writer
starts): `md5`, `sha1`, `sha256`, `domain` or `ip-dst`; `to_ids` for a
malicious verdict; the verdict and GTI's classification as machine tags
(`enricher:verdict="malicious"`, `cybereason-gti:classification="ransom"`; a `"` in the value
becomes `'`, a control character a space, and a tag is cut to MISP's 255 characters) and,
with the score, source and link, in the comment. The event's distribution is "your
organisation only".

Streamed like the STIX bundle: the event's opening before the first batch, attributes as they
come, its closing when the run ends; a run killed midway cannot be resumed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from pymisp import MISPAttribute, MISPEvent

from ..inert import CONTROLS
from .base import RecordFields, RecordWriter, samples, utc_now

__all__ = ["MispWriter", "attribute"]

_TYPE = {
    "md5": ("md5", "Payload delivery"),
    "sha1": ("sha1", "Payload delivery"),
    "sha256": ("sha256", "Payload delivery"),
    "domain": ("domain", "Network activity"),
    "ipv4": ("ip-dst", "Network activity"),
    "ipv6": ("ip-dst", "Network activity"),
}


def _comment(r: RecordFields) -> str:
    parts = [f"{r['verdict']}: {r['classification'] or 'no classification'}"]
    for name in ("score", "source", "first_seen", "link"):
        if r[name] is not None:
            parts.append(f"{name} {r[name]}")
    return "; ".join(parts)


#: a machine tag's value holds no `"` (it would end the value: `ns:predicate="value"`) and
#: no control character: `'` and a space stand for them
_TAG_VALUE = {**dict.fromkeys(CONTROLS, " "), ord('"'): "'"}
#: MISP keeps a tag's name in 255 characters
_TAG_MAX = 255


def _tag(namespace_predicate: str, value: str) -> dict[str, str]:
    """The machine tag `namespace:predicate="value"`, the value made safe and cut to fit."""
    value = value.translate(_TAG_VALUE)
    room = _TAG_MAX - len(namespace_predicate) - 3
    return {"name": f'{namespace_predicate}="{value[:room]}"'}


def attribute(r: RecordFields, attribute_uuid: str | None = None) -> dict[str, Any]:
    """The MISP attribute of one record, as `MISPAttribute.to_json` writes it."""
    kind, category = _TYPE[r["type"]]
    tags = [_tag("enricher:verdict", r["verdict"])]
    if r["classification"]:
        tags.append(_tag("cybereason-gti:classification", r["classification"]))
    return {
        "uuid": attribute_uuid or str(uuid.uuid4()),
        "Tag": tags,
        "type": kind,
        "value": r["ioc"],
        "category": category,
        "to_ids": r["verdict"] == "malicious",
        "disable_correlation": False,
        "comment": _comment(r),
    }


def self_check() -> None:
    """The attributes this writer makes for a sample of each IOC type equal those pymisp
    makes (and validates); AssertionError names the first that does not."""
    for record in samples():
        kind = record["type"]
        ours = attribute(record)
        built = MISPAttribute()
        built.from_dict(**{k: v for k, v in ours.items() if k != "disable_correlation"})
        theirs = orjson.loads(built.to_json())
        if ours != theirs:
            raise AssertionError(f"MISP attribute of {kind} differs from pymisp's: {theirs}")


class MispWriter(RecordWriter):
    name = "misp"
    framed = True
    resumable = False

    def __init__(self, *, now: Callable[[], datetime] | None = None) -> None:
        self.now = now or utc_now
        self._first = True

    def begin(self) -> bytes:
        event = MISPEvent()
        today = self.now()
        event.info = f"enricher: Cybereason GTI reputation, {today:%Y-%m-%d %H:%M} UTC"
        event.date = today.date()
        event.distribution = 0  # your organisation only
        event.threat_level_id = 4  # undefined: the verdicts are per attribute
        event.analysis = 2  # completed
        event.add_tag("enricher")
        doc: dict[str, Any] = orjson.loads(event.to_json())
        self_check()
        self._first = True
        return b'{"Event":' + orjson.dumps(doc)[:-1] + b',"Attribute":['

    def encode_records(self, records: list[RecordFields]) -> bytes:
        parts = [orjson.dumps(attribute(r)) for r in records]
        if not parts:
            return b""
        lead = b"" if self._first else b",\n"
        self._first = False
        return lead + b",\n".join(parts)

    def end(self) -> bytes:
        return b"]}}\n"
