"""TradersPost's published webhook description (its ``webhook-spec.json``) at POST /webhook: its own
example request is accepted, with its option fields too (stored normalised; their rules are
tests/app/test_webhook_options.py's), and ``test`` and ``ignoreTradingWindows`` are validated like
every other field."""

from __future__ import annotations

import pytest
from app_helpers import SECRET, alert_body, get_alert, post, queued_jobs

# The example of TradersPost's description, as published (with the secret tv2ib needs).
EXAMPLE = {
    "ticker": "AAPL",
    "action": "buy",
    "sentiment": "long",
    "price": 191.25,
    "quantity": 10,
    "quantityType": "fixed_quantity",
    "orderType": "market",
    "time": "2025-06-18T14:30:00Z",
    "test": True,
    "takeProfit": {"percent": 10},
    "stopLoss": {"type": "stop", "percent": 5},
    "extras": {"strategy": "EMA_Crossover", "comment": "Breakout entry", "exitType": "trailing_atr"},
}


def test_traderspost_example_is_accepted_and_stored_as_a_test(client, ctx, redis_client):
    answer = post(client, {"secret": SECRET, **EXAMPLE})
    assert answer.status_code == 202, answer.get_json()
    payload = get_alert(ctx, answer.get_json()["alert_id"]).payload
    assert payload["test"] is True and payload["ignoreTradingWindows"] is False
    assert payload["sentiment"] == "bullish" and payload["extras"]["exitType"] == "trailing_atr"
    assert len(queued_jobs(redis_client)) == 1  # the worker decides it, and sends nothing


def test_the_switches_are_read_like_every_flag_and_default_to_false(client, ctx):
    answer = post(client, alert_body(test="true", ignoreTradingWindows="1", id="switches"))
    assert answer.status_code == 202, answer.get_json()
    payload = get_alert(ctx, answer.get_json()["alert_id"]).payload
    assert payload["test"] is True and payload["ignoreTradingWindows"] is True
    plain = get_alert(ctx, post(client, alert_body(id="plain")).get_json()["alert_id"]).payload
    assert plain["test"] is False and plain["ignoreTradingWindows"] is False


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"test": "maybe"}, "test", "must be true or false"),
        ({"test": None}, "test", "Field may not be null"),
        ({"ignoreTradingWindows": 2}, "ignoreTradingWindows", "must be true or false"),
        ({"ignoretradingwindows": True}, "ignoretradingwindows", "did you mean 'ignoreTradingWindows'"),
        ({"Test": True}, "Test", "did you mean 'test'"),
    ],
)
def test_a_wrong_switch_is_a_422_naming_it(client, redis_client, fields, field, words):
    answer = post(client, alert_body(**fields) if None not in fields.values() else {**alert_body(), **fields})
    assert answer.status_code == 422
    assert words in answer.get_json()["fields"][field][0]
    assert queued_jobs(redis_client) == []


def test_the_example_with_option_fields_is_accepted_and_stores_them_normalised(client, ctx, redis_client):
    """An alert on the underlying that asks for an option (TradersPost's fields, its own spelling
    ``instrinsicValue`` included): accepted like any alert, the fields stored as the worker reads them."""
    options = {"optionType": "Call", "instrinsicValue": "OTM", "expiration": "+6 Months", "strikeCount": "10",
               "strikesAway": 1}  # fmt: skip
    answer = post(client, {"secret": SECRET, **EXAMPLE, "ticker": "SPY", **options})
    assert answer.status_code == 202, answer.get_json()
    payload = get_alert(ctx, answer.get_json()["alert_id"]).payload
    assert {key: payload[key] for key in ("optionType", "intrinsicValue", "expiration", "strikeCount", "strikesAway")} == {
        "optionType": "call", "intrinsicValue": "otm", "expiration": "+6 months", "strikeCount": 10, "strikesAway": 1,
    }  # fmt: skip
    assert "instrinsicValue" not in payload and payload["strikePrice"] is None and payload["ticker"] == "SPY"
    assert len(queued_jobs(redis_client)) == 1
    again = post(client, {"secret": SECRET, **EXAMPLE, "ticker": "SPY", **options})
    assert again.status_code == 200 and again.get_json()["alert_id"] == answer.get_json()["alert_id"]
    # the option fields are part of the alert's identity: another strike is another alert
    other = post(client, {"secret": SECRET, **EXAMPLE, "ticker": "SPY", **options, "strikesAway": 2})
    assert other.status_code == 202 and len(queued_jobs(redis_client)) == 2
