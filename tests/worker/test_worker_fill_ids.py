"""An execution is recorded under IB's exec id, once. Two simulators (or one restarted without its
state file) writing into the same database must not make one fill take another's row: that is how
test_long_bracket_market_on_postgresql lost its fill's commission when an earlier test on the
session's shared PostgreSQL database had filled the first order of its own fresh ibsim."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from support import wait_until
from worker_helpers import WorkerThread, alert_ends

from config.settings import Settings
from core.context import AppContext
from core.models import Alert, AlertEvent, AlertStatus, Fill
from core.services import get_alert
from ibsim.testing import run_in_thread
from worker.recording.fill_rows import record_fill, same_execution
from worker.recording.recorder import UnitOfWork
from worker.recording.snapshots import FillSnapshot

BUY = {"ticker": "AAPL", "action": "buy", "quantity": 3, "price": 190}


def _first_fill_on_a_fresh_sim(env: dict[str, str]) -> tuple[str, dict]:
    """A fresh ibsim, a worker on ``env``'s database, one market buy filled: (alert id, its fill)."""
    with run_in_thread(port=0, control_port=None, farm_notices=False) as sim:
        sim.set_price("AAPL", 190.0)
        handle = WorkerThread({**env, "IB_PORT": str(sim.port)}).start()
        try:
            alert_id = alert_ends(handle.ctx, BUY, "filled")
            doc = wait_until(lambda: (d := get_alert(handle.ctx.sessions, alert_id)) and d["fills"] and d,
                             timeout=20)  # fmt: skip
            fill = wait_until(
                lambda: (f := get_alert(handle.ctx.sessions, alert_id)["fills"][0])["commission"] and f
            )
            assert doc["fills"][0]["exec_id"] == fill["exec_id"]
            return alert_id, fill
        finally:
            handle.stop()


def test_two_fresh_simulators_on_one_database_each_record_their_fill(base_env):
    env = {**base_env, "IB_CLIENT_ID": "7", "STALE_ALERT_SECONDS": "30"}
    first, first_fill = _first_fill_on_a_fresh_sim(env)
    second, second_fill = _first_fill_on_a_fresh_sim(env)  # the same first order of a fresh engine
    assert first_fill["exec_id"] != second_fill["exec_id"]
    assert first_fill["commission"] and second_fill["commission"]
    assert first_fill["quantity"] == second_fill["quantity"] == 3


def _snap(exec_id: str, perm_id: int, order_ref: str, commission: str | None = "1.00") -> FillSnapshot:
    return FillSnapshot(
        order_ref=order_ref, ib_order_id=1, perm_id=perm_id, client_id=7, account="DU1234567", con_id=265598,
        symbol="AAPL", local_symbol="AAPL", sec_type="STK", exec_id=exec_id, side="BOT", quantity=Decimal(3),
        price=Decimal(190), cum_quantity=Decimal(3), avg_price=Decimal(190), order_quantity=Decimal(3),
        time=datetime.now(UTC), commission=None if commission is None else Decimal(commission),
        commission_currency="USD" if commission else None, realized_pnl=None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("perm_id", "order_ref", "same"),
    [
        (900000001, "tv2ib:A:entry", True),  # IB's second report of it (the commission)
        (900000001, "", True),  # a report without an orderRef (IB leaves it out of some)
        (900000002, "tv2ib:A:entry", False),  # another order's execution
        (900000001, "tv2ib:B:entry", False),
    ],
)
def test_same_execution(perm_id, order_ref, same):
    row = Fill(exec_id="e.1", perm_id=900000001, account="DU1234567", order_ref="tv2ib:A:entry")
    assert same_execution(row, _snap("e.1", perm_id, order_ref)) is same


def test_an_exec_id_stored_for_another_fill_is_said_not_taken(base_env, caplog):
    ctx = AppContext.build(Settings.from_mapping(base_env))
    try:
        with ctx.sessions.begin() as session:
            for alert_id in ("01A0000000000000000000000X", "01B0000000000000000000000X"):
                session.add(Alert(id=alert_id, status=AlertStatus.SUBMITTED, ticker="AAPL", action="buy"))
        with ctx.sessions.begin() as session:
            assert record_fill(
                UnitOfWork(session), _snap("e.1", 900000001, "tv2ib:01A0000000000000000000000X:entry")
            )
        with caplog.at_level(logging.ERROR), ctx.sessions.begin() as session:
            uow = UnitOfWork(session)
            other = _snap("e.1", 900000001 + 7, "tv2ib:01B0000000000000000000000X:entry", commission="2.50")
            assert not record_fill(uow, other)
            assert not [e for e in uow.events if e["type"] == "fill"]  # no notice for a fill not recorded
        assert "already stored for another fill" in caplog.text
        with ctx.sessions() as session:
            [row] = session.scalars(select(Fill)).all()
            assert row.alert_id == "01A0000000000000000000000X" and row.commission == Decimal("1.00")
            notes = session.scalars(
                select(AlertEvent.message).where(AlertEvent.alert_id == "01B0000000000000000000000X")
            )
            assert any("e.1" in n and "not recorded" in n for n in notes)
    finally:
        ctx.close()
