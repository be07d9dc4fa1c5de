"""What the risk rules remember in the database (worker/risk/state.py), on a real migrated SQLite
database: today's realized PnL by trading day and account, opening orders of the last minute, and
the daily-loss halt, which a new session (a restarted worker) still sees until the day ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from config.settings import Settings
from core.context import AppContext
from core.models import Fill, Order
from worker.risk import state

NOON = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # 12:00 New York, trading day 2026-11-30


@pytest.fixture
def sessions(base_env):
    ctx = AppContext.build(Settings.from_mapping(base_env))
    yield ctx.sessions
    ctx.close()


def _fill(exec_id: str, at: datetime, realized: str | None, account: str = "DU1") -> Fill:
    return Fill(exec_id=exec_id, account=account, side="SLD", price=Decimal(190), quantity=Decimal(10), time=at,
                realized_pnl=None if realized is None else Decimal(realized))  # fmt: skip


def test_realized_today_counts_this_trading_day_and_this_account_only(sessions):
    with sessions.begin() as session:
        session.add_all([
            _fill("a", NOON - timedelta(hours=1), "-1200.50"),
            _fill("b", NOON, None),  # an opening fill: no realized PnL
            _fill("c", datetime(2026, 11, 29, 22, 30, tzinfo=UTC), "-300"),  # 17:30 NY the day before: today
            _fill("d", datetime(2026, 11, 29, 21, 59, tzinfo=UTC), "-5000"),  # 16:59 NY: yesterday
            _fill("e", NOON, "-700", account="DU2"),
        ])  # fmt: skip
    with sessions() as session:
        assert state.realized_today(session, "DU1", NOON) == Decimal("-1500.50")
        assert state.realized_today(session, "DU2", NOON) == Decimal(-700)
        assert state.realized_today(session, "DU1", NOON + timedelta(hours=6)) == 0  # 18:00 NY: next day


def test_opening_orders_of_the_last_minute(sessions):
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for i, (leg, age, account) in enumerate([("entry", 10, "DU1"), ("tp", 10, "DU1"), ("entry", 70, "DU1"),
                                                 ("entry", 5, "DU2")]):  # fmt: skip
            session.add(Order(leg=leg, order_ref=f"tv2ib:{i}:{leg}", account=account, action="BUY",
                              order_type="MKT", quantity=Decimal(1), created_at=now - timedelta(seconds=age)))  # fmt: skip
    with sessions() as session:
        assert state.opening_orders_since(session, "DU1", now - state.ORDER_WINDOW) == 1


def test_the_halt_holds_for_the_day_across_sessions_and_lifts_at_17_new_york(sessions):
    halt = state.Halt(state.trading_day(NOON), "today's PnL -2,150 reached the daily loss limit 2,000", "t")
    with sessions.begin() as session:
        assert state.write_halt(session, "DU1", halt) is True
    with sessions.begin() as session:  # the watcher and a job both find the loss: one halt, one alarm
        assert state.write_halt(session, "DU1", halt) is False
    with sessions() as session:  # a new session, as after a restart
        assert state.read_halt(session, "DU1", NOON + timedelta(hours=4, minutes=59)) == halt  # 16:59 NY
        assert state.read_halt(session, "DU1", NOON + timedelta(hours=5)) is None  # 17:00 NY: lifted
        assert state.read_halt(session, "DU2", NOON) is None
    tomorrow = state.Halt(state.trading_day(NOON + timedelta(days=1)), "again", "t2")
    with sessions.begin() as session:
        assert state.write_halt(session, "DU1", tomorrow) is True
