"""Planning brackets, exits and refusals (pure logic)."""

from decimal import Decimal as D

import pytest
from worker_helpers import AAPL, ES, EURUSD

from core.payload import AlertPayload
from worker.decision.closing import plan_close, plan_exit
from worker.decision.exits import protection_prices
from worker.decision.intent import alert_kind, intent_of, needs_market_reference
from worker.decision.model import Leg, PlanRejected
from worker.decision.planner import plan_bracket
from worker.decision.positions import PositionIntent
from worker.errors import Refused


def _payload(doc):
    """An alert as the worker loads it (numbers as JSON numbers, like a stored row)."""
    return AlertPayload.from_json({"ticker": "AAPL", **doc})


def _legs(plan):
    return {leg.leg: leg for leg in plan.legs}


LONG_PERCENT = {"action": "buy", "quantity": 10, "orderType": "market", "price": 190.003,
                "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5}}  # fmt: skip


# the alert, the contract, each leg's (action, price): the entry's and take-profit's limit, the
# stop-loss's stop price; every price rounds onto the contract's grid away from a worse fill
BRACKETS = [
    # 190.003 * 1.01 = 191.90303 -> SELL limit rounds up; 190.003 * 0.995 = 189.052985 -> SELL stop rounds up
    (LONG_PERCENT, AAPL, {"entry": ("BUY", None), "tp": ("SELL", "191.91"), "sl": ("SELL", "189.06")}),
    # SELL limit rounds up (never sell cheaper): 5000.25; the take-profit 8 ticks below;
    # 5000.25 + 3.1 = 5003.35 -> BUY stop rounds down (toward the entry): 5003.25
    ({"action": "sell", "quantity": 2, "orderType": "limit", "limitPrice": 5000.1, "takeProfit": {"ticks": 8},
      "stopLoss": {"amount": 3.1}},
     ES, {"entry": ("SELL", "5000.25"), "tp": ("BUY", "4998.25"), "sl": ("BUY", "5003.25")}),
    # forex, absolute prices: BUY limit down; SELL limit up; SELL stop up (toward the entry)
    ({"action": "buy", "quantity": 20000, "orderType": "limit", "limitPrice": 1.080012,
      "takeProfit": {"limitPrice": 1.090012}, "stopLoss": {"stopPrice": 1.070012}},
     EURUSD, {"entry": ("BUY", "1.08000"), "tp": ("SELL", "1.09005"), "sl": ("SELL", "1.07005")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "contract", "expected"), BRACKETS, ids=["long-percent", "short-ticks", "forex"]
)
def test_bracket_sides_and_prices_on_the_grid(payload, contract, expected):
    legs = _legs(plan_bracket(_payload(payload), contract))
    got = {
        name: (leg.action, leg.stop_price if name == "sl" else leg.limit_price) for name, leg in legs.items()
    }
    assert got == {name: (action, None if p is None else D(p)) for name, (action, p) in expected.items()}


def test_long_bracket_order_types_parents_and_transmit():
    plan = plan_bracket(_payload(LONG_PERCENT), AAPL)
    legs = _legs(plan)
    assert [leg.leg for leg in plan.legs] == ["entry", "tp", "sl"]
    assert legs["entry"].order_type == "MKT"
    assert [leg.transmit for leg in plan.legs] == [False, False, True]
    assert legs["tp"].parent_leg == legs["sl"].parent_leg == "entry"
    assert plan.reference_source == "alert price"


def test_market_without_price_uses_market_reference():
    payload = {"action": "buy", "quantity": 1, "takeProfit": {"amount": 5}}
    assert needs_market_reference(_payload(payload))
    plan = plan_bracket(_payload(payload), AAPL, market_price=D("100"), market_source="ib last")
    assert plan.reference_source == "ib last" and _legs(plan)["tp"].limit_price == D("105")
    with pytest.raises(PlanRejected, match="no reference price"):
        plan_bracket(_payload(payload), AAPL)


def test_entry_only_transmits():
    plan = plan_bracket(_payload({"action": "buy", "quantity": 1}), AAPL)
    assert len(plan.legs) == 1 and plan.legs[0].transmit


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"action": "buy", "quantity": 0}, "quantity must be positive"),
        ({"action": "buy", "quantity": -3}, "quantity must be positive"),
        ({"action": "buy"}, "quantity is required"),
        ({"action": "buy", "quantity": 1.5}, "size increment"),
        ({"action": "buy", "quantity": 1, "quantityType": "dollar_amount"}, "sized by the worker"),
        ({"action": "buy", "quantity": 1, "orderType": "stop"}, "needs a positive stopPrice"),
        ({"action": "buy", "quantity": 1, "orderType": "limit"}, "limitPrice"),
        (
            {"action": "buy", "quantity": 1, "price": 100, "takeProfit": {"limitPrice": 99}},
            "not above the entry",
        ),
        (
            {"action": "sell", "quantity": 1, "price": 100, "stopLoss": {"stopPrice": 99}},
            "not above the entry",
        ),
        (
            # 0.004 below a 100.00 entry rounds up onto the entry itself: refused, not placed
            {"action": "buy", "quantity": 1, "price": 100, "stopLoss": {"stopPrice": 99.996}},
            "not below the entry",
        ),
        ({"action": "buy", "quantity": 1, "price": 100, "takeProfit": {"percent": -1}}, "positive"),
        ({"action": "buy", "quantity": 1, "price": 100, "stopLoss": {"ticks": 2.5}}, "whole number"),
        (
            {"action": "buy", "quantity": 1, "orderType": "stop", "stopPrice": 100, "timeInForce": "cls"},
            "timeInForce cls",
        ),
    ],
)
def test_refusals(payload, reason):
    with pytest.raises(Refused, match=reason):
        plan_bracket(_payload(payload), AAPL)


def test_kinds():
    assert alert_kind(_payload({"action": "buy"})) == "position"
    assert alert_kind(_payload({"action": "sell", "sentiment": "flat"})) == "position"
    assert alert_kind(_payload({"action": "exit"})) == "position"
    assert alert_kind(_payload({"action": "add"})) == "position"
    assert alert_kind(_payload({"action": "cancel"})) == "cancel"


@pytest.mark.parametrize(
    ("payload", "intent"),
    [
        ({"action": "buy", "quantity": 20}, PositionIntent("buy", D(20))),
        (
            {"action": "sell", "quantity": 5, "sentiment": "bullish"},
            PositionIntent("sell", D(5), sentiment="bullish"),
        ),
        (
            {"action": "buy", "quantity": 1, "positionSize": -10},
            PositionIntent("buy", D(1), position_size=D(-10)),
        ),
        (
            {"action": "exit", "quantity": 50, "quantityType": "percent_of_position"},
            PositionIntent("exit", None, percent_of_position=D(50)),
        ),
        ({"action": "add", "quantity": 3}, PositionIntent("add", D(3))),
    ],
)
def test_intent_of_payload(payload, intent):
    assert intent_of(_payload(payload)) == intent


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"action": "buy", "quantity": 0}, "quantity must be positive"),
        ({"action": "buy", "quantity": 1, "quantityType": "dollar_amount"}, "needs sizing"),
        ({"action": "exit", "quantity": 150, "quantityType": "percent_of_position"}, "at most 100"),
    ],
)
def test_intent_refusals(payload, says):
    with pytest.raises(PlanRejected, match=says):
        intent_of(_payload(payload))


def test_bracket_sized_and_sided_by_the_decision():
    """The opening part of a reversal: the side and size come from the decision, not the action."""
    payload = {"action": "buy", "quantity": 1, "positionSize": -4, "price": 100,
               "takeProfit": {"amount": 2}, "stopLoss": {"amount": 1}}  # fmt: skip
    plan = plan_bracket(_payload(payload), AAPL, side="SELL", quantity=D(4))
    assert [(leg.leg, leg.action, leg.quantity) for leg in plan.legs] == [
        ("entry", "SELL", D(4)), ("tp", "BUY", D(4)), ("sl", "BUY", D(4))
    ]  # fmt: skip
    assert protection_prices(plan.legs) == {"tp": D("98.00"), "sl": D("101.00")}
    with pytest.raises(PlanRejected, match="MAX_ORDER_QUANTITY"):
        plan_bracket(_payload(payload), AAPL, side="SELL", quantity=D(40), max_quantity=D(10))


def test_close_leg_market_or_limit_and_roundtrip():
    close = plan_close(AAPL, "SELL", D(10), _payload({"action": "sell", "quantity": 20}))
    assert (close.leg, close.action, close.order_type, close.quantity, close.tif) == (
        "close",
        "SELL",
        "MKT",
        D(10),
        "DAY",
    )
    limit = plan_close(
        AAPL, "BUY", D(3), _payload({"action": "buy", "orderType": "limit", "limitPrice": 100.004})
    )
    assert (limit.order_type, limit.limit_price) == ("LMT", D("100.00"))
    exit_leg = plan_close(AAPL, "SELL", D(2), _payload({"action": "exit", "orderType": "limit"}), leg="exit")
    assert (exit_leg.leg, exit_leg.order_type) == ("exit", "MKT")  # an exit leaves at market
    bracket = plan_bracket(
        _payload({"action": "buy", "quantity": 2, "price": 50, "stopLoss": {"percent": 2}}), AAPL
    )
    for leg in (close, limit, *bracket.legs):
        assert Leg.from_json(leg.to_json()) == leg


def test_exit_plan():
    plan = plan_exit(AAPL, D("-5"), _payload({"action": "exit"}))
    assert plan.legs[0].action == "BUY" and plan.legs[0].quantity == D("5") and plan.legs[0].leg == "exit"
    assert plan_exit(AAPL, D("0"), _payload({"action": "exit"})).legs == []
    assert plan.to_json()["legs"][0]["quantity"] == "5"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # the probe's two orders: LMT -1710 and STP 0
        (
            {"action": "sell", "quantity": 1, "price": 190, "takeProfit": {"percent": 1000}},
            r"take-profit from takeProfit.percent=1000 comes to -1710(\.00)?: a price must be above 0",
        ),
        (
            {"action": "buy", "quantity": 1, "price": 190, "stopLoss": {"percent": 100}},
            r"stop-loss from stopLoss.percent=100 comes to 0(\.00)?: a price must be above 0",
        ),
        ({"action": "buy", "quantity": 1, "price": 5, "stopLoss": {"amount": 7}}, "stop-loss .* above 0"),
        (
            {"action": "sell", "quantity": 1, "price": 1, "takeProfit": {"ticks": 500}},
            "take-profit .* above 0",
        ),
        # a stop 0.004 above zero rounds onto 0.00 for a short's target (BUY limit rounds down)
        ({"action": "sell", "quantity": 1, "price": 1, "takeProfit": {"limitPrice": 0.004}}, "above 0"),
        # a limit entry smaller than a tick rounds down to 0
        (
            {"action": "buy", "quantity": 1, "orderType": "limit", "limitPrice": 0.004},
            "entry limit .* above 0",
        ),
    ],
)
def test_no_leg_is_planned_at_or_below_zero(payload, reason):
    with pytest.raises(PlanRejected, match=reason):
        plan_bracket(_payload(payload), AAPL)


def test_quantity_ceiling():
    payload = {"action": "buy", "quantity": 10**12}
    with pytest.raises(PlanRejected, match="above MAX_ORDER_QUANTITY 1000000"):
        plan_bracket(_payload(payload), AAPL, max_quantity=D(1_000_000))
    assert plan_bracket(
        _payload({"action": "buy", "quantity": 1_000_000}), AAPL, max_quantity=D(1_000_000)
    ).legs
    # closing a position is never refused by the ceiling
    assert plan_exit(AAPL, D(5_000_000), _payload({"action": "exit"})).legs[0].quantity == D(5_000_000)
