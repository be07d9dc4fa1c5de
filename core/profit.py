"""Realized profit from IB's executions, for Telegram's ``/profit`` and ``/daily`` (modelled on
freqtrade's commands of those names): totals, trades, win rate, profit factor and drawdown over a
window, and day by day.

Definitions:

* a fill's realized PnL is IB's ``realizedPNL`` (IB reports it net of commissions; opening fills
  realize nothing), in its commission report's currency. Currencies are never converted: every
  figure is per currency;
* a *trade* is an alert (or, without one, an order: a flatten, a manual order) whose fills in the
  window realized PnL; it is a *win* when their sum is positive, a *loss* when negative;
* the profit factor is the wins' sum over the losses' (None without a loss); the maximum drawdown
  is the largest fall of the cumulative realized PnL from its running peak (starting at 0);
* days are UTC days, as ``/pnl``'s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import Alert, Fill, utcnow
from core.performance import NO_STRATEGY

UNKNOWN_CURRENCY = "?"
MAX_DAILY_DAYS = 60


@dataclass(frozen=True)
class PnlFill:
    """One execution as the profit figures need it."""

    trade: str  # the alert id, else the orderRef, else the exec id
    strategy: str
    time: datetime
    realized: Decimal | None
    commission: Decimal | None
    currency: str | None


class CurrencyProfit(TypedDict):
    """Realized figures in one currency."""

    currency: str
    fills: int
    realized_pnl: float
    commissions: float
    trades: int
    wins: int
    losses: int
    win_rate: float | None
    avg_trade: float | None
    best_trade: float | None
    worst_trade: float | None
    gross_profit: float
    gross_loss: float
    profit_factor: float | None
    max_drawdown: float
    best_strategy: str | None
    best_strategy_pnl: float | None


class ProfitDoc(TypedDict):
    """``/profit``: realized figures per currency since ``since`` (None: all time)."""

    since: str | None
    first_fill: str | None
    last_fill: str | None
    currencies: list[CurrencyProfit]


class DayTotals(TypedDict):
    realized_pnl: float
    commissions: float
    fills: int
    trades: int


class DayProfit(TypedDict):
    """One UTC day: its realized figures per currency (empty: no fill that day)."""

    date: str
    currencies: dict[str, DayTotals]


class DailyDoc(TypedDict):
    """``GET /api/daily``: the days, today first."""

    days: list[DayProfit]


def _currencies(fills: Sequence[PnlFill]) -> dict[str, str]:
    """Each trade's currency: that of any of its fills' commission reports."""
    known: dict[str, str] = {}
    for fill in fills:
        if fill.currency:
            known.setdefault(fill.trade, fill.currency)
    return known


def _trade_results(fills: Iterable[PnlFill]) -> dict[str, Decimal]:
    """Each trade's realized sum, for the trades whose fills realized something non-zero."""
    sums: dict[str, Decimal] = defaultdict(Decimal)
    realizing: set[str] = set()
    for fill in fills:
        if fill.realized is not None:
            sums[fill.trade] += fill.realized
            realizing.add(fill.trade)
    return {trade: total for trade, total in sums.items() if trade in realizing and total != 0}


def max_drawdown(fills: Sequence[PnlFill]) -> Decimal:
    """The largest fall of the cumulative realized PnL from its running peak (from 0)."""
    peak = total = worst = Decimal(0)
    for fill in sorted(fills, key=lambda f: f.time):
        total += fill.realized or 0
        peak = max(peak, total)
        worst = max(worst, peak - total)
    return worst


def _best_strategy(fills: Sequence[PnlFill]) -> tuple[str | None, Decimal | None]:
    per: dict[str, Decimal] = defaultdict(Decimal)
    for fill in fills:
        if fill.realized is not None:
            per[fill.strategy] += fill.realized
    if not per:
        return None, None
    name = max(sorted(per), key=lambda s: per[s])
    return name, per[name]


def currency_profit(currency: str, fills: Sequence[PnlFill]) -> CurrencyProfit:
    """The figures of ``fills`` (all in ``currency``)."""
    results = list(_trade_results(fills).values())
    wins = [r for r in results if r > 0]
    losses = [r for r in results if r < 0]
    gross_profit = sum(wins, Decimal(0))
    gross_loss = -sum(losses, Decimal(0))
    best_name, best_pnl = _best_strategy(fills)
    return {
        "currency": currency,
        "fills": len(fills),
        "realized_pnl": float(sum((f.realized or Decimal(0) for f in fills), Decimal(0))),
        "commissions": float(sum((f.commission or Decimal(0) for f in fills), Decimal(0))),
        "trades": len(results),
        "wins": len(wins),
        "losses": len(losses),
        "win_rate": len(wins) / len(results) if results else None,
        "avg_trade": float(sum(results, Decimal(0)) / len(results)) if results else None,
        "best_trade": float(max(results)) if results else None,
        "worst_trade": float(min(results)) if results else None,
        "gross_profit": float(gross_profit),
        "gross_loss": float(gross_loss),
        "profit_factor": float(gross_profit / gross_loss) if gross_loss else None,
        "max_drawdown": float(max_drawdown(fills)),
        "best_strategy": best_name,
        "best_strategy_pnl": None if best_pnl is None else float(best_pnl),
    }


def _by_currency(fills: Sequence[PnlFill]) -> dict[str, list[PnlFill]]:
    currency = _currencies(fills)
    groups: dict[str, list[PnlFill]] = defaultdict(list)
    for fill in fills:
        groups[fill.currency or currency.get(fill.trade) or UNKNOWN_CURRENCY].append(fill)
    return groups


def profit_of(fills: Sequence[PnlFill], since: datetime | None = None) -> ProfitDoc:
    """``/profit`` from ``fills`` (pure)."""
    times = sorted(f.time for f in fills)
    groups = _by_currency(fills)
    return {
        "since": None if since is None else since.isoformat(),
        "first_fill": times[0].isoformat() if times else None,
        "last_fill": times[-1].isoformat() if times else None,
        "currencies": [currency_profit(name, groups[name]) for name in sorted(groups)],
    }


def daily_of(fills: Sequence[PnlFill], today: date, days: int) -> list[DayProfit]:
    """``/daily``: the last ``days`` UTC days up to ``today``, newest first, each with its figures
    per currency (pure). A trade counts on each day one of its fills realized PnL."""
    out: list[DayProfit] = []
    for back in range(days):
        day = today - timedelta(days=back)
        mine = [f for f in fills if f.time.astimezone(UTC).date() == day]
        groups = _by_currency(mine)
        out.append(
            {
                "date": day.isoformat(),
                "currencies": {
                    name: {
                        "realized_pnl": float(sum((f.realized or Decimal(0) for f in group), Decimal(0))),
                        "commissions": float(sum((f.commission or Decimal(0) for f in group), Decimal(0))),
                        "fills": len(group),
                        "trades": len(_trade_results(group)),
                    }
                    for name, group in sorted(groups.items())
                },
            }
        )
    return out


def load_fills(sessions: sessionmaker[Session], since: datetime | None = None) -> list[PnlFill]:
    """Every execution since ``since`` (all of them without), oldest first."""
    query = (
        select(Fill.alert_id, Fill.order_ref, Fill.exec_id, Fill.time, Fill.realized_pnl, Fill.commission,
               Fill.commission_currency, Alert.strategy)
        .outerjoin(Alert, Alert.id == Fill.alert_id)
        .order_by(Fill.time, Fill.id)
    )  # fmt: skip
    if since is not None:
        query = query.where(Fill.time >= since)
    with sessions() as session:
        rows = session.execute(query).all()
    return [
        PnlFill(
            trade=alert_id or order_ref or exec_id,
            strategy=strategy or NO_STRATEGY,
            time=at,
            realized=realized,
            commission=commission,
            currency=currency,
        )
        for alert_id, order_ref, exec_id, at, realized, commission, currency, strategy in rows
    ]


def profit(
    sessions: sessionmaker[Session], days: int | None = None, now: datetime | None = None
) -> ProfitDoc:
    """Realized figures over the last ``days`` (all time when None)."""
    since = None if days is None else (now or utcnow()) - timedelta(days=max(1, days))
    return profit_of(load_fills(sessions, since), since)


def daily(sessions: sessionmaker[Session], days: int = 7, now: datetime | None = None) -> list[DayProfit]:
    """The last ``days`` UTC days (1 to :data:`MAX_DAILY_DAYS`), today first."""
    days = max(1, min(days, MAX_DAILY_DAYS))
    now = now or utcnow()
    today = now.astimezone(UTC).date()
    start = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=days - 1)
    return daily_of(load_fills(sessions, start), today, days)
