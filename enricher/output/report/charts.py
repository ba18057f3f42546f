"""Charts as inline SVG, drawn by hand: a page with no script and nothing to fetch."""

from __future__ import annotations

from collections.abc import Sequence

from .escape import escape

__all__ = ["VERDICT_COLOURS", "bar_chart", "step_chart"]

VERDICT_COLOURS = {
    "malicious": "#c62828",
    "suspicious": "#ef6c00",
    "benign": "#2e7d32",
    "unknown": "#78909c",
}
_OTHER = "#5c6bc0"
_ROW = 26


def bar_chart(bars: Sequence[tuple[str, int, str | None]], *, title: str, width: int = 640) -> str:
    """Horizontal bars, one a row: (label, value, colour or None), each with its value."""
    if not bars:
        return ""
    label_w = min(260, 12 + 7 * max(len(label) for label, _, _ in bars))
    room = width - label_w - 80
    top = max(value for _, value, _ in bars) or 1
    height = _ROW * len(bars) + 8
    rows = []
    for i, (label, value, colour) in enumerate(bars):
        y = 4 + i * _ROW
        w = max(1.0, room * value / top) if value else 0.0
        rows.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{_ROW - 8}" rx="3" '
            f'fill="{colour or _OTHER}"><title>{escape(label)}: {value:,}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 17}">{value:,}</text>'
        )
    return _svg(title, width, height, "".join(rows))


def step_chart(
    points: Sequence[tuple[float, float]], *, title: str, until: float, unit: str, width: int = 640
) -> str:
    """A value that changes in steps over time: (seconds, value) from the first, held until
    the next and the last until `until`; axes labelled with the range."""
    if not points:
        return ""
    height, left, bottom, pad = 180, 56, 28, 10
    end = max(until, points[-1][0], 1e-9)
    peak = max(v for _, v in points)
    top = peak * 1.1 or 1.0

    def xy(t: float, v: float) -> tuple[float, float]:
        return (
            left + (width - left - pad) * t / end,
            pad + (height - bottom - pad) * (1 - v / top),
        )

    path = []
    for i, (t, v) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else end
        (x0, y), (x1, _) = xy(t, v), xy(nxt, v)
        path.append(f"{'M' if i == 0 else 'L'}{x0:.1f},{y:.1f} L{x1:.1f},{y:.1f}")
    x_axis, y_axis = height - bottom, left
    return _svg(
        title,
        width,
        height,
        f'<line x1="{y_axis}" y1="{pad}" x2="{y_axis}" y2="{x_axis}" class="axis"/>'
        f'<line x1="{y_axis}" y1="{x_axis}" x2="{width - pad}" y2="{x_axis}" class="axis"/>'
        f'<text x="{y_axis - 6}" y="{xy(0, peak)[1] + 4:.1f}" text-anchor="end">{peak:,.1f}</text>'
        f'<text x="{y_axis - 6}" y="{x_axis}" text-anchor="end">0</text>'
        f'<text x="{width - pad}" y="{height - 8}" text-anchor="end">{end:,.1f} s</text>'
        f'<text x="{y_axis}" y="{height - 8}">0 s</text>'
        f'<text x="{y_axis + 8}" y="{pad + 10}">{escape(unit)}</text>'
        f'<path d="{" ".join(path)}" fill="none" stroke="{_OTHER}" stroke-width="2"/>',
    )


def _svg(title: str, width: int, height: int, body: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"{body}</svg>"
    )
