"""Is the contract's market open now? Sessions and holidays from ``exchange_calendars``.

The ``trading_hours`` rule (``regular | extended | always``) asks this module where "now" falls for
a contract: ``regular`` (the exchange's regular session), ``extended`` (US stocks' pre-market from
04:00 and after-hours until 4 hours after the close, 20:00 New York on a normal day, 17:00 on an
early-close day, as IB routes ``outsideRth`` orders), ``closed`` (a weekend, a holiday, the night),
``always`` (forex and crypto: no exchange calendar, they trade around the clock at IB) or
``unknown`` (a stock or future on an exchange with no mapping below: the rule then refuses, since
it cannot be shown that the market is open).

Holidays, early closes and session times are the library's (maintained upstream), never written
here; only the mapping from IB's exchange names to the library's calendars is ours:

============================================================  ==========
IB exchange (stocks: the primary exchange; else the exchange)  calendar
============================================================  ==========
NYSE, NASDAQ, ISLAND, ARCA, AMEX, BATS, IEX, NYSENAT,          XNYS
  or SMART / no primary exchange with currency USD
CME, GLOBEX, CBOT, ECBOT, NYMEX, COMEX (futures)               CMES
LSE                                                            XLON
IBIS, XETRA                                                    XETR
FWB                                                            XFRA
SBF                                                            XPAR
AEB                                                            XAMS
EBS                                                            XSWX
TSE (Toronto)                                                  XTSE
TSEJ (Tokyo)                                                   XTKS
SEHK                                                           XHKG
ASX                                                            XASX
============================================================  ==========

CME futures trade nearly around the clock; the CMES calendar's session (17:00 the evening
before to 16:00 Chicago) is their ``regular`` session, and they have no ``extended`` one.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from worker.risk.checks import Session

US_STOCK_EXCHANGES = frozenset({"NYSE", "NASDAQ", "ISLAND", "ARCA", "AMEX", "BATS", "IEX", "NYSENAT", "BYX",
                                "EDGEA", "EDGX", "CHX", "PSX", "BEX", "LTSE", "MEMX", "PEARL"})  # fmt: skip
FUTURES_EXCHANGES = {ex: "CMES" for ex in ("CME", "GLOBEX", "CBOT", "ECBOT", "NYMEX", "COMEX")}
OTHER_STOCK_EXCHANGES = {
    "LSE": "XLON",
    "IBIS": "XETR",
    "XETRA": "XETR",
    "FWB": "XFRA",
    "SBF": "XPAR",
    "AEB": "XAMS",
    "EBS": "XSWX",
    "TSE": "XTSE",
    "TSEJ": "XTKS",
    "SEHK": "XHKG",
    "ASX": "XASX",
}
ROUND_THE_CLOCK = frozenset({"CASH", "CRYPTO"})
PRE_MARKET_OPENS = (4, 0)  # 04:00 exchange time (US stocks)
AFTER_HOURS_LENGTH = timedelta(hours=4)  # after-hours end: 4 hours after the close (20:00 / 17:00)


def calendar_name(sec_type: str, exchange: str, primary_exchange: str = "", currency: str = "") -> str | None:
    """The ``exchange_calendars`` name for a contract; "" for forex / crypto; None: no mapping."""
    sec_type, exchange = sec_type.upper(), exchange.upper()
    primary = primary_exchange.upper()
    if sec_type in ROUND_THE_CLOCK:
        return ""
    if sec_type == "FUT":
        return FUTURES_EXCHANGES.get(exchange)
    venue = primary or exchange
    if venue in US_STOCK_EXCHANGES or (venue in ("SMART", "") and currency.upper() == "USD"):
        return "XNYS"
    return OTHER_STOCK_EXCHANGES.get(venue)


@functools.lru_cache(maxsize=16)
def _calendar(name: str, year: int) -> Any:
    """The calendar for the year before ``year`` to the year after (built once per year: a worker
    running for years never asks a calendar about a minute past its end)."""
    import exchange_calendars as xcals  # pandas underneath: imported on first use only

    return xcals.get_calendar(name, start=f"{year - 1}-01-01", end=f"{year + 1}-12-31")


def session_at(sec_type: str, exchange: str, now: datetime, *, primary_exchange: str = "",
               currency: str = "") -> Session:  # fmt: skip
    """Where ``now`` (aware) falls in the contract's market."""
    name = calendar_name(sec_type, exchange, primary_exchange, currency)
    if name == "":
        return Session("always", "", f"{sec_type} trades around the clock (no exchange calendar)")
    if name is None:
        where = primary_exchange or exchange or "?"
        return Session("unknown", "", f"no calendar for {sec_type} on {where} (see docs/risk.md)")
    return _session(name, now, us_extended=(name == "XNYS" and sec_type.upper() == "STK"))


def _session(name: str, now: datetime, *, us_extended: bool) -> Session:
    import pandas as pd

    cal = _calendar(name, now.astimezone(UTC).year)
    tz = cal.tz
    local = now.astimezone(tz)
    stamp = pd.Timestamp(now.astimezone(UTC)).floor("min")
    clock = f"{local:%a %Y-%m-%d %H:%M} {tz}"
    if cal.is_open_on_minute(stamp, ignore_breaks=False):
        return Session("regular", name, f"regular session, {clock}")
    day = local.strftime("%Y-%m-%d")
    if not us_extended:
        return Session("closed", name, f"outside the session, {clock}")
    if not cal.is_session(day):
        why = "weekend" if local.weekday() >= 5 else "holiday"
        return Session("closed", name, f"{why}, {clock}")
    opens = cal.session_open(day).to_pydatetime()
    closes = cal.session_close(day).to_pydatetime()
    pre = local.replace(hour=PRE_MARKET_OPENS[0], minute=PRE_MARKET_OPENS[1], second=0, microsecond=0)
    if pre <= local < opens.astimezone(tz):
        return Session("extended", name, f"pre-market, {clock}")
    if closes.astimezone(tz) <= local < (closes + AFTER_HOURS_LENGTH).astimezone(tz):
        return Session("extended", name, f"after-hours, {clock}")
    return Session("closed", name, f"overnight, {clock}")


def exchange_calendar(name: str, now: datetime) -> Any:
    """The library's calendar ``name`` around ``now``'s year (built once per year, cached)."""
    return _calendar(name, now.astimezone(UTC).year)


DAY_CALENDAR = "XNYS"  # the risk file's trading day is New York's (worker/risk/state.py)


@functools.lru_cache(maxsize=64)
def next_trading_day(day: date) -> date:
    """The first New York Stock Exchange session after the trading day ``day`` (a Friday's is the
    Monday, a holiday is skipped): when a ``daily_profit_target`` lock ends (at the start of that
    trading day, 17:00 New York the evening before). Without the calendar: the next day."""
    try:
        cal = _calendar(DAY_CALENDAR, day.year)
        session = cal.date_to_session((day + timedelta(days=1)).isoformat(), direction="next")
        return date(session.year, session.month, session.day)
    except Exception:  # noqa: BLE001 - a day past the library's range: the plain next day
        return day + timedelta(days=1)
