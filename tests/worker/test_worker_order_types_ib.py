"""Order types through a real worker thread and ibsim over TCP: what IB holds after each alert.

A trader checks the orders at IB: their type, trigger and limit, trail, TIF, outsideRth, size left,
and that the position protocol and the guard never turn a trailing stop into a plain one.
"""

from __future__ import annotations

from decimal import Decimal

from support import wait_until
from worker_helpers import add_alert, alert_status

from core.services import get_alert
from worker.decision.positions import WorkingExit, exits_fit

WORKING = ("PreSubmitted", "Submitted")


def _orders(sim, alert_id: str) -> dict[str, dict]:
    """The alert's orders at ibsim by leg (``entry``, ``tp``, ``sl``, ``sl2``...)."""
    return {
        o["orderRef"].rsplit(":", 1)[1]: o for o in sim.state()["orders"] if f":{alert_id}:" in o["orderRef"]
    }


def _working(sim, symbol: str) -> dict[str, dict]:
    """tv2ib's working orders on ``symbol`` by leg."""
    return {
        o["orderRef"].rsplit(":", 1)[1]: o
        for o in sim.state()["orders"]
        if o["symbol"] == symbol and o["status"] in WORKING and o["orderRef"].startswith("tv2ib:")
    }


def _submitted(sim, symbol: str) -> set[str]:
    """The legs working at IB (a bracket child under a resting entry is PreSubmitted: dormant)."""
    return {leg for leg, o in _working(sim, symbol).items() if o["status"] == "Submitted"}


def _position(sim, symbol: str) -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == symbol)


def _invariant_7(sim, symbol: str) -> str | None:
    exits = [
        WorkingExit(o["orderRef"], leg[:2], o["action"], Decimal(str(o["remaining"])))  # type: ignore[arg-type]
        for leg, o in _working(sim, symbol).items()
        if leg[:2] in ("tp", "sl") and o["status"] == "Submitted"
    ]
    return exits_fit(Decimal(str(_position(sim, symbol))), exits)


def test_stop_entry_rests_as_stp_with_its_bracket_and_an_opg_entry(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "orderType": "stop",
                               "stopPrice": 192, "price": 190, "takeProfit": {"amount": 5},
                               "stopLoss": {"amount": 3}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, alert_id) == "submitted")
    wait_until(lambda: len(_orders(sim, alert_id)) == 3)
    legs = _orders(sim, alert_id)
    entry, tp, sl = legs["entry"], legs["tp"], legs["sl"]
    assert (entry["orderType"], entry["action"], entry["auxPrice"], entry["status"]) == ("STP", "BUY", 192.0,
                                                                                          "Submitted")  # fmt: skip
    # the children are priced from the stop (192), not from the alert's 190, and wait for it
    assert (tp["orderType"], tp["lmtPrice"], tp["parentId"], tp["tif"]) == (
        "LMT",
        197.0,
        entry["orderId"],
        "GTC",
    )
    assert (sl["orderType"], sl["auxPrice"], sl["parentId"], sl["status"]) == ("STP", 189.0, entry["orderId"],
                                                                               "PreSubmitted")  # fmt: skip
    sim.set_price("AAPL", 192.5)  # the breakout: the entry triggers and fills, its children work
    wait_until(lambda: alert_status(ctx, alert_id) == "filled")
    wait_until(lambda: _submitted(sim, "AAPL") == {"tp", "sl"})
    assert _position(sim, "AAPL") == 10 and _invariant_7(sim, "AAPL") is None

    # timeInForce opg: a market-on-open order (IB's OPG TIF on a MKT)
    sim.set_price("MSFT", 420.0)
    opg = add_alert(ctx, {"ticker": "MSFT", "action": "buy", "quantity": 3, "timeInForce": "opg"})
    wait_until(lambda: "entry" in _orders(sim, opg))
    assert (_orders(sim, opg)["entry"]["orderType"], _orders(sim, opg)["entry"]["tif"]) == ("MKT", "OPG")


def test_trailing_stop_loss_stays_a_trail_through_a_reduce_and_a_reattach(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190,
                               "takeProfit": {"amount": 10},
                               "stopLoss": {"type": "trailing_stop", "trailAmount": 2}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, alert_id) == "filled")
    sl = wait_until(lambda: _working(sim, "AAPL").get("sl"))
    assert (sl["orderType"], sl["auxPrice"], sl["trailStopPrice"], sl["remaining"]) == (
        "TRAIL",
        2.0,
        188.0,
        10,
    )
    sim.set_price("AAPL", 195.0)  # the trail ratchets up at IB
    wait_until(lambda: _working(sim, "AAPL")["sl"]["trailStopPrice"] == 193.0)

    reduce = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 4})
    wait_until(lambda: alert_status(ctx, reduce) == "filled", timeout=20)
    wait_until(lambda: _position(sim, "AAPL") == 6)
    sl = _working(sim, "AAPL")["sl"]
    # the same order, resized: still a TRAIL with its trail, its ratcheted stop kept (not 188 again)
    assert (sl["orderType"], sl["auxPrice"], sl["trailStopPrice"], sl["remaining"]) == (
        "TRAIL",
        2.0,
        193.0,
        6,
    )
    assert _invariant_7(sim, "AAPL") is None

    # IB cancels the stop: the guard re-attaches it once, as a TRAIL of the same trail for the 6 held
    server = sim.sim
    order = server.engine.orders[(sl["clientId"], sl["orderId"])]
    sim.call(lambda: server.apply(server.engine._cancel(order, "Cancelled by IB")))
    # (named after the alert whose plan the spec now is: the reduce)
    sl2 = wait_until(lambda: (lambda o: o if o and o["orderRef"] != sl["orderRef"] else None)(
        _working(sim, "AAPL").get("sl")))  # fmt: skip
    assert sl2["orderRef"] == f"tv2ib:{reduce}:sl"
    assert (sl2["orderType"], sl2["auxPrice"], sl2["remaining"], sl2["tif"]) == ("TRAIL", 2.0, 6, "GTC")
    assert sl2["trailStopPrice"] == 193.0  # IB started the trail from the market (195 - 2)
    assert _invariant_7(sim, "AAPL") is None
    sim.set_price("AAPL", 192.5)  # through the trail: the position is closed, the target goes with it
    wait_until(lambda: _position(sim, "AAPL") == 0)
    wait_until(lambda: not _working(sim, "AAPL"))


def test_stop_limit_stop_loss_and_an_extended_hours_stop(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    stop_limit = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190,
                                 "stopLoss": {"type": "stop_limit", "percent": 1, "limitPrice": 187.5}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, stop_limit) == "filled")
    sl = wait_until(lambda: _working(sim, "AAPL").get("sl"))
    assert (sl["orderType"], sl["action"], sl["auxPrice"], sl["lmtPrice"], sl["remaining"]) == (
        "STP LMT", "SELL", 188.1, 187.5, 10
    )  # fmt: skip

    # extendedHours: the market entry is a marketable limit, the stop a stop-limit 10 ticks
    # beyond it (EXTENDED_HOURS_STOP_LIMIT_TICKS' default), both outside regular hours
    sim.set_price("MSFT", 420.0)
    ext = add_alert(ctx, {"ticker": "MSFT", "action": "sell", "quantity": 5, "price": 420,
                          "extendedHours": True, "stopLoss": {"stopPrice": 425}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, ext) == "filled")
    legs = _orders(sim, ext)
    assert (legs["entry"]["orderType"], legs["entry"]["lmtPrice"], legs["entry"]["outsideRth"]) == (
        "LMT", 419.9, True
    )  # fmt: skip
    sl = wait_until(lambda: _working(sim, "MSFT").get("sl"))
    assert (sl["orderType"], sl["action"], sl["auxPrice"], sl["lmtPrice"], sl["outsideRth"]) == (
        "STP LMT", "BUY", 425.0, 425.1, True
    )  # fmt: skip
    notes = get_alert(ctx.sessions, ext)["plan"]["notes"]
    assert any("IB does not trigger plain stops outside regular hours" in note for note in notes)


def test_an_add_that_changes_the_stop_type_replaces_the_stop_never_doubles_it(sim, running_worker):
    """IB modifies prices, not kinds: an ``add`` whose stop-loss is a trailing stop cancels the
    position's plain stop (IB's confirmation awaited), then places the TRAIL; the guard grows it to
    the whole position once the add fills. At no point two stops."""
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    first = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190,
                            "takeProfit": {"amount": 10}, "stopLoss": {"amount": 3}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, first) == "filled")
    wait_until(lambda: _submitted(sim, "AAPL") == {"tp", "sl"})
    add = add_alert(ctx, {"ticker": "AAPL", "action": "add", "quantity": 5, "price": 190,
                          "stopLoss": {"type": "trailing_stop", "trailPercent": 1}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, add) == "filled", timeout=20)
    wait_until(lambda: _position(sim, "AAPL") == 15)
    wait_until(lambda: {o["remaining"] for o in _working(sim, "AAPL").values()} == {15})
    stops = [o for o in sim.state()["orders"] if o["orderRef"].rsplit(":", 1)[1].startswith("sl")]
    assert [(o["orderRef"], o["orderType"], o["status"]) for o in stops] == [
        (f"tv2ib:{first}:sl", "STP", "Cancelled"),
        (f"tv2ib:{add}:sl", "TRAIL", "Submitted"),
    ]
    assert (stops[1]["trailingPercent"], stops[1]["remaining"]) == (1.0, 15)
    assert _invariant_7(sim, "AAPL") is None
