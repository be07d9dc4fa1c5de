"""Synthetic historical bars."""

from __future__ import annotations

import datetime as dt

import pytest

from ibsim.catalog import build_catalog, on_tick
from ibsim.history import MAX_BARS, bar_seconds, duration_seconds, parse_end, synthetic_bars

CATALOG = build_catalog(today=dt.date(2025, 1, 2))
ES = next(i for i in CATALOG if i.local_symbol == "ESH5")
END = dt.datetime(2025, 1, 2, 15, 0, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds"), [("1 secs", 1), ("5 mins", 300), ("1 hour", 3600), ("1 day", 86400)]
)
def test_bar_sizes(text: str, seconds: int) -> None:
    assert bar_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "x mins", "0 mins", "1 fortnight"])
def test_bad_bar_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        bar_seconds(text)


def test_durations_and_end() -> None:
    assert duration_seconds("2 D") == 172800 and duration_seconds("1 Y") == 365 * 86400
    with pytest.raises(ValueError):
        duration_seconds("2 parsecs")
    assert parse_end("", 5.0) == 5.0
    assert parse_end("20250102 15:00:00 UTC", 5.0) == END == parse_end("20250102-15:00:00", 5.0)
    assert parse_end("garbage", 5.0) == 5.0


def test_bars_end_at_the_price_on_the_tick_grid() -> None:
    bars = synthetic_bars(ES, 5000.25, "15 mins", "1 D", END)
    assert len(bars) == 96 and bars[-1].close == 5000.25
    assert int(bars[-1].date) == END and int(bars[1].date) - int(bars[0].date) == 900
    for bar in bars:
        assert all(on_tick(p, 0.25) for p in (bar.open, bar.high, bar.low, bar.close))
        assert bar.low <= min(bar.open, bar.close) and bar.high >= max(bar.open, bar.close)
    assert synthetic_bars(ES, 5000.25, "15 mins", "1 D", END) == bars
    assert len(synthetic_bars(ES, 5000.25, "1 secs", "1 Y", END)) == MAX_BARS
    assert synthetic_bars(ES, 5000.25, "1 day", "1 W", END)[-1].date == "20250102"
