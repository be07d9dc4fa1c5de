"""Small server-rendered SVG charts (no JavaScript, no library): a step line, bars, a histogram.

Each function returns a complete ``<svg>`` element as :class:`markupsafe.Markup`. Every text is
escaped here; colours come from CSS classes in ``dashboard.css`` (the CSP forbids inline
styles), so the same markup themes with the page. Charts carry ``role="img"`` and an
``aria-label`` summarising the data, and say so plainly when there is nothing to draw.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


def _fmt(value: float) -> str:
    """Axis numbers: no float noise, thousands as k."""
    if abs(value) >= 10000:
        return f"{value / 1000:.0f}k"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _svg(kind: str, label: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg class="chart chart-{kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _empty(kind: str, label: str, message: str) -> Markup:
    text = f'<text class="empty-text" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">{escape(message)}</text>'
    return _svg(kind, f"{label}: {message}", [text])


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> tuple[float, float, float]:
    """(lo, hi, factor) for mapping [lo, hi] onto [out_lo, out_hi]; a flat range is widened."""
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    return lo, hi, (out_hi - out_lo) / (hi - lo)


def _y_axis(lo: float, hi: float, y_of: Callable[[float], float]) -> list[str]:
    parts = []
    for value in (lo, (lo + hi) / 2, hi):
        y = y_of(value)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(value))}</text>'
        )
    return parts


def step_line(points: Sequence[tuple[datetime, float]], label: str, *, empty: str = "no fills yet") -> Markup:
    """Cumulative value over time as a step line from zero (e.g. the day's realized PnL)."""
    if not points:
        return _empty("line", label, empty)
    values = [0.0] + [v for _, v in points]
    lo, hi, fy = _scale(min(values), max(values), 0, HEIGHT - TOP - BOTTOM)
    t0 = points[0][0].timestamp()
    t1 = points[-1][0].timestamp()
    if t1 == t0:
        t0 -= 60
    fx = (WIDTH - LEFT - RIGHT) / (t1 - t0)

    def x_of(at: datetime) -> float:
        return LEFT + (at.timestamp() - t0) * fx

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - (value - lo) * fy

    path = [f"M{LEFT},{y_of(0.0):.1f}"]
    previous = 0.0
    for at, value in points:
        x = x_of(at)
        path.append(f"L{x:.1f},{y_of(previous):.1f}L{x:.1f},{y_of(value):.1f}")
        previous = value
    path.append(f"L{WIDTH - RIGHT},{y_of(previous):.1f}")
    last = points[-1][1]
    body = _y_axis(lo, hi, y_of)
    body.append(
        f'<line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y_of(0.0):.1f}" y2="{y_of(0.0):.1f}"/>'
    )
    body.append(f'<path class="series {"neg" if last < 0 else "pos"}" d="{"".join(path)}"/>')
    for edge, anchor, x in (
        (points[0][0], "start", LEFT),
        (points[-1][0], "end", WIDTH - RIGHT),
    ):
        body.append(
            f'<text class="tick" x="{x}" y="{HEIGHT - 8}" text-anchor="{anchor}">{edge:%H:%M} UTC</text>'
        )
    return _svg("line", f"{label}: {len(points)} fills, now {_fmt(round(last, 2))}", body)


def bars(
    items: Sequence[tuple[str, float]], label: str, *, empty: str = "nothing yet", unit: str = ""
) -> Markup:
    """Horizontal bars around zero, one per named value (e.g. PnL per strategy)."""
    if not items:
        return _empty("bars", label, empty)
    row = 22
    height = TOP + BOTTOM // 2 + row * len(items)
    name_width = 130
    values = [v for _, v in items]
    lo, hi, fx = _scale(min(0.0, *values), max(0.0, *values), 0, WIDTH - name_width - RIGHT - 70)
    zero = name_width + (0 - lo) * fx
    body = [f'<line class="zero" x1="{zero:.1f}" x2="{zero:.1f}" y1="{TOP - 4}" y2="{height - 4}"/>']
    for index, (name, value) in enumerate(items):
        y = TOP + index * row
        x = name_width + (min(value, 0) - lo) * fx
        width = max(1.0, abs(value) * fx)
        short = name if len(name) <= 18 else name[:17] + "\u2026"
        body.append(
            f'<text class="tick" x="{name_width - 6}" y="{y + 14}" text-anchor="end">{escape(short)}</text>'
        )
        body.append(
            f'<rect class="mark {"neg" if value < 0 else "pos"}" x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{row - 8}"/>'
        )
        body.append(
            f'<text class="value" x="{max(x + width, zero) + 4:.1f}" y="{y + 14}">{escape(_fmt(round(value, 2)))}{escape(unit)}</text>'
        )
    summary = ", ".join(f"{name} {_fmt(round(value, 2))}{unit}" for name, value in items)
    return _svg("bars", f"{label}: {summary}", body, height=height)


def histogram_bins(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin [edges[i], edges[i+1]); values below the first edge count in the first bin."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        index = bisect.bisect_right(edges, value) - 1
        counts[max(0, min(index, len(counts) - 1))] += 1
    return counts


# Webhook-to-wire latency bins (seconds): fine below a second, where a healthy setup lives.
LATENCY_EDGES = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, math.inf)
# Signal-to-fill bins (seconds): TradingView's {{timenow}} has whole seconds and its delivery takes
# about one; a figure below 0 (the sender's clock ahead) counts in the first bin.
SIGNAL_EDGES = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, math.inf)
# Slippage bins (basis points, positive is a cost): around zero, where fills should land.
SLIPPAGE_EDGES = (-math.inf, -20.0, -5.0, -1.0, 1.0, 5.0, 20.0, math.inf)


def _edge_label(value: float) -> str:
    if value == math.inf:
        return "\u221e"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.0f}s"


def _ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def bps_label(value: float) -> str:
    """A slippage bin's edge: ``-20``, ``5`` (basis points)."""
    return _fmt(value)


def bps_text(value: float) -> str:
    return f"{value:+.1f} bps"


def seconds_text(value: float) -> str:
    return f"{value:.2f} s"


def histogram(
    values: Sequence[float],
    label: str,
    edges: Sequence[float] = LATENCY_EDGES,
    *,
    empty: str = "no orders yet",
    edge_label: Callable[[float], str] = _edge_label,
    value_text: Callable[[float], str] = _ms,
) -> Markup:
    """Vertical bars counting ``values`` per bin, labelled by the bins' lower edges (``edge_label``);
    the summary names the count and the median (``value_text``)."""
    if not values:
        return _empty("hist", label, empty)
    counts = histogram_bins(values, edges)
    top = max(counts)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / len(counts)
    body = _y_axis(0, top, lambda v: HEIGHT - BOTTOM - v * plot_h / top)
    for index, count in enumerate(counts):
        x = LEFT + index * slot
        h = count * plot_h / top
        body.append(
            f'<rect class="mark pos" x="{x + 3:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" width="{slot - 6:.1f}" height="{h:.1f}"/>'
        )
        name = f"<{edge_label(edges[1])}" if index == 0 else f"\u2265{edge_label(edges[index])}"
        body.append(
            f'<text class="tick" x="{x + slot / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(name)}</text>'
        )
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    count = f"{len(values)} alert{'' if len(values) == 1 else 's'}"
    return _svg("hist", f"{label}: {count}, median {value_text(median)}", body)
