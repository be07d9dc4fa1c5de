"""Continuous futures roll (pure): which listed contract ``ROOT<n>!`` means today.

The rule: a contract stops being the front ``roll_days`` calendar days before its last trade
date; on that day (the roll date) and after, ``ROOT1!`` is the next contract by expiry, and
``ROOT<n>!`` is the n-th of those not yet rolled. "Today" is the date at the exchange (the
contract details' ``timeZoneId``, e.g. ``US/Central`` for CME): a contract rolls at the
exchange's midnight, not the server's or UTC's.

``roll_days`` None means no roll ahead of expiry: a contract is the front through its last trade
date (the rule before the symbol map; the worker always passes a number, FUTURES_ROLL_DAYS by
default). 0 rolls on the last trade date itself (the contract stops trading mid-session).

The last trade date is IB's ``lastTradeDateOrContractMonth`` (``YYYYMMDD``), else the details'
``realExpirationDate``; a contract whose details give neither as a date cannot be placed in time
and is left out of continuous picks (an explicit month still finds it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Exchanges' time zones when IB's timeZoneId is missing or unknown to the tz database.
EXCHANGE_ZONES = {
    "CME": "America/Chicago",
    "CBOT": "America/Chicago",
    "NYMEX": "America/Chicago",  # CME Group's Globex day: Chicago
    "COMEX": "America/Chicago",
    "ICEUS": "America/New_York",
    "NYBOT": "America/New_York",
    "EUREX": "Europe/Berlin",
    "ICEEU": "Europe/London",
}
FALLBACK_ZONE = "America/New_York"
_DATE = re.compile(r"(\d{8})")


@dataclass(frozen=True)
class Listed:
    """One listed contract with the dates the roll needs (from IB's contract details:
    worker/ib/translate.py ``listed_of``)."""

    local_symbol: str
    last_trade: date
    time_zone: str = ""  # IB's timeZoneId for the contract's exchange
    key: int = 0  # which of IB's contract details it is (the IB layer maps the pick back)


@dataclass(frozen=True)
class Pick:
    """The answer for a continuous future, with what the plan shows about it."""

    chosen: Listed | None
    today: date  # at the exchange
    zone: str
    roll_days: int | None
    skipped: tuple[Listed, ...]  # earlier contracts left out today (expired or rolled)

    def to_json(self) -> dict[str, Any]:
        """The roll facts for the alert's plan (``plan["contract_map"]["roll"]``)."""
        doc: dict[str, Any] = {
            "rule": _rule_text(self.roll_days),
            "roll_days": self.roll_days,
            "exchange_date": self.today.isoformat(),
            "time_zone": self.zone,
        }
        if self.chosen is not None:
            doc["contract"] = self.chosen.local_symbol
            doc["last_trade_date"] = self.chosen.last_trade.isoformat()
            rolls = roll_date(self.chosen.last_trade, self.roll_days)
            doc["rolls_on"] = rolls.isoformat() if rolls else None
        if self.skipped:
            last = self.skipped[-1]
            doc["rolled_from"] = last.local_symbol
            doc["rolled_from_last_trade_date"] = last.last_trade.isoformat()
            rolled = roll_date(last.last_trade, self.roll_days)
            doc["rolled_on"] = rolled.isoformat() if rolled else last.last_trade.isoformat()
        return doc


def _rule_text(roll_days: int | None) -> str:
    if roll_days is None:
        return "front by expiry, no roll before the last trade date"
    return f"front by expiry, rolled {roll_days} calendar day(s) before the last trade date"


def last_trade_of(*texts: str) -> date | None:
    """The first of ``texts`` that starts with a ``YYYYMMDD`` date (see the module docstring)."""
    for text in texts:
        match = _DATE.match(str(text or ""))
        if match:
            try:
                return datetime.strptime(match.group(1), "%Y%m%d").date()
            except ValueError:
                continue
    return None


def exchange_zone(time_zone: str, exchange: str = "") -> ZoneInfo:
    """The exchange's time zone: IB's timeZoneId, else a known exchange's, else New York."""
    names = [time_zone or "", EXCHANGE_ZONES.get(exchange.upper(), ""), FALLBACK_ZONE]
    for name in names:
        if not name:
            continue
        try:
            return ZoneInfo(name.strip())
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo(FALLBACK_ZONE)  # pragma: no cover - the fallback is in the tz database


def exchange_today(now: datetime, zone: ZoneInfo) -> date:
    """The date at the exchange at ``now`` (an aware datetime; naive is taken as UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(zone).date()


def next_midnight(now: datetime, zone: ZoneInfo) -> datetime:
    """The next midnight at the exchange, in UTC: until then today's pick stands."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    local = now.astimezone(zone)
    tomorrow = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return tomorrow.astimezone(UTC)


def roll_date(last_trade: date, roll_days: int | None) -> date | None:
    """The first day the contract is no longer the front (None: only once expired)."""
    if roll_days is None:
        return None
    return last_trade - timedelta(days=roll_days)


def is_current(last_trade: date, today: date, roll_days: int | None) -> bool:
    """Whether a contract with this last trade date can still be a continuous pick today."""
    rolls = roll_date(last_trade, roll_days)
    if rolls is None:
        return today <= last_trade
    return today < rolls


def pick_front(
    listings: list[Listed], index: int, now: datetime, roll_days: int | None, exchange: str = ""
) -> Pick:
    """The ``index``-th (1-based) listed contract not rolled at the exchange's ``today``."""
    listed = sorted(listings, key=lambda item: item.last_trade)
    zone = exchange_zone(listed[0].time_zone if listed else "", exchange)
    today = exchange_today(now, zone)
    current = [item for item in listed if is_current(item.last_trade, today, roll_days)]
    skipped = tuple(item for item in listed if not is_current(item.last_trade, today, roll_days))
    chosen = current[index - 1] if 0 < index <= len(current) else None
    return Pick(chosen, today, zone.key, roll_days, skipped)
