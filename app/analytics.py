"""Read-only figures for the dashboard's search and pictures: alert search with pages, the day's
realized PnL curve, per-strategy PnL and win rate, and webhook-to-wire latencies.

Like :mod:`core.services`, every function takes a session factory and returns plain data.
Definitions (also in docs/dashboard.md):

* realized PnL of a fill is IB's ``realizedPNL`` minus its commission (opening fills realize
  nothing but still pay commission);
* a *trade* is an alert whose fills realized something; it is a *win* when their sum is > 0;
* latency is from the alert's ``received_at`` (webhook committed) to its first order row, which
  the worker writes immediately before sending the order to IB.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypedDict

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.models import Alert, Fill, Order
from core.performance import NO_STRATEGY
from core.services import AlertDoc, alert_to_dict


class StrategyStats(TypedDict):
    """One strategy's figures (``strategy`` is :data:`NO_STRATEGY` for alerts that named none)."""

    strategy: str
    alerts: int
    filled: int
    trades: int
    wins: int
    win_rate: float | None
    pnl: float


@dataclass(frozen=True)
class AlertQuery:
    """Search criteria of the alerts list; empty fields do not filter."""

    ticker: str | None = None
    strategy: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    page: int = 1
    per_page: int = 50


def day_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Start and end of the UTC day of ``now``."""
    now = now or datetime.now(UTC)
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def search_alerts(sessions: sessionmaker[Session], query: AlertQuery) -> tuple[list[AlertDoc], int]:
    """One page of alerts matching ``query``, newest first, and how many match in total."""
    conditions = []
    if query.ticker:
        conditions.append(func.upper(Alert.ticker).contains(query.ticker.upper(), autoescape=True))
    if query.strategy == NO_STRATEGY:
        conditions.append(Alert.strategy.is_(None))
    elif query.strategy:
        conditions.append(Alert.strategy == query.strategy)
    if query.status:
        conditions.append(Alert.status == query.status)
    if query.since:
        conditions.append(Alert.received_at >= query.since)
    if query.until:
        conditions.append(Alert.received_at < query.until)
    per_page = max(1, min(query.per_page, 200))
    with sessions() as session:
        total = session.scalar(select(func.count(Alert.id)).where(*conditions)) or 0
        rows = session.scalars(
            select(Alert)
            .where(*conditions)
            .order_by(Alert.id.desc())
            .offset((max(1, query.page) - 1) * per_page)
            .limit(per_page)
        )
        return nest_children([alert_to_dict(a) for a in rows]), int(total)


def nest_children(alerts: list[AlertDoc]) -> list[AlertDoc]:
    """The page's alerts with every fan-out child moved right under its parent (when the parent is
    on the page; the list shows children indented there). Order otherwise kept: newest first."""
    on_page = {a["id"] for a in alerts}
    children: dict[str, list[AlertDoc]] = {}
    for alert in alerts:
        parent = alert["parent_id"]
        if parent is not None and parent in on_page:
            children.setdefault(parent, []).append(alert)
    nested: list[AlertDoc] = []
    for alert in alerts:
        if alert.get("parent_id") in on_page:
            continue
        nested.append(alert)
        nested.extend(sorted(children.get(alert["id"], []), key=lambda c: c["id"]))
    return nested


def strategy_names(sessions: sessionmaker[Session]) -> list[str]:
    """Every strategy name seen on an alert, sorted."""
    with sessions() as session:
        names = session.scalars(select(Alert.strategy).where(Alert.strategy.is_not(None)).distinct())
        return sorted(n for n in names if n)


def _net(fill_pnl: Decimal | float | None, commission: Decimal | float | None) -> float:
    return float(fill_pnl or 0) - float(commission or 0)


def pnl_curve(
    sessions: sessionmaker[Session], start: datetime, end: datetime, strategy: str | None = None
) -> list[tuple[datetime, float]]:
    """Cumulative realized PnL net of commissions after each fill in [start, end)."""
    query = (
        select(Fill.time, Fill.realized_pnl, Fill.commission)
        .where(Fill.time >= start, Fill.time < end)
        .order_by(Fill.time, Fill.id)
    )
    if strategy is not None:
        query = query.join(Alert, Alert.id == Fill.alert_id).where(_strategy_is(strategy))
    total = 0.0
    points = []
    with sessions() as session:
        for at, realized, commission in session.execute(query):
            total += _net(realized, commission)
            points.append((at, round(total, 6)))
    return points


def _strategy_is(strategy: str) -> ColumnElement[bool]:
    return Alert.strategy.is_(None) if strategy == NO_STRATEGY else Alert.strategy == strategy


def strategy_stats(
    sessions: sessionmaker[Session], since: datetime | None = None, strategy: str | None = None
) -> list[StrategyStats]:
    """Per strategy: alerts, filled alerts, trades, wins, win rate, realized PnL net of fees."""
    alert_filter = [] if since is None else [Alert.received_at >= since]
    if strategy is not None:
        alert_filter.append(_strategy_is(strategy))
    stats: dict[str, StrategyStats] = {}

    def row(name: str | None) -> StrategyStats:
        key = name or NO_STRATEGY
        return stats.setdefault(
            key,
            {"strategy": key, "alerts": 0, "filled": 0, "trades": 0, "wins": 0, "win_rate": None, "pnl": 0.0},
        )

    with sessions() as session:
        counts = session.execute(
            select(Alert.strategy, Alert.status, func.count(Alert.id))
            .where(*alert_filter)
            .group_by(Alert.strategy, Alert.status)
        )
        for name, status, count in counts:
            if status == "fanned_out":
                continue  # a fan-out parent trades nothing: its children (one per account) count
            entry = row(name)
            entry["alerts"] += int(count)
            if status == "filled":
                entry["filled"] += int(count)
        per_alert = session.execute(
            select(
                Alert.strategy,
                Alert.id,
                func.sum(func.coalesce(Fill.realized_pnl, 0)),
                func.sum(func.coalesce(Fill.commission, 0)),
                func.count(Fill.realized_pnl),
            )
            .join(Fill, Fill.alert_id == Alert.id)
            .where(*alert_filter)
            .group_by(Alert.strategy, Alert.id)
        )
        for name, _alert_id, realized, fees, realizing in per_alert:
            entry = row(name)
            entry["pnl"] = round(entry["pnl"] + _net(realized, fees), 6)
            if realizing and float(realized or 0) != 0:
                entry["trades"] += 1
                entry["wins"] += 1 if float(realized) > 0 else 0
    for entry in stats.values():
        if entry["trades"]:
            entry["win_rate"] = entry["wins"] / entry["trades"]
    return sorted(stats.values(), key=lambda e: e["strategy"])


def latencies(
    sessions: sessionmaker[Session], start: datetime, end: datetime, strategy: str | None = None
) -> list[float]:
    """Seconds from each alert's receipt to its first order (alerts received in [start, end))."""
    query = (
        select(Alert.received_at, func.min(Order.created_at))
        .join(Order, Order.alert_id == Alert.id)
        .where(Alert.received_at >= start, Alert.received_at < end)
        .group_by(Alert.id, Alert.received_at)
    )
    if strategy is not None:
        query = query.where(_strategy_is(strategy))
    with sessions() as session:
        pairs = session.execute(query).all()
    out = []
    for received, first_order in pairs:
        if received is None or first_order is None:
            continue
        if isinstance(first_order, str):  # an aggregate may come back untyped on SQLite
            first_order = datetime.fromisoformat(first_order)
        if first_order.tzinfo is None:
            first_order = first_order.replace(tzinfo=UTC)
        out.append(max(0.0, (first_order - received).total_seconds()))
    return out
