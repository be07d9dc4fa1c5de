"""The decision survives a SIGKILL of the worker the moment its write returned (docs/durability.md).

Real processes (``python -m ibsim``, ``python -m worker``) on SQLite with the product's WAL and
``synchronous=NORMAL``, and on PostgreSQL with ``synchronous_commit`` on. The worker is killed at
the crash point ``after_decision_recorded`` (worker/execution/protocol.py ``crash_point``): the
decision write was awaited, nothing is sent yet. Another process then reads the decision from the
database, nothing of the alert is at IB, and the restarted worker works exactly that decision.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import Stack
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from support import alert_status, private_pg_database, queue_alert, wait_until

from core.db import migrate
from core.models import Alert
from worker.decision.stored import StoredDecision

pytestmark = pytest.mark.e2e

PAYLOAD = {
    "ticker": "AAPL", "action": "buy", "quantity": 7, "orderType": "market", "price": 190,
    "takeProfit": {"amount": 3}, "stopLoss": {"amount": 2},
}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, base_env: dict[str, str]) -> Iterator[str]:
    if request.param == "sqlite":
        yield base_env["DATABASE_URL"]
        return
    with private_pg_database("tv2ib_e2edecision") as url:  # fresh ibsim, fresh rows
        yield url


def test_a_sigkill_right_after_the_decision_write_keeps_the_decision(
    tmp_path: Path, base_env: dict[str, str], redis_client, database_url: str
):
    stack = Stack(tmp_path, {**base_env, "DATABASE_URL": database_url})
    engine = create_engine(database_url)
    try:
        migrate(engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        stack.start_sim()
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
        stack.start_worker(TV2IB_CRASH_AT="after_decision_recorded")
        alert_id = queue_alert(sessions, redis_client, PAYLOAD)
        assert stack.wait_worker_exit(timeout=20) == -signal.SIGKILL, stack.logs("worker")

        with sessions() as session:  # another process, after the kill: the decision is there
            alert = session.get(Alert, alert_id)
            assert alert is not None and alert.plan, stack.logs("worker")
            status, decision = alert.status, StoredDecision.from_json(alert.plan)
        assert status == "processing"
        assert decision.position is not None and decision.position.target == 7
        assert [(leg.leg, leg.action, leg.quantity) for leg in decision.legs] == [
            ("entry", "BUY", 7), ("tp", "SELL", 7), ("sl", "SELL", 7)
        ]  # fmt: skip
        assert not [o for o in stack.sim_state()["orders"] if alert_id in o["orderRef"]]  # nothing went out

        stack.start_worker()  # the rerun works the stored decision, it does not decide again
        wait_until(lambda: alert_status(sessions, alert_id) == "filled", 20, lambda: stack.logs("worker"))
        ours = [o for o in stack.sim_state()["orders"] if alert_id in o["orderRef"]]
        assert sorted((o["orderRef"].rsplit(":", 1)[1], o["quantity"]) for o in ours) == [
            ("entry", 7), ("sl", 7), ("tp", 7)
        ]  # fmt: skip
    finally:
        stack.stop()
        engine.dispose()
