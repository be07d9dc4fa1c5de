"""Synthetic historical bars: a reproducible random walk that ends at the contract's current price.

Good enough for charts and indicators in demos; it is not market data. The same request gives
the same bars (the walk is seeded by contract, bar size and end time).
"""

from __future__ import annotations

import datetime as dt
import math
import random

from ibsim.catalog.instruments import Instrument
from ibsim.catalog.ticks import round_to_tick
from ibsim.framing import parse_time_field
from ibsim.model import Bar

MAX_BARS = 5000
_UNIT_SECONDS = {
    "sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600,
    "day": 86400, "days": 86400, "week": 7 * 86400, "weeks": 7 * 86400, "month": 30 * 86400, "months": 30 * 86400,
}  # fmt: skip
_DURATION_SECONDS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}


def _count_of(text: str, units: dict[str, int], upper: bool, what: str) -> int:
    """``"<count> <unit>"`` in seconds; raises ValueError naming ``what`` when it is not one."""
    count, _, unit = text.strip().partition(" ")
    unit = unit.strip()
    seconds = units.get(unit.upper() if upper else unit.lower())
    if seconds is None or not count.isdigit() or int(count) <= 0:
        raise ValueError(f"unsupported {what} {text!r}")
    return int(count) * seconds


def bar_seconds(bar_size: str) -> int:
    """``"5 mins"`` -> 300; raises ValueError for an unknown size."""
    return _count_of(bar_size, _UNIT_SECONDS, False, "bar size")


def duration_seconds(duration: str) -> int:
    """``"2 D"`` -> 172800; raises ValueError for an unknown duration."""
    return _count_of(duration, _DURATION_SECONDS, True, "duration")


def parse_end(text: str, now: float) -> float:
    """endDateTime (``""`` = now, ``YYYYMMDD HH:MM:SS [tz]``, ``YYYYMMDD-HH:MM:SS``) as unix seconds (UTC)."""
    stamp = parse_time_field(text)
    return now if stamp is None else stamp


def synthetic_bars(
    inst: Instrument, last_price: float, bar_size: str, duration: str, end: float
) -> list[Bar]:
    """Bars covering ``duration`` up to ``end`` whose last close is ``last_price``."""
    step = bar_seconds(bar_size)
    count = max(1, min(MAX_BARS, duration_seconds(duration) // step))
    end_slot = int(end // step) * step
    rng = random.Random(f"{inst.con_id}:{step}:{end_slot}")
    vol = 0.002 * math.sqrt(step / 3600)  # ~0.2% per hour, scaled with the bar length
    tick = inst.min_tick
    closes = [last_price]
    for _ in range(count - 1):
        closes.append(closes[-1] / math.exp(rng.gauss(0.0, vol)))
    closes.reverse()
    bars = []
    daily = step >= 86400
    for i, close in enumerate(closes):
        open_ = closes[i - 1] if i else close * math.exp(rng.gauss(0.0, vol / 2))
        high = max(open_, close) * (1 + abs(rng.gauss(0.0, vol / 2)))
        low = min(open_, close) * (1 - abs(rng.gauss(0.0, vol / 2)))
        stamp = end_slot - (count - 1 - i) * step
        date = dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y%m%d") if daily else str(stamp)
        o, h, lo, c = (round_to_tick(p, tick) for p in (open_, high, low, close))
        h, lo = max(h, o, c), min(lo, o, c)
        volume = float(rng.randint(100, 10_000))
        bars.append(Bar(date, o, h, lo, c, volume, round((h + lo + c) / 3, 8), rng.randint(10, 500)))
    return bars
