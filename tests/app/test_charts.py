"""The dashboard's server-rendered SVG charts (pure functions: parsed back as XML and checked)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from app.dashboard import charts

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script>&'


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(str(markup))  # well-formed XML or this raises
    assert root.tag == SVG + "svg" and root.get("role") == "img"
    return root


def test_step_line_draws_the_cumulative_pnl_and_says_where_it_ends():
    start = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
    points = [(start, -5.0), (start + timedelta(minutes=30), 12.5), (start + timedelta(hours=2), 40.25)]
    root = parse(charts.step_line(points, "PnL"))
    assert root.get("aria-label") == "PnL: 3 fills, now 40.25"
    path = root.find(f"{SVG}path").get("d")
    # from zero, one horizontal + vertical step per fill, then flat to the right edge
    assert path.startswith("M") and path.count("L") == 2 * len(points) + 1
    ticks = [t.text for t in root.iter(f"{SVG}text")]
    assert "14:30 UTC" in ticks and "16:30 UTC" in ticks and "40.25" in ticks and "-5" in ticks
    assert root.find(f"{SVG}path").get("class") == "series pos"
    assert parse(charts.step_line([(start, -1.0)], "PnL")).find(f"{SVG}path").get("class") == "series neg"


def test_empty_charts_say_so():
    for chart in (
        charts.step_line([], "PnL"),
        charts.bars([], "x", empty="no fills today"),
        charts.histogram([], "lat"),
    ):
        root = parse(chart)
        assert root.find(f"{SVG}text").get("class") == "empty-text"
    assert parse(charts.bars([], "x", empty="no fills today")).find(f"{SVG}text").text == "no fills today"


def test_bars_escape_names_and_put_losses_left_of_zero():
    root = parse(charts.bars([(HOSTILE, -20.0), ("meanrev", 30.0)], "PnL per strategy"))
    assert HOSTILE[:17] + "\u2026" in [t.text for t in root.iter(f"{SVG}text")]  # long names shortened
    loss, gain = root.findall(f"{SVG}rect")
    zero = float(root.find(f"{SVG}line").get("x1"))
    assert loss.get("class") == "mark neg" and float(loss.get("x")) + float(loss.get("width")) <= zero + 0.1
    assert gain.get("class") == "mark pos" and float(gain.get("x")) >= zero - 0.1
    assert float(gain.get("width")) > float(loss.get("width"))  # 30 drawn longer than 20
    assert "<script>" not in str(charts.bars([(HOSTILE, 1.0)], HOSTILE))


def test_histogram_bins_and_bars():
    assert charts.histogram_bins([0.01, 0.07, 0.3, 0.3, 4.0, 99.0, -1], charts.LATENCY_EDGES) == [
        2,
        1,
        0,
        2,
        0,
        0,
        1,
        1,
    ]
    values = [0.02, 0.03, 0.12, 7.5]
    root = parse(charts.histogram(values, "Latency"))
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == len(charts.LATENCY_EDGES) - 1
    heights = [float(r.get("height")) for r in rects]
    assert (
        heights[0] == max(heights)
        and heights[0] == 2 * heights[2]
        and heights[-1] == heights[2]
        and heights[1] == 0
    )
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "<50ms" in labels and "\u22655s" in labels
    assert root.get("aria-label") == "Latency: 4 alerts, median 120 ms"
    assert math.isinf(charts.LATENCY_EDGES[-1])
