"""The run summary printed on stderr at the end of `enricher run`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..pipeline.stats import RunStats

__all__ = ["format_summary"]


def _n(v: int) -> str:
    return f"{v:,}"


def _counts(c: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {_n(v)}" for k, v in c.items()) or "none"


def _inputs(formats: Mapping[str, str]) -> str:
    shown = [f"{src} ({fmt})" for src, fmt in list(formats.items())[:5]]
    more = len(formats) - len(shown)
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _cache(c: Mapping[str, Any]) -> list[str]:
    size = "size unknown" if c["size_bytes"] is None else _size(c["size_bytes"])
    if c["max_size_bytes"] is None:  # a shared state's (Redis: its size is the server's)
        text = f"{c['path']}: hits {_n(c['hits'])}, stored {_n(c['stored'])}"
        if c.get("claimed_elsewhere"):
            text += f", {_n(c['claimed_elsewhere'])} being asked by another job"
    else:
        text = (
            f"{size} of {_size(c['max_size_bytes'])}: hits {_n(c['hits'])},"
            f" stored {_n(c['stored'])}, evicted {_n(c['evicted'])}"
        )
    text += f" (not used since: {c['broken']})" if c["broken"] else ""
    text += f" (answers not stored: {c['not_kept']})" if c.get("not_kept") else ""
    return [f"  cache         {text}", f"  identity      {c['identity']}"]


def format_summary(
    stats: RunStats,
    *,
    rate_changes: list[str] | None = None,
    inputs: Mapping[str, str] | None = None,
    repeated: list[tuple[str, int]] | None = None,
) -> str:
    d = stats.as_dict()
    statuses: dict[str, int] = {}
    for per_endpoint in d["requests_by_status"].values():
        for status, n in per_endpoint.items():
            statuses[status] = statuses.get(status, 0) + n
    lat = d["latency_ms"]
    lines = [
        f"enricher: {'stopped: ' + stats.stopped if stats.stopped else 'done'}"
        f" in {d['elapsed_s']:.2f} s",
    ]
    if inputs:
        lines.append(f"  inputs        {_inputs(inputs)}")
    if stats.job:
        lines.append(f"  job           {stats.job}")
    lines += [
        f"  lines read    {_n(stats.lines_read)}  (blank or comment {_n(stats.skipped)},"
        f" rejected {_n(stats.rejected)}, duplicates {_n(stats.duplicates)})",
    ]
    if stats.reject_reasons:
        top = dict(stats.reject_reasons.most_common(5))
        rest = len(stats.reject_reasons) - len(top)
        hidden = stats.rejected - sum(top.values())
        others = f" and {rest:,} more ({_n(hidden)} lines)" if rest else ""
        lines.append(f"  rejected by   {_counts(top)}{others}")
    if stats.rejects_not_written:
        unwritten = _counts(stats.rejects_not_written)
        lines.append(f"  not written   rejects past --max-rejects (counted only): {unwritten}")
    if stats.inputs_skipped:
        shown = "; ".join(stats.inputs_skipped[:3])
        more = len(stats.inputs_skipped) - 3
        lines.append(f"  inputs left out  {shown}" + (f" and {more:,} more" if more > 0 else ""))
    if stats.inputs_damaged:
        shown = "; ".join(stats.inputs_damaged[:3])
        more = len(stats.inputs_damaged) - 3
        lines.append(f"  inputs damaged   {shown}" + (f" and {more:,} more" if more > 0 else ""))
    if repeated:
        shown = ", ".join(f"{ioc} x{n:,}" for ioc, n in repeated)
        lines.append(f"  most repeated {shown}")
    if stats.earlier_ok or stats.earlier_failed or stats.earlier_unsupported:
        lines.append(
            f"  earlier runs  ok {_n(stats.earlier_ok)}  failed {_n(stats.earlier_failed)}"
            f"  unsupported {_n(stats.earlier_unsupported)}  (already in the outputs: --resume)"
        )
    lines += [
        f"  unique IOCs   {_n(stats.unique)}",
        f"  ok {_n(stats.ok)}  failed {_n(stats.failed)}  unsupported {_n(stats.unsupported)}"
        + (f"  skipped (internal) {_n(stats.internal)}" if stats.internal else "")
        + (f"  deferred {_n(stats.deferred)}" if stats.deferred else ""),
        f"  verdicts      {_counts(d['verdicts'])}",
    ]
    if stats.errors:
        lines.append(f"  failures by   {_counts(d['errors'])}")
    lines += [
        f"  requests      {_n(stats.requests)}  (by status: {_counts(statuses)})",
        f"  retries {_n(stats.retries)}  429s {_n(stats.rate_limited)}"
        f"  splits {_n(stats.splits)}  bisections {_n(stats.bisections)}"
        f"  requeued {_n(stats.requeued)}  extra entries {_n(stats.extra_entries)}",
    ]
    if lat["p50"] is not None:
        lines.append(f"  latency ms    p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}")
    if stats.secrets_replaced:
        lines.append(
            f"  secrets       {_n(stats.secrets_replaced)} copies of a configured secret in"
            " answers replaced by ***"
        )
    if rate_changes:
        lines.append(f"  rate changes  {'; '.join(rate_changes[-5:])} ({len(rate_changes)} in all)")
    speed = d["iocs_per_s"]
    first = d["first_record_s"]
    lines.append(
        f"  speed         {_n(int(speed or 0))} IOCs/s"
        + (f", first record after {first:.3f} s" if first is not None else "")
    )
    if stats.cache is not None:
        lines += _cache(stats.cache)
    mark = "holds" if stats.invariant_holds else "BROKEN"
    extra = f" + skipped (internal) {_n(stats.internal)}" if stats.internal else ""
    extra += f" + deferred {_n(stats.deferred)}" if stats.deferred else ""
    lines.append(
        f"  invariant     unique {_n(stats.unique)} = ok {_n(stats.ok)} + failed"
        f" {_n(stats.failed)} + unsupported {_n(stats.unsupported)}{extra}: {mark}"
    )
    return "\n".join(lines)
