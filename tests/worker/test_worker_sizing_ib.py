"""Sizing through the real worker (issue 11): the quantity IB receives is the sized one, the plan
says how it was reached, and a size that rounds to zero ends ``rejected`` with its numbers and
nothing at IB. Real worker thread, real ib_async over TCP to ibsim, whose account reports
NetLiquidation 1,000,000 USD."""

from __future__ import annotations

from support import wait_until
from worker_helpers import add_alert, alert_ends, alert_status

from core.services import get_alert


def _orders_of(sim, alert_id):
    return {o["orderRef"].rsplit(":", 1)[-1]: o for o in sim.state()["orders"] if alert_id in o["orderRef"]}


def test_dollar_amount_buys_the_sized_quantity_and_a_zero_size_is_refused(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    tiny = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 100, "quantityType": "dollar_amount",
                            "price": 190}, "rejected")  # fmt: skip
    assert get_alert(ctx.sessions, tiny)["reason"] == (
        "sizing: 100.00 USD ÷ (190.00 × 1) = 0.5263 → 0: below the minimum size 1; nothing sent"
    )
    alert_id = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10000,
                                "quantityType": "dollar_amount", "price": 190}, "filled")  # fmt: skip
    orders = _orders_of(sim, alert_id)
    assert [(o["action"], o["orderType"], o["quantity"]) for o in orders.values()] == [("BUY", "MKT", 52)]
    sizing = get_alert(ctx.sessions, alert_id)["plan"]["sizing"]
    assert sizing["text"] == "sizing: 10,000.00 USD ÷ (190.00 × 1) = 52.6315 → 52"
    assert (sizing["rule"], sizing["quantity"], sizing["inputs"]["reference_price"]) == (
        "dollar_amount",
        "52",
        "190",
    )
    assert _orders_of(sim, tiny) == {}  # the refused alert never reached IB


def test_risk_percent_sizes_from_ibs_net_liquidation_and_the_stop(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 0.1, "quantityType": "risk_percent",
                                "price": 190, "stopLoss": {"stopPrice": 180}}, "filled")  # fmt: skip
    orders = _orders_of(sim, alert_id)
    assert (orders["entry"]["action"], orders["entry"]["quantity"]) == ("BUY", 100)
    assert (orders["sl"]["action"], orders["sl"]["orderType"], orders["sl"]["quantity"],
            orders["sl"]["auxPrice"]) == ("SELL", "STP", 100, 180)  # fmt: skip
    doc = get_alert(ctx.sessions, alert_id)["plan"]
    assert doc["sizing"]["text"] == (
        "sizing: 0.1% of 1,000,000.00 USD NetLiquidation = 1,000.00 USD risk ÷ (190.00 − 180.00) × 1 = 100 → 100"
    )
    assert doc["sizing"]["inputs"]["net_liquidation"] == "1000000"
    assert doc["notes"][0] == doc["sizing"]["text"]


def _position(sim, symbol="AAPL"):
    return sum(p["position"] for p in sim.state()["positions"] if p.get("symbol", symbol) == symbol)


def test_a_sized_reversal_opens_the_sized_quantity_and_an_unsizable_opening_only_closes(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190}, "filled")
    # long 10, sell 1,900 USD: the sized 10 is the short it opens; the long is closed first
    reverse = alert_ends(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 1900, "quantityType": "dollar_amount",
                               "price": 190}, "filled")  # fmt: skip
    orders = _orders_of(sim, reverse)
    assert {leg: (o["action"], o["quantity"]) for leg, o in orders.items()} == {
        "close": ("SELL", 10), "entry": ("SELL", 10)}  # fmt: skip
    wait_until(lambda: _position(sim) == -10)
    # short 10, buy 100 USD: the opening part sizes to 0; the short is still closed (never blocked)
    back = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 100, "quantityType": "dollar_amount",
                           "price": 190})  # fmt: skip
    wait_until(lambda: _position(sim) == 0 and alert_status(ctx, back) == "filled")
    assert {leg: (o["action"], o["quantity"]) for leg, o in _orders_of(sim, back).items()} == {
        "close": ("BUY", 10)
    }
    plan = get_alert(ctx.sessions, back)["plan"]
    assert plan["sizing"]["text"] == (
        "sizing: 100.00 USD ÷ (190.00 × 1) = 0.5263 → 0: below the minimum size 1; "
        "the opening part of the reversal is not sent: the position is only closed"
    )
    assert plan["position"]["kind"] == "close"
