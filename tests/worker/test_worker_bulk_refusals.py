"""IB refusing or cancelling many orders at once (ibsim's faults ``reject_next`` with a count, and
``cancel_working``): every alert ends with IB's reason, and no exit is left working without its
entry."""

from __future__ import annotations

from support import wait_until
from worker_helpers import add_alert, alert_status

from core.services import get_alert

CLIENT = 7  # worker_env's IB_CLIENT_ID
ALERTS = 6


def _bracket(i: int) -> dict:
    """A limit bracket resting below the market (its exits wait under it)."""
    return {"ticker": "AAPL", "action": "buy", "quantity": 1 + i, "orderType": "limit", "limitPrice": 185 + i * 0.1,
            "takeProfit": {"limitPrice": 200}, "stopLoss": {"stopPrice": 180}, "strategy": f"s{i}"}  # fmt: skip


def _working(sim, alert_ids: list[str]) -> list[dict]:
    return [
        o for o in sim.state()["orders"]
        if o["clientId"] == CLIENT and any(a in o["orderRef"] for a in alert_ids)
        and o["status"] in ("Submitted", "PreSubmitted", "PendingSubmit")
    ]  # fmt: skip


def _ended(ctx, alert_ids: list[str], status: str) -> bool:
    return all(alert_status(ctx, a) == status for a in alert_ids)


def test_many_orders_refused_at_once_each_alert_names_ibs_reason(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    # every leg of every bracket refused (3 legs each); the next alert goes through
    sim.fault("reject_next", count=3 * ALERTS, code=201, reason="Simulated risk limit reached")
    ids = [add_alert(ctx, _bracket(i)) for i in range(ALERTS)]
    wait_until(lambda: _ended(ctx, ids, "rejected"), timeout=60)
    for alert_id in ids:
        assert "Simulated risk limit reached" in get_alert(ctx.sessions, alert_id)["reason"]
    assert _working(sim, ids) == []  # nothing left at IB, no exit without its entry
    after = add_alert(ctx, _bracket(0))
    wait_until(lambda: alert_status(ctx, after) == "submitted")
    assert len(_working(sim, [after])) == 3


def test_many_orders_cancelled_by_ib_end_with_its_reason_and_take_their_exits(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    ids = [add_alert(ctx, _bracket(i)) for i in range(ALERTS)]
    wait_until(lambda: _ended(ctx, ids, "submitted"), timeout=60)
    wait_until(lambda: len(_working(sim, ids)) == 3 * ALERTS)
    answer = sim.fault("cancel_working", prefix="tv2ib:", reason="Exchange purge of resting orders")
    assert answer["cancelled"] == ALERTS  # the entries; their exits went with them
    wait_until(lambda: _ended(ctx, ids, "cancelled"), timeout=60)
    for alert_id in ids:
        reason = get_alert(ctx.sessions, alert_id)["reason"]
        assert reason.startswith("entry cancelled") and "Exchange purge of resting orders" in reason, reason
    assert _working(sim, ids) == []
    assert not [p for p in sim.state()["positions"] if p["symbol"] == "AAPL" and p["position"]]
