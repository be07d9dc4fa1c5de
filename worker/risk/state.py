"""What the risk rules remember: the trading day, today's realized PnL, the daily-loss halt and the
opening orders of the last minute, all read from (and written to) the database so that a worker
restart forgets none of it.

* **The trading day** ends at 17:00 America/New_York (:data:`DAY_ENDS`), IB's own day boundary for
  US products and the CME's session change: an order at 16:59 New York counts toward day D, one at
  17:00 toward D+1. A daily-loss halt holds until that boundary and lifts by itself after it.
* **Realized PnL** of the day is the sum of the ``realized_pnl`` IB's commission reports gave for
  the fills recorded since the day began (``Fill.realized_pnl``; IB's figure is net of the
  commissions of both sides of the round trip, so commissions are not subtracted again). Every
  fill of the account that the worker's IB connection hears is recorded, the flatten's and the
  guard's included. Chosen over ``reqPnL``'s dailyPnL because its day boundary is ours (documented
  and testable with an injected clock), it survives restarts with the database, and it is the
  figure the daily summary already reports.
* **The halt** is one :class:`~core.models.Control` row per account, ``risk:halt:<account>`` =
  ``{"day": "2026-11-30", ...}``: halted while its day is today's trading day.
* **Opening orders per minute** are counted from the ``Order`` rows: the ``entry`` legs created for
  the account in the last 60 seconds (one per opening alert; a bracket's take-profit and stop-loss
  are not counted again), so the count survives a restart.

* **The protections' fills** (worker/risk/protections.py) are the ``Fill`` rows of the last two
  weeks that are a stop-loss's (``leg`` "sl") or carry IB's realized PnL, with the strategy of
  their alert and IB's symbol of their order (:func:`closed_fills`).

The queries below are what the counters MEAN. An alert's decision does not run them: it reads the
same figures from memory (worker/risk/tally.py), built from :func:`tally_rows` at the worker's
start and kept current from the worker's own commits.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.models import Alert, Control, Fill, Order

DAY_ZONE = ZoneInfo("America/New_York")
DAY_ENDS = time(17, 0)  # the trading day's boundary, New York time
ORDER_WINDOW = timedelta(seconds=60)
#: the protections' fills kept: a lock of at most a week from a window of at most a week before it
CLOSED_KEPT = timedelta(days=15)
HALT_KEY_PREFIX = "risk:halt:"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def trading_day(now: datetime) -> date:
    """The trading day ``now`` belongs to: from 17:00 New York the evening before to 17:00."""
    local = now.astimezone(DAY_ZONE)
    return (local + timedelta(days=1)).date() if local.time() >= DAY_ENDS else local.date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants the trading day ``day`` starts and ends."""
    end = datetime.combine(day, DAY_ENDS, tzinfo=DAY_ZONE)
    start = datetime.combine(day - timedelta(days=1), DAY_ENDS, tzinfo=DAY_ZONE)
    return start.astimezone(UTC), end.astimezone(UTC)


@functools.lru_cache(maxsize=16)  # one day at a time (every alert's daily-loss check says it)
def describe_end(day: date) -> str:
    return f"{day.isoformat()} {DAY_ENDS:%H:%M} {DAY_ZONE.key}"


def halt_key(account: str) -> str:
    return HALT_KEY_PREFIX + (account or "default")


@dataclass(frozen=True)
class Halt:
    """A daily-loss halt as stored: the trading day it holds for and why."""

    day: date
    reason: str
    at: str

    def to_json(self) -> str:
        return json.dumps({"day": self.day.isoformat(), "reason": self.reason, "at": self.at})

    @classmethod
    def from_json(cls, text: str) -> Halt | None:
        try:
            doc = json.loads(text)
            return cls(date.fromisoformat(doc["day"]), str(doc.get("reason") or ""), str(doc.get("at") or ""))
        except (ValueError, KeyError, TypeError):
            return None


def _utc(moment: datetime) -> datetime:
    """An aware UTC instant, as the ``UTCDateTime`` columns store and compare them."""
    return moment.astimezone(UTC)


def realized_today(session: Session, account: str, now: datetime) -> Decimal:
    """The sum of IB's realized PnL over the fills recorded for ``account`` this trading day."""
    start, _end = day_bounds(trading_day(now))
    query = select(func.coalesce(func.sum(Fill.realized_pnl), 0)).where(
        Fill.time >= _utc(start), Fill.realized_pnl.is_not(None)
    )
    if account:
        query = query.where(Fill.account == account)
    return Decimal(str(session.scalar(query) or 0))


def opening_orders_since(session: Session, account: str, since: datetime) -> int:
    """Opening orders (``entry`` legs) created for ``account`` since ``since``."""
    query = select(func.count(Order.id)).where(Order.leg == "entry", Order.created_at >= _utc(since))
    if account:
        query = query.where(Order.account == account)
    return int(session.scalar(query) or 0)


def read_halt(session: Session, account: str, now: datetime) -> Halt | None:
    """The account's halt if it holds for the current trading day (an older one has lifted)."""
    row = session.get(Control, halt_key(account))
    if row is None:
        return None
    halt = Halt.from_json(row.value)
    if halt is None or halt.day != trading_day(now):
        return None
    return halt


def write_halt(session: Session, account: str, halt: Halt) -> bool:
    """Store the halt; False when the same day's halt was already there (alarm once per day)."""
    key = halt_key(account)
    row = session.get(Control, key)
    if row is not None:
        old = Halt.from_json(row.value)
        if old is not None and old.day == halt.day:
            return False
        row.value = halt.to_json()
    else:
        session.add(Control(key=key, value=halt.to_json()))
    return True


@dataclass(frozen=True)
class ClosedFillRow:
    """A fill the protections count (worker/risk/protections.py): a stop-loss's (``leg`` "sl"), or
    one with IB's realized PnL, with the strategy of the alert whose order it filled."""

    exec_id: str
    account: str  # "" when IB named none
    strategy: str  # the alert's strategy as it named it ("": none, or no alert: TWS, a flatten)
    symbol: str  # IB's symbol (AAPL, ES: an option's underlying, any month of a future)
    leg: str  # "sl": a stop-out
    order_ref: str
    time: datetime
    realized: Decimal | None  # IB's realized PnL (None until its commission report)


def strategy_key(name: str | None) -> str:
    """A strategy as the protections count it: without regard to case ("": alerts without one)."""
    return (name or "").strip().casefold()


@dataclass(frozen=True)
class RiskCounters:
    """What the risk rules read of the database's counters for one alert (worker/risk/verdict.py)."""

    realized: Decimal = Decimal(0)  # today's realized PnL
    orders_last_minute: int = 0
    halt: Halt | None = None
    #: the protections' fills of the last two weeks, per strategy (:func:`strategy_key`), by time
    closed: Mapping[str, tuple[ClosedFillRow, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class EntryOrderRow:
    """An ``entry`` leg's Order row as a recorder transaction left it (the orders per minute)."""

    order_ref: str
    account: str  # "" while IB has not named it
    created_at: datetime


@dataclass(frozen=True)
class RealizedFillRow:
    """A Fill row with IB's realized PnL as a recorder transaction left it (today's realized PnL)."""

    exec_id: str
    account: str  # "" when IB named none
    time: datetime
    realized: Decimal


CountedRow = EntryOrderRow | RealizedFillRow | ClosedFillRow


def counters(session: Session, account: str, now: datetime) -> RiskCounters:
    """What the gate reads from the database for one alert, in one session."""
    closed: dict[str, list[ClosedFillRow]] = {}
    for row in closed_fills(session, now - CLOSED_KEPT):
        if not account or row.account == account:
            closed.setdefault(strategy_key(row.strategy), []).append(row)
    return RiskCounters(
        realized=realized_today(session, account, now),
        orders_last_minute=opening_orders_since(session, account, now - ORDER_WINDOW),
        halt=read_halt(session, account, now),
        closed={k: tuple(sorted(v, key=closed_order)) for k, v in closed.items()},
    )


def closed_order(row: ClosedFillRow) -> tuple[datetime, str]:
    return row.time, row.exec_id


def closed_fills(session: Session, since: datetime) -> list[ClosedFillRow]:
    """The fills the protections count since ``since`` (every account): stop-losses' and those
    with IB's realized PnL, with their alert's strategy and IB's symbol (the order's: a fill
    stores the local symbol, ESZ6 or an option's)."""
    query = (
        select(
            Fill.exec_id,
            Fill.account,
            Alert.strategy,
            Order.symbol,
            Fill.symbol,
            Fill.leg,
            Fill.order_ref,
            Fill.time,
            Fill.realized_pnl,
        )  # fmt: skip
        .outerjoin(Alert, Alert.id == Fill.alert_id)
        .outerjoin(Order, Order.id == Fill.order_id)
        .where(Fill.time >= _utc(since), or_(Fill.leg.like("sl%"), Fill.realized_pnl.is_not(None)))
    )
    return [
        ClosedFillRow(
            ex,
            account or "",
            strategy or "",
            order_symbol or symbol or "",
            leg or "",
            ref or "",
            at,
            realized,
        )  # fmt: skip
        for ex, account, strategy, order_symbol, symbol, leg, ref, at, realized in session.execute(query)
    ]


def tally_rows(
    session: Session, fills_from: date, orders_since: datetime
) -> tuple[list[CountedRow], dict[str, Halt]]:
    """What the counters in memory are built from at start (worker/risk/tally.py): every fill with
    a realized PnL from the trading day ``fills_from`` on, every ``entry`` order created since
    ``orders_since``, every account's halt row (all accounts: the queries' account "" sums them)."""
    start, _end = day_bounds(fills_from)
    fills = session.execute(
        select(Fill.exec_id, Fill.account, Fill.time, Fill.realized_pnl).where(
            Fill.time >= _utc(start), Fill.realized_pnl.is_not(None)
        )
    )
    rows: list[CountedRow] = [RealizedFillRow(ex, account or "", at, pnl) for ex, account, at, pnl in fills]
    orders = session.execute(
        select(Order.order_ref, Order.account, Order.created_at).where(
            Order.leg == "entry", Order.created_at >= _utc(orders_since)
        )
    )
    rows += [EntryOrderRow(ref, account or "", at) for ref, account, at in orders]
    rows += closed_fills(session, start - CLOSED_KEPT)
    halts = {}
    for key, value in session.execute(
        select(Control.key, Control.value).where(Control.key.startswith(HALT_KEY_PREFIX))
    ):
        halt = Halt.from_json(value)
        if halt is not None:
            halts[key] = halt
    return rows, halts
