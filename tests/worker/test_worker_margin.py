"""IB's margin figure and a real account's market data, through the real worker and ibsim over TCP.

The account is ibsim's 1,000,000 USD margin account (25 % initial margin on stocks): its what-if
answers and its AvailableFunds come from the same figures, as IB's do.
"""

from __future__ import annotations

from decimal import Decimal

from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from core.services import get_alert


def _orders_of(sim, alert_id):
    return [o for o in sim.state()["orders"] if alert_id in o["orderRef"]]


def _position(sim, symbol="AAPL"):
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == symbol)


def test_an_entry_above_available_funds_is_refused_by_margin_and_a_normal_one_passes(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    # the example: 100,000 AAPL on a 1,000,000 account went to the broker
    big = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 100000})
    wait_until(lambda: alert_status(ctx, big) == "rejected")
    doc = get_alert(ctx.sessions, big)
    assert doc["reason"] == (
        "margin: needs 4,750,000 USD initial, available 1,000,000 USD "
        "(IB what-if initMarginChange for BUY 100,000 AAPL MKT against AvailableFunds)"
    )
    margin = doc["plan"]["margin"]
    assert margin["verdict"] == "refused" and Decimal(margin["init_margin_change"]) == Decimal("4750000")
    assert (
        Decimal(margin["available_funds"]) == Decimal("1000000")
        and margin["available_from"] == "AvailableFunds"
    )
    # a normal entry passes, with IB's figures in its plan
    ok = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10})
    wait_until(lambda: alert_status(ctx, ok) == "filled")
    plan = get_alert(ctx.sessions, ok)["plan"]
    assert plan["margin"]["verdict"] == "ok" and Decimal(plan["margin"]["init_margin_change"]) == Decimal(
        "475"
    )
    assert plan["margin"]["order"] == "BUY 10 AAPL MKT"
    # nothing of the refused alert reached IB (the what-if is not an order)
    assert _orders_of(sim, big) == [] and len(_orders_of(sim, ok)) == 1


def test_a_reversal_refused_by_margin_still_closes_and_opens_nothing(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    first = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10})
    wait_until(lambda: alert_status(ctx, first) == "filled")
    # long 10 -> sell 100,010 would be short 100,000: the close goes, the open is refused
    rev = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 100010})
    wait_until(lambda: _position(sim) == 0 and alert_status(ctx, rev) == "rejected")
    doc = get_alert(ctx.sessions, rev)
    position = doc["plan"]["position"]
    assert (position["target"], position["open_qty"], position["close_qty"]) == ("0", "0", "10")
    assert position["refused_open"].startswith("margin: needs 4,749,525 USD initial")
    assert doc["reason"].startswith("margin: needs 4,749,525 USD initial")
    assert doc["reason"].endswith("the close went through: the position is flat, not reversed")
    assert doc["plan"]["margin"]["order"] == "SELL 100,010 AAPL MKT"  # the whole move, as IB nets it
    assert [o["orderRef"].rsplit(":", 1)[1] for o in _orders_of(sim, rev)] == ["close"]


def test_margin_check_off_is_recorded_and_skips_ib(sim, worker_env):
    handle = WorkerThread({**worker_env, "MARGIN_CHECK": "off"}).start()
    try:
        ctx = handle.ctx
        alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190})
        wait_until(lambda: alert_status(ctx, alert_id) == "filled")
        assert get_alert(ctx.sessions, alert_id)["plan"]["margin"] == {
            "check": "off",
            "rule": "MARGIN_CHECK=off",
            "order": "BUY 1 AAPL MKT",
        }
    finally:
        handle.stop()


def test_a_what_if_without_answer_refuses_the_entry_with_the_reason(sim, worker_env):
    handle = WorkerThread({**worker_env, "MARGIN_CHECK_TIMEOUT_SECONDS": "0.5"}).start()
    try:
        ctx = handle.ctx
        sim.fault("delay", ms=1500)  # IB's order answers (the what-if's too) come late
        alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190})
        wait_until(lambda: alert_status(ctx, alert_id) == "rejected")
        assert get_alert(ctx.sessions, alert_id)["reason"] == (
            "margin: IB's what-if for BUY 1 AAPL MKT failed (no answer within 0.5s); nothing sent "
            "(MARGIN_CHECK=off skips the check)"
        )
        assert _orders_of(sim, alert_id) == []
    finally:
        sim.fault("clear")
        handle.stop()


def test_without_live_data_the_stop_loss_is_placed_from_delayed_data(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_market_data("delayed", live_error=10089)
    sim.set_price("AAPL", 200.0)
    alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 5, "stopLoss": {"percent": 2}})
    wait_until(lambda: alert_status(ctx, alert_id) == "filled")
    plan = get_alert(ctx.sessions, alert_id)["plan"]
    data = plan["market_data"]
    assert (data["type"], data["requested"], data["price"]) == ("delayed", "live", "200.0")
    assert data["why"].startswith("IB error 10089 Requested market data requires additional subscription")
    assert plan["reference_source"] == "IB last price (delayed)"
    stops = [o for o in _orders_of(sim, alert_id) if o["orderType"] == "STP"]
    assert len(stops) == 1 and stops[0]["auxPrice"] == 196.0
    # no data at all: the relative stop-loss is refused, saying why
    sim.set_market_data("none")
    refused = add_alert(ctx, {"ticker": "MSFT", "action": "buy", "quantity": 5, "stopLoss": {"percent": 2}})
    wait_until(lambda: alert_status(ctx, refused) == "rejected")
    reason = get_alert(ctx.sessions, refused)["reason"]
    assert reason.startswith(
        "stopLoss is relative but no reference price is known (no market data: IB error 354 "
        "Requested market data is not subscribed."
    )
    assert (
        "delayed data: IB error 10168 Requested market data is not subscribed. Delayed market data is not enabled."
        in reason
    )
    assert _orders_of(sim, refused) == []
    # ... but a data problem never blocks a close: long 5 -> sell 10 (a reversal) only closes
    reversal = add_alert(
        ctx, {"ticker": "AAPL", "action": "sell", "quantity": 10, "stopLoss": {"percent": 2}}
    )
    wait_until(lambda: _position(sim) == 0 and alert_status(ctx, reversal) == "rejected",
               timeout=10, what=lambda: (sim.state()["positions"], get_alert(ctx.sessions, reversal)))  # fmt: skip
    doc = get_alert(ctx.sessions, reversal)
    position = doc["plan"]["position"]
    assert (position["target"], position["open_qty"]) == ("0", "0")
    assert doc["reason"].startswith("stopLoss is relative but no reference price is known (no market data")
    assert doc["reason"].endswith("the close went through: the position is flat, not reversed")
    assert [o["orderRef"].rsplit(":", 1)[1] for o in _orders_of(sim, reversal)] == ["close"]


def test_a_trailing_entry_is_asked_about_with_its_trail(sim, running_worker):
    """The what-if is the entry as it will be sent: a TRAIL entry carries its trail amount (IB
    refuses a TRAIL without one, which would refuse every trailing entry as 'margin')."""
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "orderType": "trailing_stop",
                               "trailAmount": 2, "price": 190})  # fmt: skip
    wait_until(lambda: alert_status(ctx, alert_id) in ("submitted", "filled", "rejected"))
    doc = get_alert(ctx.sessions, alert_id)
    assert doc["status"] != "rejected", doc["reason"]
    assert doc["plan"]["margin"]["verdict"] == "ok" and doc["plan"]["margin"]["order"] == "BUY 10 AAPL TRAIL"
    assert [o["orderType"] for o in _orders_of(sim, alert_id)] == ["TRAIL"]
