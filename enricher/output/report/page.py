"""The report page: one HTML document, styles and charts inline, no script, nothing fetched."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from typing import Any

from ... import __version__
from .charts import VERDICT_COLOURS, bar_chart, step_chart
from .escape import MAX_TEXT, escape
from .figures import FLAGGED, MAX_LISTED, Figures

__all__ = ["render"]

#: nothing may be fetched, run or framed: the page is what the file holds
POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
_VERDICTS = ("malicious", "suspicious", "benign", "unknown")
_CLASSIFICATIONS_SHOWN = 16

_STYLE = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5f6b7a; --line: #dde3ea; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #f4f6f9; }
header { background: #1d2430; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c5cdd8; }
main { padding: 20px 32px 40px; max-width: 1200px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 20px; margin: 0 0 18px; }
h2 { font-size: 17px; margin: 0 0 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 18px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 16px; min-width: 140px; }
.card b { display: block; font-size: 24px; }
.card span { color: var(--muted); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 18px;
  align-items: start; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.ioc { font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all;
  min-width: 18em; }
td.link { word-break: break-all; max-width: 28em; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
  font-size: 12px; }
.note { color: var(--muted); }
svg.chart { max-width: 100%; height: auto; font-size: 12px; fill: var(--ink); }
svg .axis { stroke: var(--muted); }
footer { color: var(--muted); padding: 0 32px 24px; }
"""


def _badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#5c6bc0")
    return f'<span class="badge" style="background:{colour}">{escape(verdict)}</span>'


def _link(url: str | None) -> str:
    """A link to follow, only for http(s): a server's `javascript:` or `data:` is text, and
    so is a link too long to show whole."""
    if not url:
        return ""
    if len(url) <= MAX_TEXT and url.lower().startswith(("https://", "http://")):
        return f'<a href="{escape(url)}" rel="noopener noreferrer">{escape(url)}</a>'
    return escape(url)


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    th = "".join(
        f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(head)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _counts(counter: Counter[str], what: str) -> str:
    rows = [[escape(k), f"{n:,}"] for k, n in counter.most_common()]
    return _table([what, "IOCs"], rows, {1})


def _cards(fig: Figures) -> str:
    counts = (fig.manifest or {}).get("counts") or {}
    cards = [("records", fig.records)]
    cards += [(v, fig.verdicts.get(v, 0)) for v in FLAGGED]
    cards += [("failures", sum(fig.failures.values())), ("deferred", sum(fig.deferred.values()))]
    if "unique" in counts:
        cards.insert(0, ("unique IOCs", counts["unique"]))
    return '<div class="cards">' + "".join(
        f"<div class=card><b>{n:,}</b><span>{escape(label)}</span></div>" for label, n in cards
    ) + "</div>"  # fmt: skip


def _verdicts(fig: Figures) -> str:
    order = [v for v in _VERDICTS if v in fig.verdicts]
    order += sorted(set(fig.verdicts) - set(order))
    bars = [(v, fig.verdicts[v], VERDICT_COLOURS.get(v)) for v in order]
    shown = fig.classifications.most_common(_CLASSIFICATIONS_SHOWN)
    kinds = [
        (name, n, VERDICT_COLOURS.get(fig.classification_verdict.get(name, "")))
        for name, n in shown
    ]
    rest = sum(fig.classifications.values()) - sum(n for _, n in shown)
    if rest:
        others = len(fig.classifications) - len(shown)
        kinds.append((f"{others} other classifications", rest, None))
    cached = f"; {fig.cached:,} from the cache" if fig.cached else ""
    return (
        '<div class="grid"><section><h2>Verdicts</h2>'
        + bar_chart(bars, title="records by verdict")
        + f'<p class="note">{fig.records:,} records{cached}.</p></section>'
        + "<section><h2>Classifications</h2>"
        + bar_chart(kinds, title="records by GTI classification")
        + '<p class="note">Bars in the colour of the verdict each classification gets.</p>'
        + "</section></div>"
    )


def _flagged(fig: Figures) -> str:
    if not fig.flagged_total:
        return "<section><h2>Malicious and suspicious IOCs</h2><p>None.</p></section>"
    rows = [
        [
            _badge(r.verdict),
            f'<span class="ioc">{escape(r.ioc)}</span>',
            escape(r.type),
            escape(r.classification or ""),
            "" if r.score is None else f"{r.score:g}",
            escape(r.source or ""),
            _link(r.link),
        ]
        for r in fig.flagged
    ]
    table = _table(["verdict", "IOC", "type", "classification", "score", "source", "link"], rows)
    table = table.replace('<td><span class="ioc">', '<td class="ioc"><span class="ioc">')
    table = table.replace("<td><a ", '<td class="link"><a ')
    more = ""
    if fig.flagged_total > len(fig.flagged):
        more = (
            f'<p class="note">The first {MAX_LISTED:,} of {fig.flagged_total:,}; every one is in '
            f"{escape(fig.output)}.</p>"
        )
    return (
        f"<section><h2>Malicious and suspicious IOCs ({fig.flagged_total:,})</h2>"
        f"{table}{more}</section>"
    )


def _failures(fig: Figures) -> str:
    parts = ["<section><h2>Failures and deferred IOCs</h2>"]
    if not fig.failures and not fig.deferred:
        where = ", ".join(escape(p) for p in fig.side_files.values()) or "no failures file"
        parts.append(f"<p>None ({where}).</p></section>")
        return "".join(parts)
    if fig.failures:
        bars = [(k, n, "#8e24aa") for k, n in fig.failures.most_common()]
        parts.append("<h3>Failures by reason</h3>" + bar_chart(bars, title="failures by reason"))
    if fig.deferred:
        parts.append("<h3>Deferred (not asked) by reason</h3>" + _counts(fig.deferred, "reason"))
    files = ", ".join(f"{k}: {escape(p)}" for k, p in fig.side_files.items())
    parts.append(f'<p class="note">Read from {files}.</p></section>')
    return "".join(parts)


def _ms(value: Any) -> str:
    return "" if value is None else f"{value:,} ms"


def _run(fig: Figures) -> str:
    m = fig.manifest
    if m is None:
        return (
            '<section><h2>The run</h2><p class="note">No manifest found beside the output '
            "(run with <code>--manifest FILE</code>, or give it to <code>enricher report "
            "--manifest</code>).</p></section>"
        )
    counts = m.get("counts") or {}
    lat = m.get("latency_ms") or {}
    requests = m.get("requests") or {}
    rows = [
        ("started", m.get("started_at")),
        ("finished", m.get("finished_at")),
        ("exit code", m.get("exit_code")),
        ("stopped", m.get("stopped")),
        ("lines read", counts.get("lines_read")),
        ("unique IOCs", counts.get("unique")),
        ("ok / failed / unsupported / deferred", " / ".join(
            f"{counts.get(k, 0):,}" for k in ("ok", "failed", "unsupported", "deferred"))),
        ("from the cache", counts.get("cached")),
        ("requests", requests.get("total")),
        ("retries", m.get("retries")),
        ("429s", m.get("rate_limited_429")),
        ("latency p50 / p95 / p99", " / ".join(_ms(lat.get(q)) for q in ("p50", "p95", "p99"))),
        ("elapsed", None if m.get("elapsed_s") is None else f"{m['elapsed_s']:,} s"),
        ("speed", None if m.get("iocs_per_s") is None else f"{m['iocs_per_s']:,} IOCs/s"),
        ("first record after", None if m.get("first_record_s") is None
         else f"{m['first_record_s']} s"),
    ]  # fmt: skip
    table = _table(
        ["figure", "value"],
        [[escape(k), escape(f"{v:,}" if isinstance(v, int) else str(v))] for k, v in rows
         if v is not None],
    )  # fmt: skip
    by_status = requests.get("by_endpoint_and_status") or {}
    status_rows = [
        [escape(ep), escape(str(status)), f"{n:,}"]
        for ep, statuses in sorted(by_status.items())
        for status, n in sorted(statuses.items())
    ]
    status = _table(["endpoint", "status", "requests"], status_rows, {2}) if status_rows else ""
    changes = m.get("rate_changes") or []
    rate = ((m.get("settings") or {}).get("limits") or {}).get("rate")
    chart = ""
    if changes and isinstance(rate, int | float):
        points = [(0.0, float(rate))] + [(float(c["at"]), float(c["rate"])) for c in changes]
        chart = "<h3>Request rate over the run</h3>" + step_chart(
            points, title="request rate over the run", until=float(m.get("elapsed_s") or 0),
            unit="requests/s",
        )  # fmt: skip
    speeds = _speeds(m.get("timeline"))
    if len(speeds) >= 2:
        last, _, length = speeds[-1]
        chart += "<h3>Speed over the run</h3>" + step_chart(
            [(t, v) for t, v, _ in speeds], title="IOCs a second over the run",
            until=last + length, unit="IOCs/s",
        )  # fmt: skip
    return (
        f"<section><h2>The run</h2>"
        f'<div class="grid"><div>{table}</div><div>{status}{chart}</div></div>'
        f'<p class="note">From the manifest {escape(fig.manifest_path or "")}.</p></section>'
    )


def _speeds(timeline: Any) -> list[tuple[float, float, float]]:
    """IOCs a second between the manifest's timeline points: (from, speed, for how long)."""
    if not isinstance(timeline, list):
        return []
    points = [
        (float(p[0]), float(p[1]))
        for p in timeline
        if isinstance(p, list) and len(p) == 2 and all(isinstance(v, int | float) for v in p)
    ]
    return [
        (t0, (n1 - n0) / (t1 - t0), t1 - t0)
        for (t0, n0), (t1, n1) in itertools.pairwise(points)
        if t1 > t0
    ]


def render(fig: Figures) -> str:
    """The page of a run's figures."""
    made = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    unreadable = (
        f'<p class="note">{fig.unreadable:,} lines of the output are no record and were '
        "skipped.</p>"
        if fig.unreadable
        else ""
    )
    types = "<section><h2>IOC types</h2>" + _counts(fig.types, "type") + "</section>"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>enricher report: {escape(fig.output)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<header><h1>enricher report</h1><p>{escape(fig.output)} · made {made}</p></header>"
        "<main>"
        + _cards(fig)
        + unreadable
        + _verdicts(fig)
        + _flagged(fig)
        + '<div class="grid">'
        + _failures(fig)
        + types
        + "</div>"
        + _run(fig)
        + "</main>"
        f"<footer>enricher {escape(__version__)}: a page with no script that fetches nothing."
        "</footer></body></html>\n"
    )
