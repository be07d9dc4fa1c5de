"""The worker refuses, before anything reaches IB, orders intake could not rule out: exits that
land at or below 0 and sizes over MAX_ORDER_QUANTITY (alerts stored by an older intake, or by a
web process with other settings). Real worker in a thread, real ib_async over TCP to ibsim."""

from __future__ import annotations

import pytest
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from core.services import get_alert


def _orders_of(sim, alert_id):
    return [o for o in sim.state()["orders"] if alert_id in o["orderRef"]]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # the probe's LMT -1710
        (
            {
                "ticker": "AAPL",
                "action": "sell",
                "quantity": 1,
                "price": 190,
                "takeProfit": {"percent": 1000},
            },
            "take-profit from takeProfit.percent=1000 comes to -1710",
        ),
        # the probe's STP 0 (IB rejected it; the entry and the take-profit then sat PendingSubmit)
        (
            {
                "ticker": "AAPL",
                "action": "buy",
                "quantity": 1,
                "price": 190,
                "takeProfit": {"percent": 1},
                "stopLoss": {"percent": 100},
            },
            "stop-loss from stopLoss.percent=100 comes to 0",
        ),
        # the probe's quantity 1e12, filled by ibsim
        (
            {"ticker": "AAPL", "action": "buy", "quantity": 10**12, "price": 190},
            "above MAX_ORDER_QUANTITY 1000000",
        ),
        # a row no intake wrote (edited by hand): refused naming the field, not a worker error
        (
            {"ticker": "AAPL", "action": "buy", "quantity": "lots", "price": 190},
            "quantity is not a number",
        ),
    ],
)
def test_nonsense_orders_are_rejected_with_the_reason_and_nothing_is_placed(
    sim, running_worker, payload, reason
):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, payload)
    wait_until(lambda: alert_status(ctx, alert_id) == "rejected")
    doc = get_alert(ctx.sessions, alert_id)
    assert reason in doc["reason"]
    assert doc["orders"] == []
    # a valid alert after it goes through, so the sim saw the worker's traffic: none for the refused one
    ok = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190})
    wait_until(lambda: alert_status(ctx, ok) == "filled")
    assert _orders_of(sim, alert_id) == [] and len(_orders_of(sim, ok)) == 1


def test_max_order_quantity_setting_reaches_the_worker(sim, worker_env):
    handle = WorkerThread({**worker_env, "MAX_ORDER_QUANTITY": "5"}).start()
    try:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        refused = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 6, "price": 190})
        wait_until(lambda: alert_status(ctx, refused) == "rejected")
        assert "above MAX_ORDER_QUANTITY 5" in get_alert(ctx.sessions, refused)["reason"]
        assert _orders_of(sim, refused) == []
    finally:
        handle.stop()
