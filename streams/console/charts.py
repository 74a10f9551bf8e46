"""Server-rendered SVG charts for the dashboard (no JavaScript, no chart library).

Pure functions from numbers to SVG markup. Every label is escaped; colours
and geometry are presentation attributes, so the console's Content Security
Policy needs no inline styles. ``None`` values are gaps (a line breaks there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

__all__ = ["PALETTE", "Series", "line_chart", "nice_max", "stacked_bar_chart"]

PALETTE = (
    "#2563eb",
    "#dc2626",
    "#16a34a",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#9333ea",
    "#ea580c",
    "#0d9488",
    "#4b5563",
)
_W, _H = 560, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 12, 46


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str = PALETTE[0]


def nice_max(value: float) -> float:
    """The smallest 1/2/2.5/5 × 10^k at or above ``value`` (1 for nothing to show)."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value * (1 - 1e-12))


def _number(value: float, unit: str) -> str:
    text = f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text}{unit}"


def _frame(
    title: str,
    xs: Sequence[datetime],
    y_max: float,
    unit: str,
    legend: Sequence[Series],
    *,
    empty: bool = False,
) -> list[str]:
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#ffffff" stroke="#e5e7eb"/>',
    ]
    for i in range(5):
        value = y_max * i / 4
        y = _TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}" stroke="#f1f5f9"/>')
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#6b7280">'
            f"{escape(_number(value, unit))}</text>"
        )
    if xs:
        for i in sorted({0, len(xs) // 2, len(xs) - 1}):
            x = _LEFT + plot_w * (i + 0.5) / len(xs)
            parts.append(
                f'<text x="{x:.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle" '
                'font-size="11" fill="#6b7280">'
                f"{escape(xs[i].strftime('%H:%M'))}</text>"
            )
    x = _LEFT
    for series in legend:
        parts.append(f'<rect x="{x}" y="{_H - 16}" width="10" height="10" fill="{escape(series.color)}"/>')
        parts.append(
            f'<text x="{x + 14}" y="{_H - 7}" font-size="11" fill="#374151">{escape(series.name)}</text>'
        )
        x += 24 + 7 * len(series.name)
    if empty:
        parts.append(
            f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" '
            f'font-size="13" fill="#9ca3af">no data in this window</text>'
        )
    return parts


def line_chart(
    title: str,
    xs: Sequence[datetime],
    series: Sequence[Series],
    *,
    unit: str = "",
    y_max: float | None = None,
) -> Markup:
    """One line per series over the buckets ``xs``; a point per bucket with a value."""
    values = [v for s in series for v in s.values if v is not None]
    top = y_max if y_max is not None else nice_max(max(values, default=0.0))
    parts = _frame(title, xs, top, unit, series, empty=not values)
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    n = max(1, len(xs))
    for s in series:
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x = _LEFT + plot_w * (i + 0.5) / n
            y = _TOP + plot_h - plot_h * min(value, top) / top
            runs[-1].append(f"{x:.1f},{y:.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{escape(s.color)}"/>')
            elif run:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{escape(s.color)}" '
                    'stroke-width="2" stroke-linejoin="round"/>'
                )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


def stacked_bar_chart(
    title: str, xs: Sequence[datetime], series: Sequence[Series], *, unit: str = ""
) -> Markup:
    """A bar per bucket, stacked by series (e.g. verdicts per category)."""
    totals = [sum(s.values[i] or 0.0 for s in series) for i in range(len(xs))]
    top = nice_max(max(totals, default=0.0))
    parts = _frame(title, xs, top, unit, series, empty=not any(totals))
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    n = max(1, len(xs))
    bar_w = max(1.0, plot_w / n * 0.8)
    for i in range(len(xs)):
        base = 0.0
        x = _LEFT + plot_w * i / n + (plot_w / n - bar_w) / 2
        for s in series:
            value = s.values[i] or 0.0
            if value <= 0:
                continue
            y = _TOP + plot_h - plot_h * (base + value) / top
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{escape(s.color)}">'
                f"<title>{escape(s.name)}: {escape(_number(value, unit))}</title></rect>"
            )
            base += value
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped
