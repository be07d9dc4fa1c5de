"""The typed payload (core.payload.AlertPayload): the schema makes it, its JSON is what rows store
and the API shows, and the worker loads it back unchanged (pure logic, no services)."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.webhook.schema import normalise
from app.webhook.screening import INPUT_ALIASES, STOP_LOSS_FIELDS, TAKE_PROFIT_FIELDS, TOP_LEVEL_FIELDS
from core.option_fields import parse_option_request
from core.payload import AlertPayload, PayloadError, StopLoss, TakeProfit


def _stored(alert):
    payload, errors = normalise(alert)
    assert errors == {}
    return payload, json.loads(json.dumps(payload.to_json()))


def test_schema_makes_typed_values_and_stores_the_numbers_as_sent():
    payload, stored = _stored(
        {
            "ticker": "nasdaq:aapl",
            "action": "BUY",
            "quantity": "10",
            "signalPrice": "190.50",
            "takeProfit": {"percent": 2.0},
            "stopLoss": {"ticks": "3"},
            "prevMarketPosition": "short",
            "prevMarketPositionSize": 2.5,
        }
    )
    assert payload.ticker == "AAPL" and payload.exchange == "NASDAQ" and payload.action == "buy"
    assert payload.quantity == D(10) and payload.price == D("190.5")
    assert payload.take_profit == TakeProfit(percent=D("2.0"))
    assert payload.stop_loss == StopLoss(type="stop", ticks=D(3))
    assert payload.prev_market_position == "short" and payload.prev_market_position_size == D("2.5")
    # whole numbers sent without a point stay ints, the rest floats; nested objects hold only what was given
    assert stored["quantity"] == 10 and isinstance(stored["quantity"], int)
    assert stored["price"] == 190.5 and stored["takeProfit"] == {"percent": 2.0}
    assert isinstance(stored["takeProfit"]["percent"], float)
    assert stored["stopLoss"] == {"type": "stop", "ticks": 3}
    assert "signalPrice" not in stored and stored["quantityType"] == "fixed_quantity"


def test_every_payload_key_is_present_and_in_one_list():
    _, stored = _stored({"ticker": "ES1!", "action": "exit"})
    assert set(stored) == {
        *(name for name in TOP_LEVEL_FIELDS if name != "secret" and name not in INPUT_ALIASES),
        "exchange",
    }
    assert stored["prevMarketPosition"] is None and stored["extendedHours"] is False
    assert set(TAKE_PROFIT_FIELDS) == {"limitPrice", "percent", "amount", "ticks"}
    assert "trailPercent" in STOP_LOSS_FIELDS and "type" in STOP_LOSS_FIELDS


def test_rows_stored_before_the_new_fields_still_load():
    old_row = {"ticker": "AAPL", "exchange": None, "action": "buy", "quantity": 1, "orderType": "market"}
    payload = AlertPayload.from_json(old_row)
    assert payload.prev_market_position is None and payload.prev_market_position_size is None
    assert payload.option_type is None and payload.dte_max is None and payload.option_request() is None


def test_the_option_fields_are_stored_normalised_and_read_back_as_the_request():
    payload, stored = _stored(
        {
            "ticker": "SPY",
            "action": "sell",
            "optionType": "Put",
            "expiration": " +1 Month ",
            "instrinsicValue": "ITM",
            "strikesAway": "2",
            "strikeCount": 10.0,
            "dteMax": "60",
        }
    )
    assert stored["optionType"] == "put" and stored["expiration"] == "+1 month"
    assert stored["intrinsicValue"] == "itm" and "instrinsicValue" not in stored
    assert stored["strikesAway"] == 2 and stored["strikeCount"] == 10 and stored["dteMax"] == 60
    assert (
        isinstance(stored["strikeCount"], int) and stored["strikePrice"] is None and stored["delta"] is None
    )
    assert AlertPayload.from_json(stored) == payload
    request = payload.option_request()
    assert request is not None and request.option_type == "put" and request.strikes_away == 2
    assert request.expiration is not None and request.expiration.describe() == "+1 month"
    priced, stored = _stored({"ticker": "SPY", "action": "buy", "optionType": "call",
                              "expiration": "2026-03-20", "strikePrice": "187.50", "dteMin": 0})  # fmt: skip
    assert (
        stored["strikePrice"] == 187.5 and isinstance(stored["strikePrice"], float) and stored["dteMin"] == 0
    )
    assert AlertPayload.from_json(stored) == priced
    assert priced.option_request().strike_price == D("187.5")


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"strikePrice": 190}, "optionType is needed with strikePrice"),
        ({"optionType": "call", "expiration": "soon"}, "expiration must be a date"),
        ({"optionType": "call", "dteMin": 9, "dteMax": 3}, r"dteMin must not be above dteMax \(9 > 3\)"),
    ],
)
def test_a_stored_payload_with_broken_option_fields_names_them(row, words):
    payload = AlertPayload.from_json({"ticker": "AAPL", "action": "buy", **row})
    with pytest.raises(PayloadError, match=words):
        payload.option_request()


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"action": "buy"}, "ticker is missing"),
        ({"ticker": "AAPL", "action": "hold"}, "action must be one of buy, sell"),
        ({"ticker": "AAPL", "action": "buy", "quantity": "lots"}, "quantity is not a number"),
        ({"ticker": "AAPL", "action": "buy", "quantity": True}, "quantity is not a number"),
        (
            {"ticker": "AAPL", "action": "buy", "stopLoss": {"percent": [1]}},
            "stopLoss.percent is not a number",
        ),
        ({"ticker": "AAPL", "action": "buy", "takeProfit": 5}, "takeProfit is not a JSON object"),
        ({"ticker": "AAPL", "action": "buy", "orderType": None}, "orderType must not be null"),
        ({"ticker": "AAPL", "action": "buy", "extendedHours": "yes"}, "extendedHours must be true or false"),
        (
            {"ticker": "AAPL", "action": "buy", "optionType": "spread"},
            "optionType must be one of call, put, both",
        ),
        ({"ticker": "AAPL", "action": "buy", "strikesAway": "2"}, "strikesAway is not a number"),
    ],
)
def test_a_broken_stored_payload_names_the_field(row, words):
    with pytest.raises(PayloadError, match=words):
        AlertPayload.from_json(row)


numbers = st.one_of(
    st.integers(min_value=1, max_value=10**9),
    st.decimals(min_value=D("0.00000001"), max_value=D(10**9), places=8).map(str),
    st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False),
)
alerts = st.fixed_dictionaries(
    {
        "ticker": st.sampled_from(["AAPL", "NASDAQ:MSFT", "ES1!", "EURUSD"]),
        "action": st.sampled_from(["buy", "exit"]),
    },
    optional={
        "quantity": numbers,
        "price": numbers,
        "limitPrice": numbers,
        "prevMarketPosition": st.sampled_from(["long", "SHORT", "flat"]),
        "prevMarketPositionSize": st.one_of(st.just(0), numbers),
        "takeProfit": st.one_of(
            st.builds(lambda v: {"limitPrice": v}, numbers),
            st.builds(lambda v: {"ticks": v}, st.integers(1, 99)),
        ),
        "stopLoss": st.builds(lambda v: {"percent": v}, st.floats(min_value=0.01, max_value=50)),
        "extras": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
        "extendedHours": st.booleans(),
    },
)
option_fields = st.fixed_dictionaries(
    {"optionType": st.sampled_from(["call", "PUT", "both"]), "expiration": st.sampled_from(["+6 months", "2026-03-20", "+1 Week"])},
    optional={
        "strikePrice": numbers,
        "delta": st.floats(min_value=-0.99, max_value=0.99).filter(bool),
        "dteMin": st.integers(0, 30) | st.integers(0, 30).map(str),
        "dteMax": st.integers(30, 3660),
        "intrinsicValue": st.sampled_from(["itm", "OTM"]),
        "strikesAway": st.integers(1, 50),
        "strikeCount": st.integers(1, 100),
    },
)  # fmt: skip
alerts = st.tuples(alerts, st.none() | option_fields).map(lambda parts: {**parts[0], **(parts[1] or {})})


@settings(max_examples=300, deadline=None)
@given(alert=alerts)
def test_the_stored_json_loads_back_to_the_same_payload(alert):
    payload, errors = normalise(alert)
    if payload is None:  # e.g. an over-precise float quantity: refused, nothing to store
        assert errors
        return
    stored = json.loads(json.dumps(payload.to_json()))
    assert AlertPayload.from_json(stored) == payload
    assert AlertPayload.from_json(stored).to_json() == stored
    # what the schema accepted, the worker reads back as the request the alert's own values make
    assert AlertPayload.from_json(stored).option_request() == (
        None if "optionType" not in alert else parse_option_request(alert)[0]
    )
