"""Sizing (issue 11, worker/decision/sizing.py): payload + contract + account figures + IB's position → the
quantity, or a refusal naming the rule and its numbers. Pure logic; the sized quantity then goes
through the real position decision (worker/decision/positions.py) to the position a trader would check."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from worker_helpers import AAPL, EURUSD, MES

from core.payload import AlertPayload
from worker.decision.intent import intent_of, needs_market_reference
from worker.decision.model import Instrument
from worker.decision.planner import plan_bracket
from worker.decision.positions import decide
from worker.decision.sizing import SizingRefused, floor_to_increment, size_alert
from worker.ib.account import AccountFigures

BTC = Instrument(479624278, "BTC", "CRYPTO", "PAXOS", "USD", "BTC.USD", D("0.25"),
                 min_size=D("0.0001"), size_increment=D("0.00000001"))  # fmt: skip
SMALL = AccountFigures("DU1", "USD", net_liquidation=D("10000"))
BIG = AccountFigures("DU1", "USD", net_liquidation=D("1003211"))
NONE_YET = AccountFigures("DU1", "")  # connected, IB has not reported the account values yet
EUR_ACCOUNT = AccountFigures("DU2", "EUR", net_liquidation=D("10000"), exchange_rates={"USD": D("0.84")})
EUR_NO_RATE = AccountFigures("DU2", "EUR", net_liquidation=D("10000"))
INSTRUMENTS = {"AAPL": AAPL, "MES": MES, "EURUSD": EURUSD, "BTC": BTC}


def _payload(doc):
    return AlertPayload.from_json({"ticker": "AAPL", "action": "buy", **doc})


def _size(inst, doc, *, figures=SMALL, position=D(0), market=None, default=None):
    return size_alert(_payload(doc), INSTRUMENTS[inst], position=position, market_price=market,
                      figures=figures, default=default)  # fmt: skip


def sized(kind: str, amount, **more) -> dict:
    """An alert's sizing fields (``quantityType`` ``kind`` of ``quantity`` ``amount``) and the rest."""
    return {"quantity": amount, "quantityType": kind, **more}


def opening(inst: str, doc: dict, expected: str, figures=SMALL, market=None) -> tuple:
    """A row of OPENING: the account SMALL and no market price unless said."""
    return inst, doc, figures, market, expected


# (instrument, payload, figures, market price, expected quantity or the refusal's words)
OPENING = [
    # ---- AAPL
    opening("AAPL", sized("dollar_amount", 10000, price=190), "52"),
    opening("AAPL", sized("dollar_amount", 10000), "50", market=D("200")),
    # BUY limit rounds down to 199.99: 50.0025 -> 50
    opening("AAPL", sized("dollar_amount", 10000, orderType="limit", limitPrice=199.999), "50"),
    opening("AAPL", sized("risk_dollar_amount", 100, price=190, stopLoss={"stopPrice": 150}), "2"),
    opening("AAPL", sized("risk_percent", 1, price=190, stopLoss={"stopPrice": 150}), "2"),
    # 1% of 1,003,211 = 10,032.11 at risk; stop 2% under 190 = 186.20: 10,032.11 / 3.80 = 2640.02
    opening("AAPL", sized("risk_percent", 1, price=190, stopLoss={"percent": 2}), "2640", BIG),
    opening("AAPL", sized("percent_of_equity", 10, price=190), "528", BIG),
    # a short: the stop is above; 190 + 5 = 195, risk 5 per share
    opening("AAPL", sized("risk_dollar_amount", 100, action="sell", price=190, stopLoss={"amount": 5}), "20"),
    # a trailing stop-loss: the distance is its trail (here 2.5% of 190 = 4.75)
    opening("AAPL", sized("risk_dollar_amount", 95, price=190,
                          stopLoss={"type": "trailing_stop", "trailPercent": 2.5}), "20"),
    opening("AAPL", sized("dollar_amount", 100, price=190),
            "100.00 USD ÷ (190.00 × 1) = 0.5263 → 0: below the minimum size 1; nothing sent"),
    opening("AAPL", sized("risk_percent", 1, price=190, stopLoss={"stopPrice": 150}),
            "1% of 3,000.00 USD NetLiquidation = 30.00 USD risk ÷ (190.00 − 150.00) × 1 = 0.75 → 0: "
            "below the minimum size 1; nothing sent", AccountFigures("DU1", "USD", net_liquidation=D("3000"))),
    opening("AAPL", sized("percent_of_equity", 10, price=190),
            "IB has not reported NetLiquidation for DU1 yet; nothing sent", NONE_YET),
    opening("AAPL", sized("percent_of_equity", 10, price=190), "IB has not reported NetLiquidation", None),
    opening("AAPL", sized("risk_percent", 1, price=190), "risk_percent needs a stopLoss"),
    opening("AAPL", sized("dollar_amount", 10000), "dollar_amount needs a price: the alert has none and IB gave none"),
    opening("AAPL", sized("risk_dollar_amount", 100, price=190, stopLoss={"stopPrice": 191}),
            "the stop-loss 191 is not below the entry reference 190"),
    # the account in EUR: 10% of 10,000 EUR = 1,000 EUR = 1,190.48 USD at IB's rate; / 190 = 6.27
    opening("AAPL", sized("percent_of_equity", 10, price=190), "6", EUR_ACCOUNT),
    opening("AAPL", sized("percent_of_equity", 10, price=190),
            "the contract trades in USD and IB reported no USD exchange rate for DU2 (base EUR)", EUR_NO_RATE),
    # dollar amounts are in the contract's currency: no conversion, an EUR account sizes the same
    opening("AAPL", sized("dollar_amount", 10000, price=190), "52", EUR_NO_RATE),
    # ---- MES (multiplier 5)
    opening("MES", sized("dollar_amount", 60000, price=6000), "2"),
    opening("MES", sized("dollar_amount", 59999, price=6000), "1"),
    # 8 ticks of 0.25 = 2 points × 5 = 10 USD per contract
    opening("MES", sized("risk_dollar_amount", 500, price=6000, stopLoss={"ticks": 8}), "50"),
    # SELL limit 6000.1 rounds up to 6000.25; stop 10 above = 6010.25; 1,000 / (10 × 5) = 20
    opening("MES", sized("risk_dollar_amount", 1000, action="sell", orderType="limit", limitPrice=6000.1,
                         stopLoss={"amount": 10}), "20"),
    opening("MES", sized("risk_percent", 1, price=6000, stopLoss={"amount": 30}),
            "(6,000.00 − 5,970.00) × 5 = 0.6666 → 0: below the minimum size 1; nothing sent"),
    opening("MES", sized("percent_of_equity", 50, price=6000), "16", BIG),
    # ---- EUR.USD (quantity in EUR, notional in USD)
    opening("EURUSD", sized("dollar_amount", 10000, price=1.08), "9259"),
    opening("EURUSD", sized("risk_dollar_amount", 200, price=1.08, stopLoss={"stopPrice": 1.075}), "40000"),
    opening("EURUSD", sized("percent_of_equity", 50, price=1.08), "4629"),
    # 50 USD / 0.001 per EUR
    opening("EURUSD", sized("risk_percent", 0.5, price=1.08, stopLoss={"ticks": 20}), "50000"),
    # ---- crypto: fractional size increment
    opening("BTC", sized("dollar_amount", 100, price=60000), "0.00166666"),
    opening("BTC", sized("dollar_amount", 5, price=60000), "→ 0.00008333: below the minimum size 0.0001; nothing sent"),
]  # fmt: skip


@pytest.mark.parametrize(("inst", "doc", "figures", "market", "expected"), OPENING)
def test_opening_sizes_and_refusals(inst, doc, figures, market, expected):
    if expected.replace(".", "").isdigit():
        sized = _size(inst, doc, figures=figures, market=market)
        assert sized is not None and sized.quantity == D(expected) and sized.order_quantity == D(expected)
        assert sized.role == "open" and sized.text.endswith(f"→ {expected}")
        assert sized.inputs["quantity"] == expected
        # the planner takes it as the entry size and the stop it plans is the one sized on
        if (doc.get("stopLoss") or {}).get("type") == "trailing_stop":
            return  # trailing stop-losses are planned by the order-types work (issue 11)
        decision = decide(D(0), intent_of(_payload(doc), sized), INSTRUMENTS[inst].size_increment)
        plan = plan_bracket(_payload(doc), INSTRUMENTS[inst], market, side=decision.open_side,
                            quantity=decision.open_qty)  # fmt: skip
        assert plan.legs[0].quantity == D(expected)
        stops = [leg.stop_price for leg in plan.legs if leg.leg == "sl"]
        if stops and sized.inputs.get("stop_price"):
            assert stops[0] == D(sized.inputs["stop_price"])
    else:
        with pytest.raises(SizingRefused) as refused:
            _size(inst, doc, figures=figures, market=market)
        assert str(refused.value).startswith("sizing: ") and expected in str(refused.value)


def test_the_issue_example_reads_as_written():
    sized = _size("AAPL", {"quantity": 1, "quantityType": "risk_percent", "price": 190,
                           "stopLoss": {"stopPrice": 150}})  # fmt: skip
    assert sized.text == (
        "sizing: 1% of 10,000.00 USD NetLiquidation = 100.00 USD risk ÷ (190.00 − 150.00) × 1 = 2.5 → 2"
    )
    assert sized.to_json() == {
        "rule": "risk_percent", "source": "alert", "role": "open", "text": sized.text, "quantity": "2",
        "order_quantity": "2",
        "inputs": {"amount": "1", "position": "0", "reference_price": "190", "reference_source": "alert price",
                   "multiplier": "1", "currency": "USD", "percent": "1", "net_liquidation": "10000",
                   "account_currency": "USD", "stop_price": "150", "stop_distance": "40", "risk_budget": "100",
                   "raw_quantity": "2.5", "size_increment": "1", "min_size": "1", "quantity": "2"},
    }  # fmt: skip


def test_the_text_shows_the_unrounded_quantity_cut_not_rounded():
    sized = _size("MES", {"quantity": 59999, "quantityType": "dollar_amount", "price": 6000})
    assert sized.text == "sizing: 59,999.00 USD ÷ (6,000.00 × 5) = 1.9999 → 1"
    assert sized.inputs["raw_quantity"] == "1.99996666"


def positioned(doc: dict, position: int, order: str, after: str, says: str, figures=SMALL) -> tuple:
    """A row of POSITIONED: the account SMALL unless said."""
    return doc, position, figures, order, after, says


# (payload, IB's position, figures, expected order quantity, the position after decide, text words)
POSITIONED = [
    # a reversal: the sized 10 is the short it opens; the order also closes the long 10
    positioned(sized("dollar_amount", 1900, action="sell", price=190), 10, "20", "-10",
               "reversal: close 10, then open 10 (order 20)"),
    positioned(sized("dollar_amount", 1900, action="buy", price=190), -4, "14", "10", "reversal: close 4, then open 10"),
    # its opening part sized to 0: the long is closed, nothing opens, the reason says why
    positioned(sized("dollar_amount", 100, action="sell", price=190), 10, "10", "0",
               "→ 0: below the minimum size 1; the opening part of the reversal is not sent"),
    positioned(sized("percent_of_equity", 5, action="sell", price=190), 10, "10", "0",
               "IB has not reported NetLiquidation for DU1 yet; the opening part", NONE_YET),
    # a sell that may only reduce the long: the sized amount is what it closes
    positioned(sized("dollar_amount", 950, action="sell", sentiment="bullish", price=190), 10, "5", "5", "→ 5"),
    positioned(sized("dollar_amount", 5000, action="sell", sentiment="bullish", price=190), 10, "10", "0",
               "→ 26; capped at the position 10"),
    # an exit with an amount: closes that much, never more than the position, never blocked
    positioned(sized("dollar_amount", 950, action="exit", price=190), 10, "5", "5", "→ 5"),
    positioned(sized("dollar_amount", 100, action="exit", price=190), -10, "1", "-9",
               "below the minimum size 1; closes the minimum size 1"),
    positioned(sized("percent_of_equity", 10, action="exit", price=190), 10, "10", "0",
               "the whole position is closed (exits are never blocked by sizing)", NONE_YET),
    # an add: the sized amount is the addition
    positioned(sized("dollar_amount", 1900, action="add", price=190), -10, "10", "-20", "→ 10"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "position", "figures", "order", "after", "says"), POSITIONED)
def test_what_a_sized_quantity_means_for_the_position(doc, position, figures, order, after, says):
    sized = _size("AAPL", doc, position=D(position), figures=figures)
    assert sized is not None and sized.order_quantity == D(order)
    assert says in sized.text
    decision = decide(D(position), intent_of(_payload(doc), sized), AAPL.size_increment)
    assert decision.target == D(after)


def test_a_sentiment_against_the_action_only_reduces_so_nothing_opens_from_flat():
    doc = {
        "action": "buy",
        "sentiment": "bearish",
        "quantity": 100,
        "quantityType": "dollar_amount",
        "price": 190,
    }
    sized = _size("AAPL", doc, position=D(0))  # 0.52 shares: not a refusal, there is nothing to reduce
    assert sized.role == "reduce" and sized.order_quantity == 0
    assert decide(D(0), intent_of(_payload(doc), sized)).kind == "none"


@pytest.mark.parametrize(
    ("doc", "needs"),
    [
        ({"action": "exit", "quantity": 950, "quantityType": "dollar_amount"}, True),
        ({"action": "exit", "quantity": 950, "quantityType": "dollar_amount", "price": 190}, False),
        ({"action": "exit", "quantity": 5, "quantityType": "percent_of_position"}, False),
        ({"action": "exit", "quantity": 5}, False),
        ({"action": "sell", "sentiment": "flat", "quantity": 5, "quantityType": "dollar_amount"}, False),
        ({"action": "buy", "quantity": 950, "quantityType": "dollar_amount"}, True),
        (
            {
                "action": "buy",
                "quantity": 950,
                "quantityType": "dollar_amount",
                "orderType": "limit",
                "limitPrice": 190,
            },
            False,
        ),  # fmt: skip
    ],
)
def test_a_market_reference_is_fetched_when_sizing_needs_one(doc, needs):
    assert needs_market_reference(_payload(doc)) is needs


def test_sized_opening_on_the_wrong_side_is_refused_by_the_position_rules():
    sized = _size("AAPL", {"quantity": 1900, "quantityType": "dollar_amount", "price": 190}, position=D(5))
    with pytest.raises(Exception, match="already long 5"):
        decide(D(5), intent_of(_payload({"quantity": 1900, "quantityType": "dollar_amount"}), sized))


@pytest.mark.parametrize(
    ("doc", "position", "default", "order", "says"),
    [
        ({}, 0, ("dollar_amount", D(1900)), "10", "sizing (strategy default): 1,900.00 USD ÷ (190.00 × 1)"),
        ({"action": "sell"}, 10, ("dollar_amount", D(950)), "15", "reversal: close 10, then open 5"),
        ({"action": "sell"}, 10, ("fixed_quantity", D(3)), "13", "fixed 3 → 3; reversal"),
        ({"action": "add"}, 10, ("percent_of_position", D(50)), None, "50% of the position"),
    ],
)
def test_strategy_default_applies_only_without_a_quantity(doc, position, default, order, says):
    sized = _size("AAPL", {"price": 190, **doc}, position=D(position), default=default)
    assert sized is not None and sized.source == "strategy default" and says in sized.text
    assert sized.order_quantity == (None if order is None else D(order))
    if order is None:
        decision = decide(D(position), intent_of(_payload({"price": 190, **doc}), sized))
        assert decision.target == D(15)


@pytest.mark.parametrize(
    "doc",
    [
        {"quantity": 7, "price": 190},  # the alert's own fixed quantity: TradingView's order quantity
        {"quantity": 50, "quantityType": "percent_of_position", "action": "exit"},  # decide computes it
        {"quantity": 1900, "quantityType": "dollar_amount", "positionSize": 3},  # positionSize wins
        {"action": "exit"},  # closes everything, never sized (not even by a default)
        {"action": "sell", "sentiment": "flat", "quantity": 10, "quantityType": "percent_of_equity"},
    ],
)
def test_nothing_to_size(doc):
    assert _size("AAPL", doc, position=D(10), default=("dollar_amount", D(1900))) is None


def test_an_exit_while_flat_is_not_sized():
    doc = {"action": "exit", "quantity": 10, "quantityType": "percent_of_equity"}
    assert _size("AAPL", doc, position=D(0), figures=NONE_YET) is None
    assert decide(D(0), intent_of(_payload(doc))).kind == "none"


# ------------------------------------------------------------------ properties

grid = st.sampled_from([(D(1), D(1)), (D(1), D(100)), (D("0.0001"), D("0.00000001")), (D(25000), D(1))])


@settings(max_examples=300, deadline=None)
@given(
    net_liq=st.decimals(min_value=1, max_value=10**9, places=2),
    percent=st.decimals(min_value=D("0.01"), max_value=100, places=2),
    reference=st.decimals(min_value=D("0.5"), max_value=100000, places=2),
    stop_ticks=st.integers(min_value=1, max_value=5000),
    multiplier=st.sampled_from(["", "5", "50", "0.1"]),
    sizes=grid,
    short=st.booleans(),
)
def test_sized_risk_never_exceeds_the_budget_and_sits_on_the_grid(
    net_liq, percent, reference, stop_ticks, multiplier, sizes, short
):
    min_size, increment = sizes
    inst = Instrument(1, "X", "FUT", "CME", "USD", "X", D("0.01"), min_size=min_size, size_increment=increment,
                      multiplier=multiplier)  # fmt: skip
    offset = stop_ticks * D("0.01")
    assume(short or offset < reference)
    doc = {"action": "sell" if short else "buy", "quantity": percent, "quantityType": "risk_percent",
           "price": reference, "stopLoss": {"amount": offset}}  # fmt: skip
    figures = AccountFigures("DU1", "USD", net_liquidation=net_liq)
    try:
        sized = size_alert(_payload(doc), inst, position=D(0), market_price=None, figures=figures)
    except SizingRefused as refused:
        assert "below the minimum size" in str(refused)
        return
    qty, stop = sized.quantity, D(sized.inputs["stop_price"])
    mult = D(multiplier or 1)
    assert qty * abs(reference - stop) * mult <= net_liq * percent / 100
    assert qty >= min_size and (qty / increment) == (qty / increment).to_integral_value()
    # one more increment would be over the budget: rounded down, not further
    assert (qty + increment) * abs(reference - stop) * mult > net_liq * percent / 100


@settings(max_examples=300, deadline=None)
@given(
    notional=st.decimals(min_value=1, max_value=10**8, places=2),
    reference=st.decimals(min_value=D("0.00005"), max_value=100000, places=5),
    multiplier=st.sampled_from(["", "5", "1000"]),
    sizes=grid,
)
def test_dollar_amount_never_buys_more_than_the_notional(notional, reference, multiplier, sizes):
    min_size, increment = sizes
    inst = Instrument(1, "X", "CASH", "IDEALPRO", "USD", "X", D("0.00005"), min_size=min_size,
                      size_increment=increment, multiplier=multiplier)  # fmt: skip
    doc = {"quantity": notional, "quantityType": "dollar_amount", "price": reference}
    try:
        sized = size_alert(_payload(doc), inst, position=D(0), market_price=None, figures=None)
    except SizingRefused as refused:
        assert "below the minimum size" in str(refused) and "nothing sent" in str(refused)
        assert notional / (reference * D(multiplier or 1)) < min_size + increment
        return
    qty = sized.quantity
    assert qty * reference * D(multiplier or 1) <= notional
    assert qty >= min_size and (qty / increment) == (qty / increment).to_integral_value()


@given(raw=st.decimals(min_value=0, max_value=10**9, places=10), increment=st.sampled_from(
    [D(1), D(100), D("0.01"), D("0.00000001")]))  # fmt: skip
def test_floor_to_increment_rounds_down_onto_the_grid(raw, increment):
    qty = floor_to_increment(raw, increment)
    assert qty <= raw < qty + increment
    assert (qty / increment) == (qty / increment).to_integral_value()


@settings(max_examples=200, deadline=None)
@given(
    position=st.integers(min_value=-500, max_value=500),
    dollars=st.integers(min_value=1, max_value=200_000),
    action=st.sampled_from(["buy", "sell", "exit"]),
    sentiment=st.sampled_from([None, "bullish", "bearish"]),
)
def test_a_sized_quantity_opens_exactly_itself_and_never_closes_more_than_the_position(
    position, dollars, action, sentiment
):
    doc = {"action": action, "quantity": dollars, "quantityType": "dollar_amount", "price": 190}
    if sentiment and action != "exit":
        doc["sentiment"] = sentiment
    position = D(position)
    try:
        sized = _size("AAPL", doc, position=position)
    except SizingRefused:
        return  # an opening below the minimum size
    if sized is None:  # an exit while flat
        assert action == "exit" and position == 0
        return
    try:
        decision = decide(position, intent_of(_payload(doc), sized))
    except Exception as refused:  # buy while long: the position rules say no, whatever the size
        assert "already" in str(refused)
        return
    opened = decision.open_qty
    assert decision.close_qty <= abs(position)
    if sized.role in ("open", "reverse"):
        assert opened == sized.quantity  # the sized quantity is the position the alert opens
    else:
        assert opened == 0 and decision.close_qty <= sized.quantity
