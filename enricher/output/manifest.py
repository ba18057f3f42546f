"""The run manifest (`--manifest FILE`): what ran, on what, with which settings, and how it went.

JSON, written atomically (a temporary file renamed into place) at the end of every run,
interrupted ones included. Settings hold no secrets (only the names of the variables or files
that hold them); a URL's user:password part is replaced by `***` all the same.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from .. import __version__
from ..api.ratelimit import RateChange
from ..config.settings import Settings, redact_url
from ..inputs.files import utf8_name
from ..pipeline.stats import RunStats
from .files import write_whole
from .records import SCHEMA_VERSION

__all__ = ["build_manifest", "redact_url", "write_manifest"]


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, Mapping):
        return {k: _redact(v) for k, v in value.items()}
    return value


def _event_loop() -> str | None:
    """Which event loop ran the job: "asyncio" or "uvloop" (None outside one)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return type(loop).__module__.partition(".")[0]


def _peak_rss_mib() -> float | None:
    """This process's peak resident memory (Linux: VmHWM, which, unlike ru_maxrss, does not
    carry a parent's peak across exec); None where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_manifest(
    *,
    settings: Settings,
    stats: RunStats,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    started_at: float,
    exit_code: int,
    rate_changes: Sequence[RateChange] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    d = stats.as_dict()
    settings_doc = {
        f.name: _redact(
            dict(getattr(settings, f.name))
            if f.name == "verdicts"
            else dataclasses.asdict(getattr(settings, f.name))
        )
        for f in dataclasses.fields(settings)
    }
    counts = {
        k: d[k]
        for k in (
            "lines_read", "skipped", "rejected", "duplicates", "already_done", "unique",
            "cached", "queried", "ok", "failed", "unsupported", "internal", "deferred",
        )
    }  # fmt: skip
    return {
        "enricher": __version__,
        "record_schema": SCHEMA_VERSION,
        "started_at": _iso(started_at),
        "finished_at": _iso(started_at + d["elapsed_s"]),
        "exit_code": exit_code,
        "stopped": stats.stopped,
        "inputs": [{"path": redact_url(p), "read_as": f} for p, f in inputs.items()],
        "outputs": dict(outputs),
        "settings": settings_doc,
        "counts": counts,
        "earlier_runs": d["earlier_runs"],
        "rejects_not_written": d["rejects_not_written"],
        "inputs_skipped": d["inputs_skipped"],
        "inputs_damaged": d["inputs_damaged"],
        "job": d["job"],
        "invariant_holds": stats.invariant_holds,
        "verdicts": d["verdicts"],
        "failures_by_error": d["errors"],
        "reject_reasons": d["reject_reasons"],
        "requests": {"total": stats.requests, "by_endpoint_and_status": d["requests_by_status"]},
        "retries": stats.retries,
        "rate_limited_429": stats.rate_limited,
        "rate_changes": [dataclasses.asdict(c) for c in rate_changes],
        "splits_413": stats.splits,
        "bisections_400": stats.bisections,
        "requeued_missing": stats.requeued,
        "extra_entries": stats.extra_entries,
        "secrets_replaced": stats.secrets_replaced,
        "cache": d["cache"],
        "latency_ms": d["latency_ms"],
        "elapsed_s": d["elapsed_s"],
        "iocs_per_s": d["iocs_per_s"],
        # IOCs accounted for over the run: [seconds, IOCs], the last point its end
        "timeline": [[t, n] for t, n in stats.timeline.points]
        + [[d["elapsed_s"], stats.accounted]],
        "first_record_s": d["first_record_s"],
        "peak_rss_mib": _peak_rss_mib(),
        "event_loop": _event_loop(),
        **(extra or {}),
    }


def write_manifest(path: str, manifest: Mapping[str, Any]) -> None:
    """Write the manifest whole (`write_whole`)."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    try:
        doc = orjson.dumps(manifest, option=option)
    except orjson.JSONEncodeError:
        # a name given in bytes that are not UTF-8 (an output path, an argument): surrogates
        # in a str, which JSON cannot hold, written as `\xff` escapes
        doc = orjson.dumps(_utf8(manifest), option=option)
    write_whole(path, doc)


def _utf8(doc: Any) -> Any:
    """`doc` with each string's surrogates (the bytes of a name that are not UTF-8) escaped."""
    if isinstance(doc, str):
        try:
            return utf8_name(doc)
        except UnicodeEncodeError:  # a surrogate no bytes stand for
            return doc.encode(errors="backslashreplace").decode()
    if isinstance(doc, Mapping):
        return {_utf8(k): _utf8(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_utf8(v) for v in doc]
    return doc
