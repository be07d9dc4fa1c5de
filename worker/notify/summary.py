"""The daily summary's facts, and what an IB outage cost (blocking database reads; the notifier
runs them in its executor)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import services
from core.events import DailySummaryEvent, StrategyTotals
from core.models import Alert, AlertStatus, Fill


def by_strategy(sessions: sessionmaker[Session], now: datetime, limit: int = 15) -> list[StrategyTotals]:
    """Executions, realized PnL and fees of ``now``'s UTC day per strategy (manual trades: None)."""
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    with sessions() as session:
        rows = session.execute(
            select(
                Alert.strategy,
                func.count(Fill.id),
                func.coalesce(func.sum(Fill.realized_pnl), 0),
                func.coalesce(func.sum(Fill.commission), 0),
            )
            .select_from(Fill)
            .outerjoin(Alert, Alert.id == Fill.alert_id)
            .where(Fill.time >= start, Fill.time < start + timedelta(days=1))
            .group_by(Alert.strategy)
            .order_by(func.count(Fill.id).desc())
            .limit(limit)
        ).all()
    return [
        {"strategy": strategy, "fills": int(count), "realized_pnl": float(pnl), "commissions": float(fees)}
        for strategy, count, pnl, fees in rows
    ]


def daily_summary_event(sessions: sessionmaker[Session], now: datetime) -> DailySummaryEvent:
    """The ``daily_summary`` event of ``now``'s UTC day: the admin API's totals plus a breakdown."""
    pnl = services.pnl_today(sessions, now)
    positions = len(services.list_positions(sessions))
    return {
        "type": "daily_summary",
        "date": pnl["date"],
        "fills": pnl["fills"],
        "realized_pnl": pnl["realized_pnl"],
        "commissions": pnl["commissions"],
        "positions": positions,
        "strategies": by_strategy(sessions, now),
    }


def stale_since(
    sessions: sessionmaker[Session], since: float, account: str | None, limit: int = 500
) -> list[str]:
    """The ids of the alerts refused as stale (IB was not available in time) since the epoch
    ``since``: ``account``'s, or every account's for a worker without IB_ACCOUNT."""
    query = select(Alert.id).where(
        Alert.status == AlertStatus.REJECTED,
        Alert.reason.like("stale:%"),
        Alert.updated_at >= datetime.fromtimestamp(since, UTC),
    )
    if account:
        query = query.where(Alert.account == account)
    with sessions() as session:
        return list(session.scalars(query.order_by(Alert.id).limit(limit)))
