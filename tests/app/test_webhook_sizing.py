"""Intake of the sizing modes (issue 11): every quantityType is accepted and stored as sent; a
percentage is in (0, 100]; the risk types need a stop-loss, or they are a 422 naming stopLoss
(the worker sizes them, docs/sizing.md)."""

from __future__ import annotations

import pytest
from app_helpers import alert_body, get_alert, post


@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        ({"quantityType": "risk_percent", "quantity": 1, "stopLoss": {"percent": 2}}, 1),
        ({"quantityType": "risk_percent", "quantity": "0.25", "stopLoss": {"stopPrice": 150}}, 0.25),
        ({"quantityType": "risk_percent", "quantity": 100, "stopLoss": {"amount": 5}}, 100),
        ({"quantityType": "risk_dollar_amount", "quantity": 250, "stopLoss": {"ticks": 8}}, 250),
        ({"quantityType": "dollar_amount", "quantity": 10000}, 10000),
        ({"quantityType": "percent_of_equity", "quantity": 5}, 5),
    ],
)
def test_sizing_modes_are_accepted_and_stored(client, ctx, fields, stored):
    answer = post(client, alert_body(**fields))
    assert answer.status_code == 202, answer.get_json()
    payload = get_alert(ctx, answer.get_json()["alert_id"]).payload
    assert payload["quantityType"] == fields["quantityType"] and payload["quantity"] == stored


@pytest.mark.parametrize(
    ("fields", "bad_field", "says"),
    [
        (
            {"quantityType": "risk_percent", "quantity": 150, "stopLoss": {"percent": 2}},
            "quantity",
            "at most 100",
        ),
        (
            {"quantityType": "risk_percent", "quantity": 100.01, "stopLoss": {"percent": 2}},
            "quantity",
            "at most 100",
        ),
        ({"quantityType": "risk_percent", "quantity": 0, "stopLoss": {"percent": 2}}, "quantity", ""),
        ({"quantityType": "risk_percent", "quantity": -1, "stopLoss": {"percent": 2}}, "quantity", ""),
        ({"quantityType": "risk_percent", "quantity": 1}, "stopLoss", "needs a stopLoss"),
        ({"quantityType": "risk_dollar_amount", "quantity": 100}, "stopLoss", "needs a stopLoss"),
        (
            {"quantityType": "risk_percent", "stopLoss": {"percent": 2}, "quantity": None},
            "quantity",
            "needs a quantity",
        ),
    ],
)
def test_bad_sizing_is_a_422_naming_the_field(client, fields, bad_field, says):
    answer = post(client, alert_body(**fields))
    assert answer.status_code == 422, answer.get_json()
    messages = answer.get_json()["fields"][bad_field]
    assert says in str(messages)
