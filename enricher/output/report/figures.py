"""What a report shows, read from a run's files: its records (NDJSON), the failures and
deferred files beside them, and its manifest when there is one."""

from __future__ import annotations

import glob
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypedDict

import msgspec
import orjson

from ...errors import SettingsError
from ...state.resume import ndjson_objects

__all__ = ["FLAGGED", "MAX_LISTED", "Figures", "Flagged", "find_manifest", "read_figures"]

log = logging.getLogger("enricher")

#: the verdicts whose IOCs the page lists one by one
FLAGGED = ("malicious", "suspicious")
#: IOCs listed at most (a page of a million rows would not open): the rest are counted
MAX_LISTED = 5_000


class _Requests(TypedDict, total=False):
    total: int
    by_endpoint_and_status: dict[str, dict[str, int]]


class _RateChange(TypedDict):
    at: float
    rate: float
    reason: str


class _Limits(TypedDict, total=False):
    rate: float | None


class _Settings(TypedDict, total=False):
    limits: _Limits


_Figure = int | float | None
#: the manifest fields the page reads, and their types: a field of another type (another
#: version's, a hand-edited one) is left out of the page
_MANIFEST = {
    "started_at": str | None,
    "finished_at": str | None,
    "exit_code": int | None,
    "stopped": str | None,
    "outputs": dict[str, str | None],
    "settings": _Settings,
    "counts": dict[str, int | float],
    "requests": _Requests,
    "retries": _Figure,
    "rate_limited_429": _Figure,
    "rate_changes": list[_RateChange],
    "latency_ms": dict[str, _Figure],
    "elapsed_s": _Figure,
    "iocs_per_s": _Figure,
    "first_record_s": _Figure,
}


def _readable(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """The manifest `doc` without the fields the page reads that are not of their type (one
    warning names them)."""
    wrong = []
    for name, kind in _MANIFEST.items():
        if name in doc:
            try:
                msgspec.convert(doc[name], kind)
            except msgspec.ValidationError:
                wrong.append(name)
    if wrong:
        log.warning(
            "warning: the manifest %s has unreadable figures (%s): the page leaves them out",
            path, ", ".join(wrong),
        )  # fmt: skip
    return {k: v for k, v in doc.items() if k not in wrong}


class _Record(msgspec.Struct):
    """The fields of a record line the report reads (its `response` is skipped)."""

    ioc: str
    type: str
    verdict: str
    classification: str | None = None
    score: float | None = None
    source: str | None = None
    link: str | None = None
    cached: bool = False


class Flagged(msgspec.Struct):
    ioc: str
    type: str
    verdict: str
    classification: str | None
    score: float | None
    source: str | None
    link: str | None


_decode = msgspec.json.Decoder(_Record).decode


@dataclass
class Figures:
    output: str
    records: int = 0
    cached: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    classifications: Counter[str] = field(default_factory=Counter)
    #: the verdict each classification was given (for its bar's colour)
    classification_verdict: dict[str, str] = field(default_factory=dict)
    types: Counter[str] = field(default_factory=Counter)
    flagged: list[Flagged] = field(default_factory=list)
    flagged_total: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # by error kind
    deferred: Counter[str] = field(default_factory=Counter)  # by reason
    #: lines of the records file that are no record (another format, a torn line)
    unreadable: int = 0
    manifest: dict[str, Any] | None = None
    manifest_path: str | None = None
    side_files: dict[str, str] = field(default_factory=dict)


def read_figures(output: str, *, manifest: str | None = None) -> Figures:
    """The figures of the run whose records file is `output` (NDJSON). Its manifest is
    `manifest`, or else one beside it that names it as its records; its failures and
    deferred files are the manifest's, or else `OUT.failed.ndjson` and
    `OUT.deferred.ndjson`. SettingsError if `output` cannot be read or holds no record."""
    fig = Figures(output=output)
    if manifest is None:
        manifest = find_manifest(output)
    if manifest is not None:
        fig.manifest_path = manifest
        try:
            with open(manifest, "rb") as f:
                doc = orjson.loads(f.read())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise SettingsError(f"cannot read the manifest {manifest}: {exc}") from None
        fig.manifest = _readable(doc, manifest) if isinstance(doc, dict) else None
    _read_records(fig)
    outputs = (fig.manifest or {}).get("outputs") or {}
    for kind, default in (("failures", ".failed.ndjson"), ("deferred", ".deferred.ndjson")):
        path = outputs.get(kind) or output + default
        if isinstance(path, str) and os.path.isfile(path):
            fig.side_files[kind] = path
            _read_side(path, fig.failures if kind == "failures" else fig.deferred, kind)
    return fig


def _read_records(fig: Figures) -> None:
    try:
        f = open(fig.output, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise SettingsError(f"cannot read {fig.output}: {exc.strerror or exc}") from None
    with f:
        for line in f:
            if not line.strip():
                continue
            try:
                r = _decode(line)
            except msgspec.DecodeError:
                fig.unreadable += 1
                continue
            fig.records += 1
            fig.cached += r.cached
            fig.verdicts[r.verdict] += 1
            fig.types[r.type] += 1
            name = r.classification or "(none)"
            fig.classifications[name] += 1
            fig.classification_verdict.setdefault(name, r.verdict)
            if r.verdict in FLAGGED:
                fig.flagged_total += 1
                if len(fig.flagged) < MAX_LISTED:
                    fig.flagged.append(
                        Flagged(r.ioc, r.type, r.verdict, r.classification, r.score, r.source,
                                r.link)
                    )  # fmt: skip
    if not fig.records and fig.unreadable:
        raise SettingsError(
            f"{fig.output} holds no NDJSON record: a report is made from an output written "
            "with --output-format ndjson (the default)"
        )
    order = {v: i for i, v in enumerate(FLAGGED)}
    fig.flagged.sort(key=lambda r: (order[r.verdict], -(r.score or 0), r.ioc))


def _read_side(path: str, counts: Counter[str], kind: str) -> None:
    """Failures by error kind (`http_503`, `malformed_body`, …), deferred IOCs by reason."""
    for doc in ndjson_objects(path):
        if kind == "failures" and isinstance(doc.get("error"), str):
            counts[doc["error"].split(":", 1)[0]] += 1
        elif kind == "deferred" and isinstance(doc.get("reason"), str):
            counts[doc["reason"].split(" until ", 1)[0]] += 1


#: a JSON file beside the records larger than this is not read as their manifest (a
#: manifest is a few KiB; a STIX bundle or an export beside it may be gigabytes)
_MANIFEST_MAX = 4 << 20
_MANIFEST_HEAD = b'"record_schema"'


def _too_big(path: str) -> None:
    """Say so when a file left unread looks like a manifest (its first KiB names the record
    schema, as every manifest's does): the page would otherwise lack its figures silently."""
    with open(path, "rb") as f:
        head = f.read(1024)
    if _MANIFEST_HEAD in head:
        log.warning(
            "warning: %s looks like a manifest but is larger than %d MiB: not read (give it "
            "with --manifest to use it)",
            path,
            _MANIFEST_MAX >> 20,
        )


def find_manifest(output: str) -> str | None:
    """A manifest beside `output` whose records file is `output` (the newest, if several)."""
    here = os.path.dirname(os.path.abspath(output))
    found = []
    for path in glob.glob(os.path.join(glob.escape(here), "*.json")):
        try:
            if os.path.getsize(path) > _MANIFEST_MAX:
                _too_big(path)
                continue
            with open(path, "rb") as f:
                doc = orjson.loads(f.read())
            records = doc["outputs"]["records"]
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if not isinstance(records, str):
            continue
        candidate = records if os.path.isabs(records) else os.path.join(here, records)
        try:
            same = os.path.samefile(candidate, output)
        except OSError:
            same = False
        # a relative path is the run's working directory's: its name must do
        if same or os.path.basename(records) == os.path.basename(output):
            found.append((same, os.path.getmtime(path), path))
    return max(found)[2] if found else None
