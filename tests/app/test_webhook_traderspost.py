"""TradersPost's published webhook description (its ``webhook-spec.json``) at POST /webhook: its own
example request is accepted, ``test`` and ``ignoreTradingWindows`` are validated like every other
field, and the option fields (not built yet) stay refused, each named."""

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


def test_the_option_fields_are_still_refused_each_by_name(client, redis_client):
    """Options (issue 20's second part) are not built: an alert naming a contract to choose must
    not trade the underlying instead."""
    options = {"optionType": "call", "intrinsicValue": "otm", "expiration": "+6 months", "strikeCount": 10,
               "strikesAway": 1, "strikePrice": 200}  # fmt: skip
    answer = post(client, {"secret": SECRET, **EXAMPLE, **options})
    assert answer.status_code == 422
    fields = answer.get_json()["fields"]
    assert sorted(fields) == sorted(options) and all("unknown field" in fields[k][0] for k in options)
    assert queued_jobs(redis_client) == []
