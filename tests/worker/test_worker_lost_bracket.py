"""A bracket cut in two by a dropped connection (worker/lost_placements.py): ibsim's
``drop_mid_bracket`` fault closes the worker's connection right after it has read the staged entry,
so the take-profit and the stop-loss, already written to the socket, never reach it. The job saw
its legs written and recorded the alert ``submitted``; what a trader checks is that the alert does
not sit there with nothing working at IB: once the worker is back it sends the bracket again
(once: one entry, one take-profit, one stop-loss), or ends it stale with the reason."""

from __future__ import annotations

import json

from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from core.services import get_alert

BRACKET = {"ticker": "AAPL", "action": "buy", "quantity": 5,
           "takeProfit": {"limitPrice": 195}, "stopLoss": {"stopPrice": 185}}  # fmt: skip


def legs_at_ib(sim, alert_id: str) -> dict[str, list[dict]]:
    legs: dict[str, list[dict]] = {}
    for order in sim.state()["orders"]:
        if order["orderRef"].startswith(f"tv2ib:{alert_id}:"):
            legs.setdefault(order["orderRef"].rsplit(":", 1)[1], []).append(order)
    return legs


def events(handle: WorkerThread, alert_id: str) -> str:
    return str(get_alert(handle.ctx.sessions, alert_id)["events"])


def test_a_bracket_cut_by_a_dropped_connection_is_sent_again_once_ib_is_back(sim, start_worker):
    handle = start_worker(housekeeping=0.2)  # the sweep looks every 0.2 s (5 s in the product)
    ctx, ib = handle.ctx, handle.worker.ib
    sim.set_price("AAPL", 190.0)
    connects = ib.connects
    sim.fault("drop_mid_bracket", count=1)
    alert_id = add_alert(ctx, BRACKET)
    wait_until(lambda: ib.connects > connects, timeout=15, what="the worker reconnected")
    wait_until(lambda: alert_status(ctx, alert_id) == "filled", timeout=20,
               what=lambda: f"{alert_status(ctx, alert_id)}: {events(handle, alert_id)}")  # fmt: skip
    assert "unknown to IB after the reconnect" in events(handle, alert_id)
    legs = legs_at_ib(sim, alert_id)
    # the first entry stays staged at ibsim, never transmitted (real TWS drops a lost client's
    # untransmitted orders): it can never trade. What went out went out once.
    [twin] = [o for o in legs["entry"] if not o["transmit"]]
    assert twin["status"] == "PendingSubmit" and twin["filled"] == 0
    legs = {leg: [o for o in orders if o["transmit"] or o["parentId"]] for leg, orders in legs.items()}
    assert sorted(legs) == ["entry", "sl", "tp"], legs
    assert all(len(orders) == 1 for orders in legs.values()), json.dumps(legs, indent=0)  # nothing doubled
    # invariant 7: the exits match the position, on the closing side
    assert {leg: (o[0]["action"], o[0]["quantity"]) for leg, o in legs.items() if leg != "entry"} == {
        "tp": ("SELL", 5.0),
        "sl": ("SELL", 5.0),
    }
    wait_until(lambda: sim.state()["positions"] and sim.state()["positions"][0]["position"] == 5)


def test_a_cut_bracket_whose_reconnect_outlasts_the_stale_limit_ends_stale(sim, start_worker):
    handle = start_worker(housekeeping=0.2, STALE_ALERT_SECONDS="1")
    ctx = handle.ctx
    sim.set_price("AAPL", 190.0)
    sim.fault("drop_mid_bracket", count=1, refuseSeconds=2.5)
    alert_id = add_alert(ctx, BRACKET)
    wait_until(lambda: alert_status(ctx, alert_id) == "rejected", timeout=20,
               what=lambda: f"{alert_status(ctx, alert_id)}: {events(handle, alert_id)}")  # fmt: skip
    reason = str(get_alert(ctx.sessions, alert_id)["reason"])
    assert reason.startswith("stale: IB does not know its last order (tv2ib:") and ":sl)" in reason
    assert "never reached IB whole" in reason and "not sent again" in reason
    assert sorted(legs_at_ib(sim, alert_id)) == ["entry"]  # staged only: it never trades
    assert not sim.state()["positions"]
    # the worker trades on
    sim.set_price("AAPL", 190.0)
    later = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1})
    wait_until(lambda: alert_status(ctx, later) == "filled", timeout=20)
