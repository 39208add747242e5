"""Server-rendered SVG charts: no JavaScript, no CDN, readable on a phone and a laptop.

Every chart is a ``<svg>`` with a ``viewBox`` (it scales to its container), a ``<title>`` and
``<desc>`` for screen readers, and the numbers it shows as text or ``data-value`` attributes so
tests (and people) can read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = step * magnitude
        if top >= value:
            return float(top)
    return float(value)


def _fmt(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1_000:.0f}k"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}"


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 640,
    height: int = 240,
) -> Markup:
    """One line per series over shared x labels (e.g. months)."""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 16, 40
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = _nice_max(max((v for s in series for v in s.values), default=0))
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return pad_l + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return pad_t + plot_h - plot_h * v / top

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="t-{id(labels)}">',
        f'<title id="t-{id(labels)}">{escape(title)}</title>',
        f"<desc>{escape(_describe(labels, series))}</desc>",
    ]
    for k in range(5):
        value = top * k / 4
        parts.append(
            f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'class="grid"/><text x="{pad_l - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
            f'class="axis">{_fmt(value)}</text>'
        )
    step = max(1, n // 8)
    for i, label in enumerate(labels):
        if i % step == 0 or i == n - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - pad_b + 18}" text-anchor="middle" '
                f'class="axis">{escape(label)}</text>'
            )
    for idx, s in enumerate(series):
        color = PALETTE[idx % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2.5" points="{points}">'
            f"<title>{escape(s.name)}</title></polyline>"
        )
        for i, v in enumerate(s.values):
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}" '
                f'data-series="{escape(s.name)}" data-label="{escape(labels[i])}" '
                f'data-value="{v:g}"><title>{escape(s.name)} {escape(labels[i])}: '
                f"{_fmt(v)}</title></circle>"
            )
    parts.append(_legend(series, pad_l, height - 8))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated string is escaped above


def bar_chart(
    title: str, items: Sequence[tuple[str, float]], *, width: int = 640, unit: str = ""
) -> Markup:
    """Horizontal bars, one per item, with the value printed at the end of the bar."""
    row, pad_l, pad_r = 28, 150, 90
    height = max(row * len(items) + 8, 40)
    top = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape('; '.join(f'{k}: {_fmt(v)}{unit}' for k, v in items))}</desc>",
    ]
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = (width - pad_l - pad_r) * value / top
        color = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<text x="{pad_l - 8}" y="{y + 17}" text-anchor="end" class="label">'
            f"{escape(label[:24])}</text>"
            f'<rect x="{pad_l}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}" rx="3" '
            f'fill="{color}" data-label="{escape(label)}" data-value="{value:g}"/>'
            f'<text x="{pad_l + w + 6:.1f}" y="{y + 17}" class="value">{_fmt(value)}{escape(unit)}'
            "</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated string is escaped above


def _legend(series: Sequence[Series], x: int, y: int) -> str:
    out = []
    for idx, s in enumerate(series):
        color = PALETTE[idx % len(PALETTE)]
        lx = x + idx * 160
        out.append(
            f'<rect x="{lx}" y="{y - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{y}" class="legend">{escape(s.name)}</text>'
        )
    return "".join(out)


def _describe(labels: Sequence[str], series: Sequence[Series]) -> str:
    return "; ".join(
        f"{s.name}: "
        + ", ".join(f"{label} {_fmt(v)}" for label, v in zip(labels, s.values, strict=False))
        for s in series
    )


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with its confidence interval (a bound is None when it cannot be computed)."""

    label: str
    estimate: float
    low: float | None
    high: float | None


def interval_chart(
    title: str, rows: Sequence[Interval], *, width: int = 640, unit: str = "%"
) -> Markup:
    """A forest plot: one dot per estimate with its interval as a whisker, and the zero line
    (no effect); an interval that crosses the line has not shown an effect."""
    row, pad_l, pad_r = 34, 170, 24
    height = max(row * len(rows) + 30, 60)
    plot_w = width - pad_l - pad_r
    span = max(
        (abs(v) for r in rows for v in (r.estimate, r.low, r.high) if v is not None), default=0
    )
    top = _nice_max(span)

    def x(v: float) -> float:
        return pad_l + plot_w * (v + top) / (2 * top)

    described = "; ".join(
        f"{r.label}: {_fmt(r.estimate)}{unit}"
        + (
            f" (95% interval {_fmt(r.low)}{unit} to {_fmt(r.high)}{unit})"
            if r.low is not None and r.high is not None
            else " (no interval yet)"
        )
        for r in rows
    )
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(described)}</desc>",
        f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="0" y2="{height - 22}" class="zero" '
        'stroke="#6b7280" stroke-dasharray="4 3"/>',
    ]
    for value in (-top, -top / 2, 0.0, top / 2, top):
        parts.append(
            f'<text x="{x(value):.1f}" y="{height - 6}" text-anchor="middle" class="axis">'
            f"{_fmt(value)}{escape(unit)}</text>"
        )
    for i, r in enumerate(rows):
        y = 14 + i * row
        color = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<text x="{pad_l - 8}" y="{y + 4}" text-anchor="end" class="label">'
            f"{escape(r.label[:28])}</text>"
        )
        if r.low is not None and r.high is not None:
            parts.append(
                f'<line x1="{x(max(r.low, -top)):.1f}" x2="{x(min(r.high, top)):.1f}" '
                f'y1="{y}" y2="{y}" stroke="{color}" stroke-width="3" '
                f'data-low="{r.low:g}" data-high="{r.high:g}"/>'
            )
        parts.append(
            f'<circle cx="{x(max(min(r.estimate, top), -top)):.1f}" cy="{y}" r="5" fill="{color}" '
            f'data-label="{escape(r.label)}" data-value="{r.estimate:g}"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated string is escaped above
