"""Execution quality per alert and per strategy: the slippage and latency of :mod:`core.slippage`
over the stored alerts, for the admin API (``GET /api/performance``), the dashboard, the command
line and Telegram's ``/performance``.

Per strategy, over the alerts received in the window whose own orders filled:

* ``filled``: how many; ``measured``: those with a reference price (their slippage counts);
* slippage in basis points, mean and median per alert (each alert counts once, whatever its size);
  in money, per currency (never converted): the total, mean and median per alert;
* the exits (take-profits, stop-losses) against their own order prices, in basis points;
* signal → fill and arrival → fill latency (first fill of the alert's own orders), p50 and p90.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NotRequired, TypedDict

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from core.models import Alert, Fill, utcnow
from core.slippage import (
    AlertRecord,
    ExecutionDoc,
    FillLine,
    OrderLine,
    execution,
    mean,
    median,
    percentile,
)

NO_STRATEGY = "(none)"  # the name of the alerts that named no strategy
DEFAULT_DAYS = 90
MAX_DAYS = 3650
ALERTS_LISTED = 100


class CurrencySlippage(TypedDict):
    """The slippage of a strategy's alerts in one currency (never converted); positive is a cost."""

    alerts: int
    total: float
    mean: float
    median: float


class StrategyPerformance(TypedDict):
    """One strategy's execution quality over the window (docs/dashboard.md: Slippage and latency)."""

    strategy: str
    filled: int
    measured: int
    slippage_bps_mean: float | None
    slippage_bps_median: float | None
    slippage_by_currency: dict[str, CurrencySlippage]
    exits_measured: int
    exit_slippage_bps_mean: float | None
    exit_slippage_bps_median: float | None
    signal_to_fill_p50: float | None
    signal_to_fill_p90: float | None
    arrival_to_fill_p50: float | None
    arrival_to_fill_p90: float | None


class AlertPerformance(TypedDict):
    """One filled alert with its slippage and latency."""

    id: str
    received_at: str | None
    ticker: str | None
    action: str | None
    strategy: str
    execution: ExecutionDoc


class PerformanceDoc(TypedDict):
    """``GET /api/performance``: per strategy over the last ``days`` (alerts received since
    ``since``); with ``?strategy=``, also that strategy's newest filled alerts."""

    since: str
    days: int
    strategies: list[StrategyPerformance]
    alerts: NotRequired[list[AlertPerformance]]


def record_of(alert: Alert) -> AlertRecord:
    """The stored alert (with its orders and fills loaded) as :mod:`core.slippage` reads it."""
    return AlertRecord(
        payload=alert.payload,
        plan=alert.plan,
        orders=[OrderLine(o.leg, o.order_type, o.limit_price, o.stop_price) for o in alert.orders],
        fills=[
            FillLine(f.leg, f.side, Decimal(f.price), Decimal(f.quantity), f.time, f.recorded_at)
            for f in alert.fills
        ],
        signal_time=alert.signal_time,
        received_at=alert.received_at,
    )


def execution_of(alert: Alert) -> ExecutionDoc | None:
    """The alert's slippage and latency (None before any fill)."""
    return execution(record_of(alert))


def _strategy_is(strategy: str) -> ColumnElement[bool]:
    return Alert.strategy.is_(None) if strategy == NO_STRATEGY else Alert.strategy == strategy


def filled_alerts(
    sessions: sessionmaker[Session], since: datetime, strategy: str | None = None
) -> list[AlertPerformance]:
    """Every alert received since ``since`` with a fill, newest first, with its execution."""
    has_fill = select(Fill.id).where(Fill.alert_id == Alert.id).exists()
    query = (
        select(Alert)
        .where(Alert.received_at >= since, has_fill)
        .order_by(Alert.id.desc())
        .options(selectinload(Alert.orders), selectinload(Alert.fills))
    )
    if strategy is not None:
        query = query.where(_strategy_is(strategy))
    out: list[AlertPerformance] = []
    with sessions() as session:
        for alert in session.scalars(query):
            doc = execution_of(alert)
            if doc is None:
                continue
            out.append(
                {
                    "id": alert.id,
                    "received_at": alert.received_at.isoformat() if alert.received_at else None,
                    "ticker": alert.ticker,
                    "action": alert.action,
                    "strategy": alert.strategy or NO_STRATEGY,
                    "execution": doc,
                }
            )
    return out


def _round(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)


def summarize(strategy: str, alerts: list[AlertPerformance]) -> StrategyPerformance:
    """One strategy's figures from its filled alerts (pure)."""
    own = [a["execution"]["alert"] for a in alerts if a["execution"]["alert"] is not None]
    measured = [c for c in own if c["slippage_bps"] is not None]
    money: dict[str, list[float]] = defaultdict(list)
    for item in alerts:
        cost = item["execution"]["alert"]
        if cost is not None and cost["slippage"] is not None:
            money[item["execution"]["currency"] or "?"].append(cost["slippage"])
    exits = [
        e["slippage_bps"] for a in alerts for e in a["execution"]["exits"] if e["slippage_bps"] is not None
    ]
    latencies = [a["execution"]["latency"] for a in alerts if a["execution"]["alert"] is not None]
    signal = [t["signal_to_fill_seconds"] for t in latencies if t["signal_to_fill_seconds"] is not None]
    arrival = [t["arrival_to_fill_seconds"] for t in latencies if t["arrival_to_fill_seconds"] is not None]
    bps = [c["slippage_bps"] for c in measured if c["slippage_bps"] is not None]
    return {
        "strategy": strategy,
        "filled": len(own),
        "measured": len(measured),
        "slippage_bps_mean": _round(mean(bps), 4),
        "slippage_bps_median": _round(median(bps), 4),
        "slippage_by_currency": {
            currency: {
                "alerts": len(values),
                "total": round(sum(values), 6),
                "mean": round(sum(values) / len(values), 6),
                "median": round(median(values) or 0.0, 6),
            }
            for currency, values in sorted(money.items())
        },
        "exits_measured": len(exits),
        "exit_slippage_bps_mean": _round(mean(exits), 4),
        "exit_slippage_bps_median": _round(median(exits), 4),
        "signal_to_fill_p50": _round(percentile(signal, 0.5), 3),
        "signal_to_fill_p90": _round(percentile(signal, 0.9), 3),
        "arrival_to_fill_p50": _round(percentile(arrival, 0.5), 3),
        "arrival_to_fill_p90": _round(percentile(arrival, 0.9), 3),
    }


def by_strategy(alerts: list[AlertPerformance]) -> list[StrategyPerformance]:
    """:func:`summarize` for each strategy among ``alerts``, by name."""
    groups: dict[str, list[AlertPerformance]] = defaultdict(list)
    for item in alerts:
        groups[item["strategy"]].append(item)
    return [summarize(name, groups[name]) for name in sorted(groups)]


def performance(
    sessions: sessionmaker[Session],
    days: int = DEFAULT_DAYS,
    strategy: str | None = None,
    now: datetime | None = None,
) -> PerformanceDoc:
    """Per strategy over the last ``days`` (1 to :data:`MAX_DAYS`); with ``strategy``, that one
    only, and its newest :data:`ALERTS_LISTED` filled alerts."""
    days = max(1, min(days, MAX_DAYS))
    since = (now or utcnow()) - timedelta(days=days)
    alerts = filled_alerts(sessions, since, strategy)
    doc: PerformanceDoc = {"since": since.isoformat(), "days": days, "strategies": by_strategy(alerts)}
    if strategy is not None:
        doc["alerts"] = alerts[:ALERTS_LISTED]
    return doc
