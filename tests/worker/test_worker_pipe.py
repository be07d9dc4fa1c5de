"""Alert → bracket at ibsim over TCP → rows, with a worker in a thread on SQLite + real Redis."""

from __future__ import annotations

from worker_helpers import add_alert, alert_status, wait_for

from app.services import get_alert


def _orders(sim, ref_part):
    return [o for o in sim.state()["orders"] if ref_part in o["orderRef"]]


def test_long_bracket_market(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, {
        "ticker": "AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190.003,
        "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5},
    })  # fmt: skip
    wait_for(lambda: alert_status(ctx, alert_id) == "filled")
    orders = {o["orderRef"].rsplit(":", 1)[1]: o for o in _orders(sim, alert_id)}
    assert set(orders) == {"entry", "tp", "sl"}
    assert orders["entry"]["action"] == "BUY" and orders["entry"]["status"] == "Filled"
    assert orders["tp"]["action"] == "SELL" and orders["tp"]["lmtPrice"] == 191.91
    assert orders["sl"]["action"] == "SELL" and orders["sl"]["auxPrice"] == 189.06
    assert orders["tp"]["parentId"] == orders["sl"]["parentId"] == orders["entry"]["orderId"]
    assert orders["tp"]["ocaGroup"] == orders["sl"]["ocaGroup"] != ""
    doc = wait_for(lambda: (d := get_alert(ctx.sessions, alert_id)) and d["fills"] and d)
    assert doc["plan"]["kind"] == "bracket" and doc["plan"]["reference_source"] == "alert price"
    assert {o["leg"] for o in doc["orders"]} == {"entry", "tp", "sl"}
    assert doc["fills"][0]["quantity"] == 10
    wait_for(lambda: get_alert(ctx.sessions, alert_id)["fills"][0]["commission"] is not None)
