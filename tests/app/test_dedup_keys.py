"""The duplicate key of an alert does not change across a deploy (app/webhook/dedup.py).

A TradingView resend can reach a newer release than its first try. The keys below were computed
by the release BEFORE key version 1 was fixed (which hashed the whole stored payload): the same
alerts must still get them, and a release that adds a field must not change them either.
"""

from __future__ import annotations

from typing import Any

import pytest
from app_helpers import alert_body, alerts, post, queued_jobs

from app.webhook.dedup import DEFAULTS, KEY_FIELDS_V1, idempotency_key
from app.webhook.schema import normalise_alert
from core.payload import AlertPayload, json_names

# (alert as sent, its key as the release before version 1 stored it)
STORED_KEYS = [
    ({"ticker": "NASDAQ:AAPL", "action": "buy", "quantity": 10, "price": 190.5},
     "body:70edece9db2f398b31352b5de25c6bae569e30f3203b69622e4bd6ebab04ace0"),
    ({"ticker": "ES1!", "action": "sell", "quantity": 1, "orderType": "limit", "limitPrice": 5000.25,
      "takeProfit": {"ticks": 8}, "stopLoss": {"type": "stop", "amount": 4}, "strategy": "breakout",
      "time": "2026-11-22T07:35:25Z"},
     "body:f534cb436027a88250e3f4bb5d22bfa2389cf2120693b6fda9b4fd36eac01c36"),
    ({"ticker": "MSFT", "action": "buy", "positionSize": 5, "account": ["DU1", "DU2"], "extras": {"note": "x"}},
     "body:40f7daef28b348a36f0e5315f0c1bad441b2233ebc4af782c2f9f4a357741ecf"),
    ({"ticker": "AAPL", "action": "exit", "id": "abc-1", "strategy": "s1"},
     "id:d1eab965ad4b54093749f9f80ead545a240c9cbe16b1e09be070c93d13c996c4"),
]  # fmt: skip


def _stored(alert: dict[str, Any]) -> dict[str, Any]:
    normalised, errors = normalise_alert(alert)
    assert normalised is not None, errors
    return normalised.to_json()


def _release(**fields: Any) -> dict[str, dict[str, Any]]:
    """The field defaults of a later release that adds ``fields`` (name: default) at the top level."""
    return {**DEFAULTS, "": {**DEFAULTS[""], **fields}}


@pytest.mark.parametrize(("alert", "key"), STORED_KEYS)
def test_an_alert_gets_the_key_the_release_before_stored(alert, key) -> None:
    assert idempotency_key(_stored(alert)) == key


def test_version_1_names_only_fields_the_payload_has() -> None:
    # a field of version 1 removed from the payload would hash as null: a new version is due then
    assert set(json_names(AlertPayload)) >= KEY_FIELDS_V1


# (what a later release adds to the stored form of an alert that does not use it, its default)
ADDED_UNUSED = [
    ("a field with no default, stored null", {"routeTag": None}, {"routeTag": None}),
    ("a flag, stored false", {"reduceOnly": False}, {"reduceOnly": False}),
    ("a setting, stored as its default", {"outsideRthPolicy": "day"}, {"outsideRthPolicy": "day"}),
    ("two at once", {"routeTag": None, "reduceOnly": False}, {"routeTag": None, "reduceOnly": False}),
]


@pytest.mark.parametrize(("what", "added", "defaults"), ADDED_UNUSED, ids=[c[0] for c in ADDED_UNUSED])
@pytest.mark.parametrize(("alert", "key"), STORED_KEYS[:3])
def test_a_field_a_release_adds_keeps_the_key_of_an_alert_that_does_not_use_it(
    alert, key, what, added, defaults
) -> None:
    assert idempotency_key({**_stored(alert), **added}, _release(**defaults)) == key, what


def test_a_sub_field_a_release_adds_to_the_stop_loss_keeps_the_key() -> None:
    alert, key = STORED_KEYS[1]
    stored = _stored(alert)
    stored["stopLoss"] = {**stored["stopLoss"], "triggerMethod": 0}
    defaults = {**DEFAULTS, "stopLoss": {**DEFAULTS["stopLoss"], "triggerMethod": 0}}
    assert idempotency_key(stored, defaults) == key
    stored["stopLoss"]["triggerMethod"] = 2  # used: another alert
    assert idempotency_key(stored, defaults) != key


@pytest.mark.parametrize(
    ("field", "value"), [("reduceOnly", True), ("routeTag", "fast"), ("outsideRthPolicy", "gtc")]
)
def test_an_alert_that_uses_the_new_field_is_another_alert(field, value) -> None:
    alert, key = STORED_KEYS[0]
    defaults = _release(reduceOnly=False, routeTag=None, outsideRthPolicy="day")
    assert idempotency_key({**_stored(alert), field: value}, defaults) != key


def test_changed_fields_of_version_1_still_change_the_key() -> None:
    alert, key = STORED_KEYS[0]
    assert idempotency_key(_stored({**alert, "quantity": 11})) != key
    assert idempotency_key(_stored({**alert, "extendedHours": True})) != key


def test_an_alert_stored_with_its_key_is_still_recognised_when_resent(client, ctx, redis_client) -> None:
    """The stored row's key is the key the release before wrote for this body, and the resend
    (read by a release that also stores a field it added) is a duplicate of it."""
    sent, key = STORED_KEYS[1]
    first = post(client, alert_body(**{"ticker": None, "quantity": None, **sent}))
    assert first.status_code == 202, first.get_json()
    (row,) = alerts(ctx)
    assert row.idempotency_key == key
    assert idempotency_key({**row.payload, "reduceOnly": False}, _release(reduceOnly=False)) == key
    again = post(client, alert_body(**{"ticker": None, "quantity": None, **sent}))
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert len(queued_jobs(redis_client)) == 1
