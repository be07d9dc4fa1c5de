"""Order types, stop-loss types, timeInForce and extendedHours: the IB order each alert becomes
(pure logic: the planner, the IB order fields, the exit terms the guard keeps)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_async import Order
from ib_async.util import UNSET_DOUBLE
from worker_helpers import AAPL, ES

from core.payload import AlertPayload
from worker.decision.closing import plan_close
from worker.decision.exits import exit_leg, protection_orders, protection_prices
from worker.decision.model import Instrument
from worker.decision.order_types import ExitOrder, OrderRules, time_in_force
from worker.decision.planner import plan_bracket
from worker.decision.rounding import entry_stop_direction, on_grid, round_to_tick
from worker.errors import Refused
from worker.ib.exit_orders import exit_order_of, reprice_exit
from worker.ib.placement import order_for
from worker.recording.protection import ProtectionSpec


def _payload(doc: dict) -> AlertPayload:
    return AlertPayload.from_json({"ticker": "AAPL", "quantity": 10, **doc})


def _legs(payload: dict, inst: Instrument = AAPL, market: D | None = None, rules: OrderRules | None = None):
    plan = plan_bracket(_payload(payload), inst, market, rules=rules)
    return plan, {leg.leg: leg for leg in plan.legs}


def _ib(leg) -> dict:
    """The IB order fields the trading room sends for ``leg`` (worker/ib/placement.py order_for)."""
    order = order_for(leg, "tv2ib:T:x", "DU1")
    fields = {"orderType": order.orderType, "action": order.action, "tif": order.tif}
    for name in ("lmtPrice", "auxPrice", "trailingPercent", "trailStopPrice"):
        value = getattr(order, name)
        if value != UNSET_DOUBLE:
            fields[name] = value
    if order.outsideRth:
        fields["outsideRth"] = True
    return fields


# ------------------------------------------------------------------ entries


@pytest.mark.parametrize(
    ("payload", "ib", "reference"),
    [
        # a BUY stop (breakout) rounds UP, a SELL stop DOWN: never triggers before the price asked
        ({"action": "buy", "orderType": "stop", "stopPrice": 190.003},
         {"orderType": "STP", "action": "BUY", "tif": "DAY", "auxPrice": 190.01}, "190.01"),
        ({"action": "sell", "orderType": "stop", "stopPrice": 190.007},
         {"orderType": "STP", "action": "SELL", "tif": "DAY", "auxPrice": 190.0}, "190.00"),
        # stop-limit: the stop as above, the limit never pays more / receives less than asked
        ({"action": "buy", "orderType": "stop_limit", "stopPrice": 190.003, "limitPrice": 190.509},
         {"orderType": "STP LMT", "action": "BUY", "tif": "DAY", "auxPrice": 190.01, "lmtPrice": 190.5}, "190.01"),
        ({"action": "sell", "orderType": "stop_limit", "stopPrice": 189.997, "limitPrice": 189.491},
         {"orderType": "STP LMT", "action": "SELL", "tif": "DAY", "auxPrice": 189.99, "lmtPrice": 189.5}, "189.99"),
        # trailing entry: IB's auxPrice is the trail amount (on the tick grid, rounded down), the
        # initial trigger is the reference + the trail
        ({"action": "buy", "orderType": "trailing_stop", "trailAmount": 0.505, "price": 190},
         {"orderType": "TRAIL", "action": "BUY", "tif": "DAY", "auxPrice": 0.5, "trailStopPrice": 190.5}, "190.50"),
        ({"action": "sell", "orderType": "trailing_stop", "trailPercent": 1, "price": 190},
         {"orderType": "TRAIL", "action": "SELL", "tif": "DAY", "trailingPercent": 1.0, "trailStopPrice": 188.1},
         "188.10"),
    ],
)  # fmt: skip
def test_entry_types_become_these_ib_orders(payload, ib, reference):
    plan, legs = _legs(payload)
    assert _ib(legs["entry"]) == ib
    assert plan.reference_price == D(reference)


def test_trailing_entry_without_a_reference_lets_ib_start_the_trail():
    _, legs = _legs({"action": "buy", "orderType": "trailing_stop", "trailPercent": 2})
    assert _ib(legs["entry"]) == {"orderType": "TRAIL", "action": "BUY", "tif": "DAY", "trailingPercent": 2.0}
    with pytest.raises(Refused, match="no reference price"):
        _legs(
            {"action": "buy", "orderType": "trailing_stop", "trailPercent": 2, "takeProfit": {"percent": 1}}
        )


def test_a_stop_entrys_bracket_is_checked_against_its_own_trigger():
    """The alert's price (190) is where the market was; the entry happens at the stop (200)."""
    plan, legs = _legs({"action": "buy", "orderType": "stop", "stopPrice": 200, "price": 190,
                        "takeProfit": {"percent": 1}, "stopLoss": {"amount": 2}})  # fmt: skip
    assert (legs["tp"].limit_price, legs["sl"].stop_price) == (D("202.00"), D(198))
    assert plan.reference_source == "entry stop price"
    assert [leg.transmit for leg in plan.legs] == [False, False, True]
    assert {legs["tp"].tif, legs["sl"].tif} == {"GTC"}
    # a stop-loss above a buy stop's trigger would fire at once: refused with the numbers
    with pytest.raises(Refused, match="stop-loss 201.00 is not below the entry reference 200.00"):
        _legs({"action": "buy", "orderType": "stop", "stopPrice": 200, "stopLoss": {"stopPrice": 201}})
    with pytest.raises(Refused, match="take-profit 199.00 is not above the entry reference 200.00"):
        _legs({"action": "buy", "orderType": "stop_limit", "stopPrice": 200, "limitPrice": 200.5,
               "takeProfit": {"limitPrice": 199}})  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"action": "sell", "orderType": "stop", "stopPrice": 0.001}, "entry stop .* must be above 0"),
        ({"action": "buy", "orderType": "trailing_stop", "trailAmount": 0.004}, "below the contract's tick"),
        ({"action": "buy", "orderType": "trailing_stop", "trailAmount": 1, "extendedHours": True},
         "IB does not trigger trailing stops outside regular trading hours"),
        ({"action": "buy", "extendedHours": True}, "marketable limit .* needs a reference price"),
        ({"action": "buy", "orderType": "stop", "stopPrice": 200, "timeInForce": "opg"},
         "timeInForce opg .* market and limit orders; IB has no STP order on the open"),
        ({"action": "buy", "orderType": "trailing_stop", "trailPercent": 1, "timeInForce": "cls"},
         "IB has no TRAIL order on the close"),
        ({"action": "buy", "price": 190, "timeInForce": "cls", "extendedHours": True}, "drop extendedHours"),
    ],
)  # fmt: skip
def test_entry_refusals_say_why(payload, reason):
    with pytest.raises(Refused, match=reason):
        _legs(payload)


# ------------------------------------------------------------------ stop-losses


@pytest.mark.parametrize(
    ("payload", "ib"),
    [
        # trailing stop-loss: TRAIL with the trail; its initial stop from the reference
        ({"action": "buy", "price": 190, "stopLoss": {"type": "trailing_stop", "trailPercent": 2}},
         {"orderType": "TRAIL", "action": "SELL", "tif": "GTC", "trailingPercent": 2.0, "trailStopPrice": 186.2}),
        ({"action": "sell", "price": 190, "stopLoss": {"type": "trailing_stop", "trailAmount": 1.005}},
         {"orderType": "TRAIL", "action": "BUY", "tif": "GTC", "auxPrice": 1.0, "trailStopPrice": 191.0}),
        # stop-limit stop-loss: a relative stop with an ABSOLUTE limit at or beyond it
        ({"action": "buy", "price": 190, "stopLoss": {"type": "stop_limit", "percent": 1, "limitPrice": 187.5}},
         {"orderType": "STP LMT", "action": "SELL", "tif": "GTC", "auxPrice": 188.1, "lmtPrice": 187.5}),
        ({"action": "sell", "price": 190, "stopLoss": {"type": "stop_limit", "stopPrice": 192, "limitPrice": 192}},
         {"orderType": "STP LMT", "action": "BUY", "tif": "GTC", "auxPrice": 192.0, "lmtPrice": 192.0}),
        # extendedHours: a plain stop becomes STP LMT 10 ticks (the default) beyond the stop
        ({"action": "buy", "price": 190, "extendedHours": True, "stopLoss": {"stopPrice": 185}},
         {"orderType": "STP LMT", "action": "SELL", "tif": "GTC", "auxPrice": 185.0, "lmtPrice": 184.9,
          "outsideRth": True}),
        ({"action": "sell", "price": 190, "extendedHours": True, "stopLoss": {"stopPrice": 195}},
         {"orderType": "STP LMT", "action": "BUY", "tif": "GTC", "auxPrice": 195.0, "lmtPrice": 195.1,
          "outsideRth": True}),
    ],
)  # fmt: skip
def test_stop_loss_types_become_these_ib_orders(payload, ib):
    _, legs = _legs(payload)
    assert _ib(legs["sl"]) == ib


def test_extended_hours_entries_and_the_offset_setting():
    plan, legs = _legs(
        {"action": "buy", "price": 190, "extendedHours": True, "takeProfit": {"limitPrice": 195}}
    )
    assert _ib(legs["entry"]) == {"orderType": "LMT", "action": "BUY", "tif": "DAY", "lmtPrice": 190.1,
                                  "outsideRth": True}  # fmt: skip
    assert _ib(legs["tp"])["outsideRth"] is True
    assert any("marketable LMT 190.10" in note and "outside regular hours" in note for note in plan.notes)
    _, legs = _legs({"action": "sell", "extendedHours": True}, market=D(190))
    assert _ib(legs["entry"])["lmtPrice"] == 189.9
    # EXTENDED_HOURS_STOP_LIMIT_TICKS=4 on a 0.25 tick: one point
    _, legs = _legs({"action": "buy", "orderType": "stop", "stopPrice": 5000, "extendedHours": True},
                    ES, rules=OrderRules(4))  # fmt: skip
    assert _ib(legs["entry"]) == {"orderType": "STP LMT", "action": "BUY", "tif": "DAY", "auxPrice": 5000.0,
                                  "lmtPrice": 5001.0, "outsideRth": True}  # fmt: skip
    _, legs = _legs({"action": "sell", "orderType": "stop", "stopPrice": 180, "extendedHours": True})
    assert (_ib(legs["entry"])["orderType"], _ib(legs["entry"])["lmtPrice"]) == ("STP LMT", 179.9)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"action": "buy", "price": 190, "stopLoss": {"type": "stop_limit", "percent": 1, "limitPrice": 189}},
         "stop-loss limit 189.00 is above its stop 188.10"),
        ({"action": "sell", "price": 190, "stopLoss": {"type": "stop_limit", "stopPrice": 192, "limitPrice": 191}},
         "stop-loss limit 191.00 is below its stop 192"),
        ({"action": "buy", "price": 190, "extendedHours": True,
          "stopLoss": {"type": "trailing_stop", "trailPercent": 1}}, "trailing_stop stop-loss with extendedHours"),
        ({"action": "buy", "stopLoss": {"type": "trailing_stop", "trailPercent": 1}}, "no reference price"),
        ({"action": "buy", "price": 0.5, "stopLoss": {"type": "trailing_stop", "trailAmount": 0.5}},
         "must be above 0"),
    ],
)  # fmt: skip
def test_stop_loss_refusals_say_why(payload, reason):
    with pytest.raises(Refused, match=reason):
        _legs(payload)


# ------------------------------------------------------------------ timeInForce


@pytest.mark.parametrize(
    ("tif", "order_type", "expected"),
    [
        (None, "MKT", ("MKT", "DAY")),
        ("day", "LMT", ("LMT", "DAY")),
        ("gtc", "STP", ("STP", "GTC")),
        ("ioc", "LMT", ("LMT", "IOC")),
        ("fok", "MKT", ("MKT", "FOK")),
        ("opg", "MKT", ("MKT", "OPG")),  # market-on-open
        ("opg", "LMT", ("LMT", "OPG")),  # limit-on-open
        ("cls", "MKT", ("MOC", "DAY")),  # IB has no close TIF: the MOC order type
        ("cls", "LMT", ("LOC", "DAY")),
    ],
)
def test_time_in_force_mapping(tif, order_type, expected):
    assert time_in_force(tif, order_type, extended_hours=False) == expected


def test_time_in_force_on_a_bracket_leaves_the_children_gtc():
    plan, legs = _legs({"action": "buy", "orderType": "limit", "limitPrice": 190, "timeInForce": "cls",
                        "takeProfit": {"amount": 5}, "stopLoss": {"amount": 5}})  # fmt: skip
    assert _ib(legs["entry"]) == {"orderType": "LOC", "action": "BUY", "tif": "DAY", "lmtPrice": 190.0}
    assert (legs["tp"].tif, legs["sl"].tif) == ("GTC", "GTC")
    assert any("sent as LOC" in note for note in plan.notes)
    _, legs = _legs({"action": "buy", "timeInForce": "opg"})
    assert _ib(legs["entry"]) == {"orderType": "MKT", "action": "BUY", "tif": "OPG"}


def test_closing_orders_follow_tif_and_are_never_refused_for_it():
    notes: list[str] = []
    leg = plan_close(AAPL, "SELL", D(10), _payload({"action": "exit", "timeInForce": "cls"}), leg="exit")
    assert (leg.order_type, leg.tif) == ("MOC", "DAY")
    leg = plan_close(AAPL, "SELL", D(10), _payload({"action": "exit", "extendedHours": True}), leg="exit",
                     reference=D(190), notes=notes)  # fmt: skip
    assert (leg.order_type, leg.limit_price, leg.outside_rth) == ("LMT", D("189.90"), True)
    leg = plan_close(AAPL, "BUY", D(10), _payload({"action": "exit", "extendedHours": True}), notes=notes)
    assert (leg.order_type, leg.outside_rth) == ("MKT", True)  # no reference: an exit still goes
    assert "no reference price" in notes[-1]
    leg = plan_close(AAPL, "SELL", D(10), _payload({"action": "exit", "timeInForce": "opg", "extendedHours": True,
                                                    "price": 190}), notes=notes)  # fmt: skip
    assert (leg.order_type, leg.tif) == ("LMT", "DAY") and "not applied" in notes[-1]
    leg = plan_close(AAPL, "SELL", D(10), _payload({"action": "sell", "quantity": 20, "timeInForce": "cls"}),
                     notes=notes, reversal=True)  # fmt: skip
    assert (leg.order_type, leg.tif) == ("MKT", "DAY") and "must fill before the opening part" in notes[-1]


# ------------------------------------------------------------------ the terms the guard keeps


def test_exit_terms_go_into_the_spec_and_old_specs_still_load():
    _, legs = _legs({"action": "buy", "price": 190, "takeProfit": {"amount": 5},
                     "stopLoss": {"type": "trailing_stop", "trailPercent": 2}})  # fmt: skip
    orders = protection_orders(list(legs.values()))
    assert orders["sl"] == ExitOrder("TRAIL", trail_percent=D(2))
    assert protection_prices(list(legs.values())) == {"tp": D("195.00"), "sl": D("186.20")}
    spec = ProtectionSpec("DU1", 265598, "A1", 1, {"sl": D("186.20")}, "AAPL", orders={"sl": orders["sl"]})
    assert ProtectionSpec.from_json(spec.to_json()) == spec
    old = {"account": "DU1", "con_id": 1, "alert_id": "A0", "side": 1, "prices": {"tp": "195", "sl": "185"}}
    loaded = ProtectionSpec.from_json(old)
    assert (loaded.order_for("sl").order_type, loaded.order_for("tp").order_type) == ("STP", "LMT")
    assert "orders" not in loaded.to_json()  # a plain spec is written as before


def test_re_attached_exits_keep_their_kind():
    trail = exit_leg("sl", "SELL", D(4), D("186.2"), ExitOrder("TRAIL", trail_amount=D("1.5")))
    # no initial stop: IB starts the trail from the market when the re-attached order arrives
    assert _ib(trail) == {"orderType": "TRAIL", "action": "SELL", "tif": "GTC", "auxPrice": 1.5}
    stop_limit = exit_leg(
        "sl", "BUY", D(4), D(195), ExitOrder("STP LMT", limit_price=D("195.1"), outside_rth=True)
    )
    assert _ib(stop_limit) == {"orderType": "STP LMT", "action": "BUY", "tif": "GTC", "auxPrice": 195.0,
                               "lmtPrice": 195.1, "outsideRth": True}  # fmt: skip
    assert _ib(exit_leg("sl", "SELL", D(4), D(185), None))["orderType"] == "STP"


def _order(**fields) -> Order:
    return Order(action="SELL", totalQuantity=10, **fields)


def test_a_modification_keeps_the_order_type():
    trail = _order(orderType="TRAIL", trailingPercent=2.0, trailStopPrice=186.2)
    reprice_exit(trail, "sl", D(186), ExitOrder("TRAIL", trail_percent=D(2)))
    # same trail: left to IB, including where it has ratcheted the stop since
    assert (trail.orderType, trail.trailingPercent, trail.trailStopPrice) == ("TRAIL", 2.0, UNSET_DOUBLE)
    reprice_exit(trail, "sl", D(187), ExitOrder("TRAIL", trail_amount=D(1)))  # another trail: re-trailed
    assert (trail.auxPrice, trail.trailingPercent, trail.trailStopPrice) == (1.0, UNSET_DOUBLE, 187.0)
    assert exit_order_of(trail) == ExitOrder("TRAIL", trail_amount=D("1.0"))
    stop_limit = _order(orderType="STP LMT", auxPrice=185.0, lmtPrice=184.9)
    reprice_exit(stop_limit, "sl", D(186), None)  # no terms: the limit moves with the stop
    assert (stop_limit.auxPrice, stop_limit.lmtPrice) == (186.0, pytest.approx(185.9))
    reprice_exit(stop_limit, "sl", D(187), ExitOrder("STP LMT", limit_price=D("186.5")))
    assert (stop_limit.orderType, stop_limit.auxPrice, stop_limit.lmtPrice) == ("STP LMT", 187.0, 186.5)


@given(
    price=st.decimals(min_value=D("0.01"), max_value=D(100000), places=5),
    tick=st.sampled_from([D("0.01"), D("0.25"), D("0.00005"), D("0.5")]),
    action=st.sampled_from(["BUY", "SELL"]),
)
def test_entry_stops_never_trigger_before_the_price_asked(price, tick, action):
    stop = round_to_tick(price, tick, entry_stop_direction(action))
    assert on_grid(stop, tick) and abs(stop - price) < tick
    assert (stop >= price) if action == "BUY" else (stop <= price)


def test_re_pricing_a_reduced_positions_exits_ignores_the_entry_rules():
    """A reduce (``sell 4`` of a long 10) carrying a new stop-loss: the closing order is the alert's
    order; re-pricing the exits of the 6 left must not be refused for entry-only rules (an auction
    TIF outside regular hours) nor take the entry's conversions."""
    payload = _payload({"action": "sell", "quantity": 4, "price": 190, "extendedHours": True,
                        "timeInForce": "cls", "stopLoss": {"stopPrice": 185}})  # fmt: skip
    with pytest.raises(Refused, match="drop extendedHours"):
        plan_bracket(payload, AAPL, side="BUY", quantity=D(6))
    plan = plan_bracket(payload, AAPL, side="BUY", quantity=D(6), exits_only=True)
    sl = {leg.leg: leg for leg in plan.legs}["sl"]
    assert (sl.order_type, sl.stop_price, sl.limit_price, sl.outside_rth) == (
        "STP LMT",
        D(185),
        D("184.90"),
        True,
    )
