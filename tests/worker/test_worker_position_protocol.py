"""The worker's position protocol through a real worker thread and ibsim (issue 10).

What a trader checks at IB (ibsim's state): the position, tv2ib's working exits (side, type, size
left, price), each orderRef sent once; and the alert's final state and reason.
"""

from __future__ import annotations

import time
from collections import Counter

from support import wait_until
from worker_helpers import add_alert, alert_ends, alert_status

from core.services import get_alert

BRACKET = {
    "ticker": "AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190,
    "takeProfit": {"amount": 5}, "stopLoss": {"amount": 3},
}  # fmt: skip
WORKING = ("PreSubmitted", "Submitted")


def _position(sim, symbol="AAPL") -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == symbol)


def _working(sim, symbol="AAPL") -> list[tuple[str, str, str, float, float | None]]:
    """(leg, side, type, size left, price) of tv2ib's working orders on the symbol, sorted."""
    rows = []
    for o in sim.state()["orders"]:
        if o["symbol"] == symbol and o["status"] in WORKING and o["orderRef"].startswith("tv2ib:"):
            price = o["lmtPrice"] if o["orderType"] == "LMT" else o["auxPrice"]
            rows.append((o["orderRef"].rsplit(":", 1)[1], o["action"], o["orderType"], o["remaining"], price))
    return sorted(rows)


def _refs_sent_once(sim) -> None:
    counts = Counter(o["orderRef"] for o in sim.state()["orders"] if o["transmit"])
    assert not [ref for ref, n in counts.items() if n > 1], counts


def _long_10(sim, ctx) -> str:
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, BRACKET)
    wait_until(lambda: alert_status(ctx, alert_id) == "filled")
    wait_until(lambda: _position(sim) == 10 and len(_working(sim)) == 2)
    assert _working(sim) == [("sl", "SELL", "STP", 10, 187.0), ("tp", "SELL", "LMT", 10, 195.0)]
    return alert_id


def _long_10_and_a_resting_add(sim, ctx) -> str:
    """Long 10 with its exits, and an add of 5 resting at a limit of 180 (submitted): its id."""
    _long_10(sim, ctx)
    resting = add_alert(ctx, {"ticker": "AAPL", "action": "add", "quantity": 5, "orderType": "limit",
                              "limitPrice": 180})  # fmt: skip
    wait_until(lambda: alert_status(ctx, resting) == "submitted")
    return resting


def _ends_unsent(sim, ctx, alert: dict, status: str) -> str:
    """Send ``alert`` and wait for its final ``status``: nothing of it reached IB. Its reason."""
    alert_id = alert_ends(ctx, alert, status)
    assert not [o for o in sim.state()["orders"] if alert_id in o["orderRef"]]
    return get_alert(ctx.sessions, alert_id)["reason"]


def test_sell_twice_the_position_reverses_with_one_protective_set(sim, running_worker):
    ctx = running_worker.ctx
    long_id = _long_10(sim, ctx)
    rev = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 20, "price": 190,
                          "takeProfit": {"amount": 4}, "stopLoss": {"amount": 2}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, rev) == "filled", timeout=20)
    wait_until(lambda: _position(sim) == -10 and len(_working(sim)) == 2)
    # the long's exits are gone; the short has exactly one BUY stop and one BUY target of 10
    assert _working(sim) == [("sl", "BUY", "STP", 10, 192.0), ("tp", "BUY", "LMT", 10, 186.0)]
    state = sim.state()["orders"]
    old = {o["orderRef"].rsplit(":", 1)[1]: o["status"] for o in state if long_id in o["orderRef"]}
    assert old == {"entry": "Filled", "tp": "Cancelled", "sl": "Cancelled"}
    ours = {o["orderRef"].rsplit(":", 1)[1]: o for o in state if rev in o["orderRef"]}
    assert (ours["close"]["action"], ours["close"]["quantity"], ours["close"]["status"]) == (
        "SELL",
        10,
        "Filled",
    )
    assert (ours["entry"]["action"], ours["entry"]["quantity"], ours["entry"]["status"]) == (
        "SELL",
        10,
        "Filled",
    )
    _refs_sent_once(sim)
    doc = get_alert(ctx.sessions, rev)
    assert doc["plan"]["position"]["kind"] == "reverse"
    assert (doc["plan"]["position"]["before"], doc["plan"]["position"]["target"]) == ("10", "-10")
    assert [leg["leg"] for leg in doc["plan"]["legs"]] == ["close", "entry", "tp", "sl"]


def test_reversal_without_exits_leaves_none_working(sim, running_worker):
    ctx = running_worker.ctx
    _long_10(sim, ctx)
    rev = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 20, "price": 190})
    wait_until(lambda: alert_status(ctx, rev) == "filled", timeout=20)
    wait_until(lambda: _position(sim) == -10)
    assert _working(sim) == []


def test_buy_while_long_is_rejected_and_nothing_is_sent(sim, running_worker):
    ctx = running_worker.ctx
    _long_10(sim, ctx)
    again = {"ticker": "AAPL", "action": "buy", "quantity": 5, "price": 190}
    assert "already long 10" in _ends_unsent(sim, ctx, again, "rejected")
    assert _position(sim) == 10


def test_position_size_already_held_is_cancelled_not_failed(sim, running_worker):
    ctx = running_worker.ctx
    _long_10(sim, ctx)
    held = {"ticker": "AAPL", "action": "buy", "quantity": 1, "positionSize": 10}
    assert "already at target +10" in _ends_unsent(sim, ctx, held, "cancelled")
    assert _working(sim) == [("sl", "SELL", "STP", 10, 187.0), ("tp", "SELL", "LMT", 10, 195.0)]


def test_reduce_shrinks_the_same_exits_before_the_close(sim, running_worker):
    ctx = running_worker.ctx
    long_id = _long_10(sim, ctx)
    reduce = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 4})
    wait_until(lambda: alert_status(ctx, reduce) == "filled", timeout=20)
    wait_until(lambda: _position(sim) == 6)
    assert _working(sim) == [("sl", "SELL", "STP", 6, 187.0), ("tp", "SELL", "LMT", 6, 195.0)]
    # the same orders, modified: no new exit was placed
    assert {o["orderRef"] for o in sim.state()["orders"] if o["status"] in WORKING} == {
        f"tv2ib:{long_id}:tp",
        f"tv2ib:{long_id}:sl",
    }


def test_partial_exit_by_percent_of_position(sim, running_worker):
    ctx = running_worker.ctx
    _long_10(sim, ctx)
    half = add_alert(
        ctx, {"ticker": "AAPL", "action": "exit", "quantity": 50, "quantityType": "percent_of_position"}
    )
    wait_until(lambda: alert_status(ctx, half) == "filled", timeout=20)
    wait_until(lambda: _position(sim) == 5)
    assert _working(sim) == [("sl", "SELL", "STP", 5, 187.0), ("tp", "SELL", "LMT", 5, 195.0)]
    exit_leg = [o for o in sim.state()["orders"] if o["orderRef"] == f"tv2ib:{half}:exit"]
    assert len(exit_leg) == 1 and exit_leg[0]["quantity"] == 5


def test_refused_reversal_puts_the_old_exits_back(sim, running_worker):
    ctx = running_worker.ctx
    _long_10(sim, ctx)
    sim.fault("reject_next", reason="Order rejected - reason:Trading halted", code=201)
    rev = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 20, "price": 190,
                          "stopLoss": {"amount": 2}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, rev) == "rejected", timeout=20)
    reason = get_alert(ctx.sessions, rev)["reason"]
    assert "IB refused the close order" in reason and "not reversed" in reason, reason
    assert "position left long 10" in reason, reason
    assert _position(sim) == 10
    # the long is protected again, at its old prices, for its whole size; nothing on the other side
    wait_until(
        lambda: [w[1:] for w in _working(sim)] == [("SELL", "STP", 10, 187.0), ("SELL", "LMT", 10, 195.0)]
    )
    assert not [o for o in sim.state()["orders"] if o["orderRef"] == f"tv2ib:{rev}:entry"]


def test_refused_short_after_the_close_leaves_the_account_flat(sim, running_worker):
    ctx = running_worker.ctx
    _long_10(sim, ctx)
    sim.set_cash_account(True)  # short sales refused: the close goes through, the open does not
    rev = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 20, "price": 190,
                          "stopLoss": {"amount": 2}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, rev) == "rejected", timeout=20)
    assert "the position is flat, not reversed" in get_alert(ctx.sessions, rev)["reason"]
    assert _position(sim) == 0
    assert _working(sim) == []


def test_exit_while_flat_places_nothing(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    assert "no open position" in _ends_unsent(sim, ctx, {"ticker": "AAPL", "action": "exit"}, "cancelled")


def test_reversal_cancels_the_resting_entry_first(sim, running_worker):
    ctx = running_worker.ctx
    resting = _long_10_and_a_resting_add(sim, ctx)
    rev = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 20, "price": 190})
    wait_until(lambda: alert_status(ctx, rev) == "filled", timeout=20)
    wait_until(lambda: alert_status(ctx, resting) == "cancelled")
    assert _position(sim) == -10
    assert _working(sim) == []


def test_cancel_cancels_entries_and_keeps_the_exits(sim, running_worker):
    ctx = running_worker.ctx
    resting = _long_10_and_a_resting_add(sim, ctx)
    cancel = add_alert(ctx, {"ticker": "AAPL", "action": "cancel"})
    wait_until(lambda: alert_status(ctx, cancel) == "cancelled")
    wait_until(lambda: alert_status(ctx, resting) == "cancelled")
    assert _working(sim) == [("sl", "SELL", "STP", 10, 187.0), ("tp", "SELL", "LMT", 10, 195.0)]
    assert _position(sim) == 10


def test_add_grows_the_position_and_its_exits_cover_it_once(sim, running_worker):
    ctx = running_worker.ctx
    _long_10(sim, ctx)
    add = add_alert(ctx, {"ticker": "AAPL", "action": "add", "quantity": 5, "price": 190})
    wait_until(lambda: alert_status(ctx, add) == "filled", timeout=20)
    wait_until(lambda: _position(sim) == 15)
    # the add is a plain entry (no children); the one protective set grows to the whole position
    assert [o["orderRef"].rsplit(":", 1)[1] for o in sim.state()["orders"] if add in o["orderRef"]] == [
        "entry"
    ]
    wait_until(lambda: _working(sim) == [("sl", "SELL", "STP", 15, 187.0), ("tp", "SELL", "LMT", 15, 195.0)],
             timeout=15)  # fmt: skip


def test_drift_from_the_strategys_previous_position_alarms_and_still_trades(sim, running_worker):
    ctx = running_worker.ctx
    _long_10(sim, ctx)
    rev = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 20, "price": 190,
                          "prevMarketPosition": "long", "prevMarketPositionSize": 5})  # fmt: skip
    wait_until(lambda: alert_status(ctx, rev) == "filled", timeout=20)
    wait_until(lambda: _position(sim) == -10)
    messages = [e["message"] for e in get_alert(ctx.sessions, rev)["events"]]
    assert any(m.startswith("position drift:") for m in messages), messages


def _exits_exceeding_the_position(sim) -> list[str]:
    """One sample of invariant 7 at IB: what is wrong (empty when the exits fit the position)."""
    state = sim.state()
    position = sum(p["position"] for p in state["positions"] if p["symbol"] == "AAPL")
    wrong = []
    for role in ("tp", "sl"):
        working = [o for o in state["orders"] if o["symbol"] == "AAPL" and o["status"] in WORKING
                   and o["orderRef"].startswith("tv2ib:") and o["orderRef"].endswith(f":{role}")]  # fmt: skip
        size = sum(o["remaining"] for o in working)
        if size > abs(position):
            wrong.append(f"{role} {size} working with the position at {position}")
    return wrong


def test_reduce_with_a_marketable_take_profit_never_leaves_an_exit_beyond_the_position(sim, running_worker):
    """A reduce that re-prices its exits with a take-profit through the market (the alert's price
    is 188, the market 190): the close goes out first, sized from the position as it is, and the
    exits are re-priced after it, the stop before the target. The target's fill then trims the
    stop at IB and nothing restates it: sampled all along, no exit ever exceeds the position, and
    the position ends flat (the close's 4 and the target's 6), never short, with no exit working."""
    ctx = running_worker.ctx
    _long_10(sim, ctx)
    reduce = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 4, "price": 188,
                             "takeProfit": {"limitPrice": 189}, "stopLoss": {"stopPrice": 185}})  # fmt: skip
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
        alert_status(ctx, reduce) == "filled" and _position(sim) == 0 and not _working(sim)
    ):
        seen += _exits_exceeding_the_position(sim)
        time.sleep(0.002)
    assert seen == []
    assert (_position(sim), _working(sim)) == (0, [])
    close = [o for o in sim.state()["orders"] if o["orderRef"].startswith(f"tv2ib:{reduce}:")]
    assert [(o["action"], o["quantity"], o["status"]) for o in close] == [("SELL", 4, "Filled")]
    _refs_sent_once(sim)
