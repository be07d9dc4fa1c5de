"""The worker is SIGKILLed at every step of a placement, restarted, and each leg exists exactly once.

Real processes: ``python -m ibsim`` and ``python -m worker`` (SQLite, private Redis DB). The crash
points are the one test hook in ``worker.execution.protocol.crash_point`` (env ``TV2IB_CRASH_AT``).
"""

from __future__ import annotations

import signal
import time
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker
from support import alert_status, queue_alert, wait_until

from core.db import migrate
from core.models import Fill, Order

pytestmark = pytest.mark.e2e

CRASH_POINTS = [
    "after_decision_recorded", "before_place", "after_entry_placed", "after_tp_placed", "after_sl_placed",
    "after_recorded",
]  # fmt: skip
PAYLOAD = {
    "ticker": "AAPL", "action": "buy", "quantity": 7, "orderType": "market", "price": 190,
    "takeProfit": {"amount": 3}, "stopLoss": {"amount": 2},
}  # fmt: skip


def test_sigkill_at_every_placement_step_places_each_leg_once(stack, base_env, redis_client):
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    engine = create_engine(base_env["DATABASE_URL"])
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    for point in CRASH_POINTS:
        stack.start_worker(TV2IB_CRASH_AT=point)
        alert_id = queue_alert(sessions, redis_client, PAYLOAD)
        code = stack.wait_worker_exit(timeout=20)
        assert code == -signal.SIGKILL, f"{point}: worker exited with {code}\n{stack.logs('worker')}"
        stack.start_worker()
        wait_until(lambda a=alert_id: alert_status(sessions, a) == "filled", 20,
                   f"{point}: alert not filled\n{stack.logs('worker')}")  # fmt: skip
        state = stack.sim_state()
        ours = [o for o in state["orders"] if alert_id in o["orderRef"]]
        transmitted = [o["orderRef"].rsplit(":", 1)[1] for o in ours if o["transmit"]]
        assert sorted(transmitted) == ["entry", "sl", "tp"], f"{point}: {ours}"
        bought = sum(e["shares"] for e in state["executions"] if e["orderRef"].endswith(f"{alert_id}:entry"))
        assert bought == 7, point
        wait_until(lambda a=alert_id: _fill_count(sessions, a) == 1, 10, f"{point}: fill not recorded once")
        # the recovered entry's order row carries IB's fill, not "Filled" with nothing filled
        status, filled, average, fill_price = _entry_row(sessions, alert_id)
        assert (status, filled, average) == ("Filled", 7, fill_price), f"{point}: entry order row"
        # back to flat for the next point (a second buy while long would be refused, by design)
        flat_id = queue_alert(sessions, redis_client, {"ticker": "AAPL", "action": "exit"})
        wait_until(lambda f=flat_id: alert_status(sessions, f) == "filled", 20, f"{point}: exit not filled")
        assert stack.kill_worker(signal.SIGTERM) == 0
    assert not [p for p in stack.sim_state()["positions"] if p["symbol"] == "AAPL"]

    # an exit killed right after its market order went out: flat once, alert filled, no second exit
    stack.start_worker()
    entry_id = queue_alert(sessions, redis_client, PAYLOAD)
    wait_until(
        lambda: alert_status(sessions, entry_id) == "filled", 20, f"entry not filled\n{stack.logs('worker')}"
    )
    assert stack.kill_worker(signal.SIGTERM) == 0
    stack.start_worker(TV2IB_CRASH_AT="after_exit_placed")
    exit_id = queue_alert(sessions, redis_client, {"ticker": "AAPL", "action": "exit"})
    assert stack.wait_worker_exit(timeout=20) == -signal.SIGKILL
    stack.start_worker()
    wait_until(
        lambda: alert_status(sessions, exit_id) == "filled", 20, f"exit not filled\n{stack.logs('worker')}"
    )
    state = stack.sim_state()
    exits = [o for o in state["orders"] if o["orderRef"] == f"tv2ib:{exit_id}:exit"]
    assert len(exits) == 1 and exits[0]["quantity"] == 7
    assert not [p for p in state["positions"] if p["symbol"] == "AAPL"]
    engine.dispose()


def _entry_row(sessions, alert_id: str) -> tuple[str, Decimal | None, Decimal | None, Decimal]:
    """The entry order row's status, filled quantity and average price, and its fill's price."""
    with sessions() as session:
        order = session.scalar(select(Order).where(Order.order_ref == f"tv2ib:{alert_id}:entry"))
        fill = session.scalar(select(Fill).where(Fill.alert_id == alert_id, Fill.leg == "entry"))
        return order.status, order.filled_quantity, order.avg_fill_price, fill.price


def _fill_count(sessions, alert_id: str) -> int:
    with sessions() as session:
        return len(list(session.scalars(select(Fill).where(Fill.alert_id == alert_id))))


def test_a_rerun_long_after_a_crash_adopts_the_orders_at_ib_instead_of_calling_the_alert_stale(
    stack, base_env, redis_client
):
    """Killed right after the bracket went out (decision stored, nothing recorded), the worker comes
    back after the stale limit: its legs are at IB, so the alert is resumed, not rejected "stale";
    killed before anything went out, the same wait makes it stale (and nothing is sent)."""
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.sim_post("/price", {"symbol": "MSFT", "secType": "STK", "price": 400.0})
    engine = create_engine(base_env["DATABASE_URL"])
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    stale = {"STALE_ALERT_SECONDS": "2"}

    stack.start_worker(TV2IB_CRASH_AT="after_sl_placed", **stale)
    resting = {**PAYLOAD, "orderType": "limit", "limitPrice": 180}  # rests: nothing fills meanwhile
    sent_id = queue_alert(sessions, redis_client, resting)
    assert stack.wait_worker_exit(timeout=20) == -signal.SIGKILL
    time.sleep(2.5)  # the worker is away past the stale limit
    stack.start_worker(**stale)
    wait_until(lambda: alert_status(sessions, sent_id) == "submitted", 20,
               f"alert not resumed\n{stack.logs('worker')}")  # fmt: skip
    ours = [o for o in stack.sim_state()["orders"] if sent_id in o["orderRef"]]
    assert sorted(o["orderRef"].rsplit(":", 1)[1] for o in ours) == ["entry", "sl", "tp"]
    assert stack.kill_worker(signal.SIGTERM) == 0

    stack.start_worker(TV2IB_CRASH_AT="after_decision_recorded", **stale)
    unsent_id = queue_alert(sessions, redis_client, {**PAYLOAD, "ticker": "MSFT", "price": 400})
    assert stack.wait_worker_exit(timeout=20) == -signal.SIGKILL
    time.sleep(2.5)
    stack.start_worker(**stale)
    wait_until(lambda: alert_status(sessions, unsent_id) == "rejected", 20,
               f"alert not rejected\n{stack.logs('worker')}")  # fmt: skip
    assert not [o for o in stack.sim_state()["orders"] if unsent_id in o["orderRef"]]
    engine.dispose()
