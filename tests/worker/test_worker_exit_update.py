"""``action: update`` moves the working stop-loss / take-profit of a position without trading it:
the real worker (in a thread) against ibsim over TCP, and the pure rules as a table."""

from __future__ import annotations

from decimal import Decimal

import pytest
from support import wait_until
from worker_helpers import add_alert, alert_status

from core.payload import AlertPayload, StopLoss, TakeProfit
from core.services import get_alert
from worker.decision.exit_update import plan_update
from worker.decision.model import Instrument, PlanRejected

D = Decimal
AAPL = Instrument(265598, "AAPL", "STK", "SMART", "USD", "AAPL", D("0.01"))
BRACKET = {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190,
           "takeProfit": {"limitPrice": 195}, "stopLoss": {"stopPrice": 185}}  # fmt: skip


def update(**fields) -> AlertPayload:
    return AlertPayload(ticker="AAPL", action="update", **fields)


@pytest.mark.parametrize(
    ("fields", "position", "market", "current", "expected"),
    [
        # absolute prices; a long's stop below the market, its target above
        ({"stop_loss": StopLoss(stop_price=D(188))}, D(10), D(190), {"sl": D(185)}, {"sl": D(188)}),
        (
            {"take_profit": TakeProfit(limit_price=D(197))},
            D(10),
            D(190),
            {"tp": D(195), "sl": D(185)},
            {"tp": D(197)},
        ),
        # relative: from the alert's price (the close), else the market; rounded the safe way
        ({"stop_loss": StopLoss(percent=D(1)), "price": D("190.55")}, D(10), D(190), {}, {"sl": D("188.65")}),
        ({"stop_loss": StopLoss(amount=D(2))}, D(-5), D(190), {"sl": D(195)}, {"sl": D(192)}),
        ({"take_profit": TakeProfit(ticks=D(50))}, D(-5), D(190), {}, {"tp": D("189.50")}),
        # already there: nothing moves
        ({"stop_loss": StopLoss(stop_price=D(185))}, D(10), D(190), {"sl": D(185)}, {}),
    ],
)
def test_the_new_prices(fields, position, market, current, expected):
    assert dict(plan_update(update(**fields), position, AAPL, market, current).prices) == expected


@pytest.mark.parametrize(
    ("fields", "position", "market", "words"),
    [
        ({"stop_loss": StopLoss(stop_price=D(191))}, D(10), D(190), "the stop-loss 191.00 (stopLoss.stopPrice) is not below the market 190.00 for long 10 AAPL: it would trigger at once"),
        ({"stop_loss": StopLoss(stop_price=D(189))}, D(-10), D(190), "is not above the market 190.00 for short 10 AAPL"),
        ({"take_profit": TakeProfit(limit_price=D(189))}, D(10), D(190), "it would fill at once"),
        ({"stop_loss": StopLoss(percent=D(1))}, D(10), None, "IB gave no market price for AAPL and the alert no price"),
    ],
)  # fmt: skip
def test_a_move_to_the_wrong_side_of_the_market_is_refused(fields, position, market, words):
    with pytest.raises(PlanRejected) as info:
        plan_update(update(**fields), position, AAPL, market, {})
    assert words in str(info.value)


def test_an_update_while_flat_or_unchanged_says_so():
    flat = plan_update(update(stop_loss=StopLoss(stop_price=D(185))), D(0), AAPL, D(190), {})
    assert not flat.prices and flat.message == "update: no open position in AAPL; nothing to update"


def _exit_orders(sim, con_id: int | None = None) -> dict[str, dict]:
    return {o["orderRef"].rsplit(":", 1)[1]: o for o in sim.state()["orders"]
            if o["status"] in ("Submitted", "PreSubmitted") and o["orderRef"].rsplit(":", 1)[1][:2] in ("tp", "sl")}  # fmt: skip


def _ended(ctx, alert_id: str) -> dict:
    wait_until(lambda: alert_status(ctx, alert_id) in ("cancelled", "rejected", "failed"), timeout=20)
    return get_alert(ctx.sessions, alert_id)


@pytest.mark.e2e
def test_update_moves_the_working_exits_and_the_guard_keeps_the_new_prices(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    opened = add_alert(ctx, BRACKET)
    wait_until(lambda: alert_status(ctx, opened) == "filled", timeout=20)
    wait_until(lambda: set(_exit_orders(sim)) == {"tp", "sl"}, timeout=10)

    moved = _ended(
        ctx, add_alert(ctx, {"ticker": "AAPL", "action": "update", "stopLoss": {"stopPrice": 188}})
    )
    assert (moved["status"], moved["reason"]) == (
        "cancelled",
        "update: stop-loss 185.00 -> 188.00 (long 10 AAPL)",
    )
    exits = _exit_orders(sim)
    assert exits["sl"]["auxPrice"] == 188 and exits["sl"]["quantity"] == 10 and exits["tp"]["lmtPrice"] == 195
    assert not [o for o in sim.state()["orders"] if moved["id"] in o["orderRef"]]  # nothing traded

    both = _ended(ctx, add_alert(ctx, {"ticker": "AAPL", "action": "update", "price": 190,
                                       "takeProfit": {"percent": 3}, "stopLoss": {"amount": 1}}))  # fmt: skip
    assert both["reason"] == "update: take-profit 195.00 -> 195.70, stop-loss 188.00 -> 189.00 (long 10 AAPL)"

    wrong = _ended(
        ctx, add_alert(ctx, {"ticker": "AAPL", "action": "update", "stopLoss": {"stopPrice": 191}})
    )
    assert wrong["status"] == "rejected" and "it would trigger at once" in wrong["reason"]
    assert _exit_orders(sim)["sl"]["auxPrice"] == 189

    same = _ended(ctx, add_alert(ctx, {"ticker": "AAPL", "action": "update", "stopLoss": {"stopPrice": 189}}))
    assert (
        same["reason"]
        == "update: the exits of long 10 AAPL are already there (stop-loss 189.00); nothing to update"
    )

    # IB cancels the stop: the guard puts it back at the price the update set, not the bracket's
    sl = _exit_orders(sim)["sl"]
    sim.fault("cancel_working", clientId=sl["clientId"], orderId=sl["orderId"])
    wait_until(lambda: _exit_orders(sim).get("sl2", {}).get("auxPrice") == 189, timeout=15)

    exit_id = add_alert(ctx, {"ticker": "AAPL", "action": "exit"})
    wait_until(lambda: alert_status(ctx, exit_id) == "filled", timeout=20)
    flat = _ended(ctx, add_alert(ctx, {"ticker": "AAPL", "action": "update", "stopLoss": {"stopPrice": 180}}))
    assert (flat["status"], flat["reason"]) == (
        "cancelled",
        "update: no open position in AAPL; nothing to update",
    )
