"""Is it the flatten minute? The risk file's ``flatten_before_close`` against the exchange's close
(worker/risk/session_end.py reading the real ``exchange_calendars``; worker/risk/closing.py), and the
entry check from the flatten minute to the close (worker/risk/checks.py). Pure tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from core.risk_file import RiskRules
from worker.risk.checks import OpeningOrder, RiskContext, evaluate, first_failure
from worker.risk.session_end import closing_at, describe_when

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
WEDNESDAY = date(2026, 11, 25)  # the day before Thanksgiving: a normal day, the NYSE closes at 16:00
THANKSGIVING = date(2026, 11, 26)  # a holiday
BLACK_FRIDAY = date(2026, 11, 27)  # an early close: 13:00 New York (the CME's: 12:00 Chicago)
SATURDAY = date(2026, 11, 28)
CHRISTMAS_EVE = date(2026, 12, 24)  # an early close: 13:00


def at(day: date, hour: int, minute: int, second: int = 0, zone: ZoneInfo = NEW_YORK) -> datetime:
    return datetime.combine(day, time(hour, minute, second), zone).astimezone(UTC)


def aapl(now: datetime):
    return closing_at("STK", "SMART", now, primary_exchange="NASDAQ", currency="USD")


# (the moment, flatten_before_close, due?, the close's state)
MINUTES = [
    (at(WEDNESDAY, 15, 44, 59), 15, False, "open"),  # one second before the minute
    (at(WEDNESDAY, 15, 45), 15, True, "open"),  # the minute
    (at(WEDNESDAY, 15, 59, 59), 15, True, "open"),
    (at(WEDNESDAY, 16, 0), 15, False, "closed"),  # the close: nothing more (a market order would wait)
    (at(WEDNESDAY, 12, 45), 15, False, "open"),  # the early-close minute on a normal day: nothing
    (at(WEDNESDAY, 9, 29), 720, False, "closed"),  # before the open, however early the flatten
    (at(WEDNESDAY, 9, 30), 720, True, "open"),
    (at(BLACK_FRIDAY, 12, 44), 15, False, "open"),
    (at(BLACK_FRIDAY, 12, 45), 15, True, "open"),  # early close: 13:00
    (at(BLACK_FRIDAY, 13, 0), 15, False, "closed"),
    (at(BLACK_FRIDAY, 15, 45), 15, False, "closed"),  # the normal day's minute on an early close
    (at(CHRISTMAS_EVE, 12, 50), 10, True, "open"),
    (at(CHRISTMAS_EVE, 12, 49), 10, False, "open"),
    (at(THANKSGIVING, 15, 45), 15, False, "closed"),  # a holiday: no session
    (at(SATURDAY, 15, 45), 15, False, "closed"),  # a weekend
    (at(WEDNESDAY, 15, 50), None, False, "open"),  # a strategy without the setting
    (at(WEDNESDAY, 15, 50), 0, False, "open"),  # ... or with false
]


@pytest.mark.parametrize(("now", "minutes", "due", "state"), MINUTES)
def test_is_it_the_flatten_minute_for_a_us_stock(now, minutes, due, state):
    closing = aapl(now)
    assert (closing.state, closing.due(minutes)) == (state, due)


def test_what_the_close_says():
    normal, early = aapl(at(WEDNESDAY, 15, 45)), aapl(at(BLACK_FRIDAY, 12, 45))
    assert normal.calendar == "XNYS" and normal.closes == datetime(2026, 11, 25, 16, 0, tzinfo=NEW_YORK)
    assert normal.flatten_from(15) == datetime(2026, 11, 25, 15, 45, tzinfo=NEW_YORK)
    assert (
        describe_when(normal, 15) == "15 min before the 16:00 America/New_York close (XNYS, Wed 2026-11-25)"
    )
    assert early.closes == datetime(2026, 11, 27, 13, 0, tzinfo=NEW_YORK)
    assert describe_when(early, 15) == (
        "15 min before the 13:00 America/New_York close (XNYS, early close, Fri 2026-11-27)"
    )
    assert aapl(at(THANKSGIVING, 15, 45)).detail == "holiday, Thu 2026-11-26 15:45 America/New_York (XNYS)"
    assert aapl(at(SATURDAY, 15, 45)).detail.startswith("weekend, Sat 2026-11-28")
    assert aapl(at(WEDNESDAY, 17, 0)).detail.startswith("outside the session, Wed 2026-11-25 17:00")


def test_futures_forex_and_an_exchange_without_calendar():
    es = closing_at("FUT", "CME", at(BLACK_FRIDAY, 11, 45, zone=CHICAGO))
    assert es.calendar == "CMES" and es.due(15) and "12:00 America/Chicago (CMES, early close" in es.detail
    assert not closing_at("FUT", "CME", at(WEDNESDAY, 15, 44, zone=CHICAGO)).due(15)
    wednesday = closing_at("FUT", "CME", at(WEDNESDAY, 15, 45, zone=CHICAGO))
    assert wednesday.due(15) and wednesday.detail.startswith("16:00 America/Chicago (CMES, Wed 2026-11-25)")
    # the library's CMES session runs to 17:00; Globex halts from 16:00: nothing to flatten then
    assert not closing_at("FUT", "CME", at(WEDNESDAY, 16, 30, zone=CHICAGO)).due(90)
    fx = closing_at("CASH", "IDEALPRO", at(WEDNESDAY, 15, 50))
    assert fx.state == "always" and not fx.due(15)  # no exchange close: never flattened
    kse = closing_at("STK", "KSE", at(WEDNESDAY, 15, 50), currency="KRW")
    assert kse.state == "unknown" and not kse.due(15) and "no calendar for STK on KSE" in kse.detail


ORDER = OpeningOrder(
    ticker="AAPL", symbol="AAPL", local_symbol="AAPL", side="BUY", quantity=Decimal(10), price=Decimal(190),
    price_source="limit price", multiplier=Decimal(1), currency="USD", legs=3, position_before=Decimal(0),
    position_after=Decimal(10),
)  # fmt: skip
DAY = RiskRules(flatten_before_close=15, sources={"flatten_before_close": 'strategy "day"'})


def refusal(rules: RiskRules, now: datetime, **closing) -> str | None:
    ctx = RiskContext(order=ORDER, account="DU1", closing=replace(aapl(now), **closing))
    failed = first_failure(evaluate(rules, ctx))
    return failed.message if failed else None


def test_entries_are_refused_from_the_flatten_minute_to_the_close():
    assert refusal(DAY, at(WEDNESDAY, 15, 44)) is None
    assert refusal(DAY, at(BLACK_FRIDAY, 12, 50)) == (
        'risk: flatten_before_close 15 min (strategy "day"): AAPL\'s session closes at 13:00 America/New_York '
        "(XNYS, early close, Fri 2026-11-27); the strategy's positions are flattened from 12:45 and no new "
        "entry opens until the close"
    )
    assert refusal(DAY, at(WEDNESDAY, 16, 30)) is None  # after the close: trading_hours decides
    assert refusal(replace(DAY, flatten_before_close=0), at(WEDNESDAY, 15, 50)) is None  # false: never
    # a close that cannot be known: refused (the position could not be flattened in time)
    assert refusal(
        DAY, at(WEDNESDAY, 15, 0), state="unknown", closes=None, detail="no calendar for STK on KSE"
    ) == (
        'risk: flatten_before_close 15 min (strategy "day"): cannot tell when AAPL\'s session closes: '
        "no calendar for STK on KSE"
    )
