"""What intake refuses before a nonsense order or a leaked secret can exist (issue 8, items 5-8):
prices at or below zero, absurd or over-precise sizes, duplicate keys, secrets in other fields.
Real app on real Redis and SQLite/PostgreSQL; the stored rows, the API and the dashboard are read
back as a trader would."""

from __future__ import annotations

import json

import pytest
from app_helpers import SECRET, alert_body, alerts, get_alert, post, queued_jobs, raw_alert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import TEST_ADMIN_TOKEN

from app.webhook import intake
from core.models import AlertStatus

TOKEN = TEST_ADMIN_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _field(answer, *path):
    node = answer.get_json()["fields"]
    for part in path:
        node = node[part]
    return " ".join(node)


# ---- item 5: prices that can never be valid --------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        # the probe's STP 0: a long's stop-loss 100 % below the entry
        ({"price": 190, "stopLoss": {"percent": 100}}, ("stopLoss", "percent"), "below 100"),
        ({"price": 190, "stopLoss": {"percent": 150}}, ("stopLoss", "percent"), "below 100"),
        # the probe's LMT -1710: a short's take-profit 1000 % below the entry
        (
            {"action": "sell", "price": 190, "takeProfit": {"percent": 1000}},
            ("takeProfit", "percent"),
            "at or below 0",
        ),
        ({"action": "sell", "takeProfit": {"percent": 100}}, ("takeProfit", "percent"), "at or below 0"),
        ({"price": 5, "stopLoss": {"amount": 5}}, ("stopLoss", "amount"), "at or below 0"),
        (
            {"action": "sell", "orderType": "limit", "limitPrice": 20, "takeProfit": {"amount": 25}},
            ("takeProfit", "amount"),
            "at or below 0",
        ),
        (
            {"stopLoss": {"type": "trailing_stop", "trailPercent": 100}},
            ("stopLoss", "trailPercent"),
            "below 100",
        ),
        ({"orderType": "trailing_stop", "trailPercent": 100}, ("trailPercent",), "below 100"),
        ({"price": 0}, ("price",), "greater than 0"),
        ({"price": "1e-400"}, ("price",), "too close to 0"),
        ({"takeProfit": {"limitPrice": -5}}, ("takeProfit", "limitPrice"), "greater than 0"),
        ({"stopLoss": {"ticks": 0}}, ("stopLoss", "ticks"), "greater than 0"),
        ({"takeProfit": {"amount": -1}}, ("takeProfit", "amount"), "greater than 0"),
        # an exponent past the decimal context's limit (found by tests/app/test_openapi.py: a 500)
        ({"takeProfit": {"amount": "9e+1000000"}}, ("takeProfit", "amount"), "at most"),
    ],
)
def test_prices_that_can_never_be_valid_are_422_naming_the_field(client, redis_client, fields, path, words):
    answer = post(client, alert_body(**fields))
    assert answer.status_code == 422, answer.get_json()
    assert words in _field(answer, *path)
    assert queued_jobs(redis_client) == []


def test_exits_away_from_zero_stay_valid(client):
    # a long's take-profit may be 1000 % above; a short's stop-loss far above is its own business
    assert post(client, alert_body(price=10, takeProfit={"percent": 1000})).status_code == 202
    answer = post(
        client, alert_body(action="sell", price=10, stopLoss={"amount": 50}, takeProfit={"percent": 99})
    )
    assert answer.status_code == 202, answer.get_json()


# ---- item 6: sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"quantity": 10**12}, "quantity", "MAX_ORDER_QUANTITY (1000000)"),
        ({"quantity": "1e12"}, "quantity", "MAX_ORDER_QUANTITY"),
        ({"quantity": 1_000_001}, "quantity", "MAX_ORDER_QUANTITY"),
        ({"quantity": None, "positionSize": -2_000_000}, "positionSize", "MAX_ORDER_QUANTITY"),
        ({"quantity": "0.000000001"}, "quantity", "8 decimals"),
        ({"quantity": 1.123456789}, "quantity", "8 decimals"),
        ({"quantity": "1e-9"}, "quantity", "8 decimals"),
        ({"quantity": "1e-400"}, "quantity", "8 decimals"),
        ({"quantity": "1e-999999999"}, "quantity", "8 decimals"),
        ({"quantity": "1e999999"}, "quantity", "at most"),
        ({"quantity": "1e9999999999999999999"}, "quantity", "must be a number"),
        # found by the fuzz (tests/app/test_openapi.py): an exponent past the decimal context's
        # limit passed Decimal() and overflowed in abs(), a 500
        ({"quantity": "2e+28908732903"}, "quantity", "at most"),
        ({"quantity": None, "positionSize": "-1e+99999999"}, "positionSize", "at most"),
        ({"price": "\t.2e+28908732903\n"}, "price", "at most"),
        ({"quantity": "NaN"}, "quantity", "finite"),
        ({"quantity": "-Infinity"}, "quantity", "finite"),
        ({"quantity": None, "positionSize": "0.5000000001"}, "positionSize", "8 decimals"),
    ],
)
def test_absurd_or_over_precise_sizes_are_422(client, redis_client, fields, field, words):
    answer = post(client, alert_body(**fields))
    assert answer.status_code == 422, answer.get_json()
    assert words in _field(answer, field)
    assert queued_jobs(redis_client) == []


def test_sizes_ib_takes_are_accepted_exactly(client, ctx):
    for quantity, stored in [(1_000_000, 1_000_000), ("0.12345678", 0.12345678), ("1.50", 1.5)]:
        answer = post(client, alert_body(quantity=quantity, id=f"q{quantity}"))
        assert answer.status_code == 202, answer.get_json()
        assert get_alert(ctx, answer.get_json()["alert_id"]).payload["quantity"] == stored
    # a dollar amount is not a size: the ceiling does not apply to it
    dollars = post(client, alert_body(quantity=5_000_000, quantityType="dollar_amount"))
    assert dollars.status_code == 202


def test_max_order_quantity_is_a_setting(make_app):
    client = make_app(MAX_ORDER_QUANTITY="10").test_client()
    assert post(client, alert_body(quantity=10)).status_code == 202
    answer = post(client, alert_body(quantity=11))
    assert answer.status_code == 422 and "MAX_ORDER_QUANTITY (10)" in _field(answer, "quantity")
    big = make_app(MAX_ORDER_QUANTITY="1000000000000").test_client()
    # 16 significant digits would not survive the float that carries the size to IB
    answer = post(big, alert_body(quantity="12345678.12345678"))
    assert answer.status_code == 422 and "15 significant digits" in _field(answer, "quantity")


@pytest.mark.parametrize("value", ["0", "-1", "lots", "1.000000001", "1e13"])
def test_bad_max_order_quantity_stops_the_start(base_env, value):
    from config.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="MAX_ORDER_QUANTITY"):
        Settings.from_mapping(dict(base_env, MAX_ORDER_QUANTITY=value))


# ---- item 7: duplicate keys and the body as received ------------------------------------------


def _masked(body: str) -> str:
    return body.replace(SECRET, "***")


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ('"quantity": 1, "quantity": 1000', ("quantity",)),
        ('"quantity": 1, "takeProfit": {"percent": 1, "percent": 50}', ("takeProfit", "percent")),
        (
            '"quantity": 1, "stopLoss": {"stopPrice": 90, "type": "stop", "stopPrice": 1}',
            ("stopLoss", "stopPrice"),
        ),
        ('"quantity": 1, "extras": {"legs": [{"a": 1, "a": 2}]}', ("extras", "legs", "0", "a")),
        ('"quantity": 1, "action": "sell"', ("action",)),
    ],
)
def test_duplicate_keys_are_422_naming_the_key_and_stored_as_sent(client, ctx, redis_client, extra, path):
    raw = raw_alert(extra)
    answer = post(client, raw)
    assert answer.status_code == 422, answer.get_json()
    assert "more than once" in _field(answer, *path)
    assert queued_jobs(redis_client) == []
    stored = get_alert(ctx, answer.get_json()["alert_id"])
    assert stored.status == AlertStatus.INVALID and "more than once" in stored.reason
    assert stored.raw_body == _masked(raw)  # both values visible, exactly as sent


def test_duplicate_secret_key_is_refused_and_both_values_masked(client, ctx):
    raw = (
        '{"secret": "some-other-guess-value", "secret": "' + SECRET + '", "ticker": "AAPL", "action": "buy"}'
    )
    answer = post(client, raw)
    assert answer.status_code == 422 and "more than once" in _field(answer, "secret")
    stored = get_alert(ctx, answer.get_json()["alert_id"]).raw_body
    assert stored == '{"secret": "***", "secret": "***", "ticker": "AAPL", "action": "buy"}'


def test_valid_body_is_stored_byte_for_byte_but_the_secret(client, ctx):
    raw = (
        '{ "ticker":"NASDAQ:AAPL",\n  "quantity" : 1.50, "action":"buy", "secret" :"'
        + SECRET
        + '", "price":1.0e2}'
    )
    answer = post(client, raw, content_type="text/plain")
    assert answer.status_code == 202, answer.get_json()
    stored = get_alert(ctx, answer.get_json()["alert_id"]).raw_body
    assert (
        stored
        == '{ "ticker":"NASDAQ:AAPL",\n  "quantity" : 1.50, "action":"buy", "secret" :"***", "price":1.0e2}'
    )


@pytest.mark.parametrize(
    "value",
    ['["an-old-password", {"k": "v"}]', '{"pw": "an-old-password"}', "123456789", "null"],
)
@pytest.mark.parametrize("key", ['"secret"', '"\\u0073ecret"'])
def test_a_secret_that_is_no_string_is_422_and_stored_masked_whole(client, ctx, redis_client, key, value):
    """Found by the fuzz (tests/app/test_openapi.py): with the header's secret, a list in the body's
    ``secret`` was accepted and stored as sent, its strings unmasked (none was a configured secret)."""
    raw = '{"ticker": "AAPL", "action": "buy", ' + key + ": " + value + ', "quantity": 1}'
    answer = post(client, raw, **{"X-Webhook-Secret": SECRET})
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["fields"] == {"secret": [intake.SECRET_NOT_TEXT]}
    stored = get_alert(ctx, answer.get_json()["alert_id"]).raw_body
    assert stored == '{"ticker": "AAPL", "action": "buy", ' + key + ': "***", "quantity": 1}'
    assert queued_jobs(redis_client) == []


def test_escaped_spelling_of_the_secret_is_masked_too(client, ctx):
    escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET)
    raw = '{"secret": "' + escaped + '", "ticker": "AAPL", "action": "buy", "quantity": 1}'
    answer = post(client, raw)
    assert answer.status_code == 202
    stored = get_alert(ctx, answer.get_json()["alert_id"]).raw_body
    assert stored == '{"secret": "***", "ticker": "AAPL", "action": "buy", "quantity": 1}'


def test_api_and_dashboard_show_the_body_as_sent(client):
    raw = raw_alert('"quantity": 1, "quantity": 1000')
    alert_id = post(client, raw).get_json()["alert_id"]
    detail = client.get(f"/api/alerts/{alert_id}", headers=AUTH).get_json()
    assert detail["raw_body"] == _masked(raw)
    assert detail["errors"]["quantity"] and detail["status"] == "invalid"
    assert client.post("/login", data={"token": TOKEN}).status_code == 302
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert (
        "&#34;quantity&#34;: 1, &#34;quantity&#34;: 1000" in page or '"quantity": 1, "quantity": 1000' in page
    )
    assert SECRET not in page


# ---- item 8: the secret in any other field ------------------------------------------------------


def _no_secret_anywhere(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret.lower() not in text.lower()


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"strategy": SECRET}, ("strategy",)),
        ({"account": SECRET}, ("account",)),
        ({"ticker": SECRET}, ("ticker",)),  # was accepted and sent to IB (upper-cased)
        ({"ticker": "NASDAQ:" + SECRET.upper()}, ("ticker",)),
        ({"id": "tv-" + SECRET}, ("id",)),
        ({"extras": {"note": f"my secret is {SECRET}!"}}, ("extras", "note")),
        ({"extras": {SECRET: 1}}, ("extras", "***")),
        ({"extras": {"secret": SECRET}}, ("extras", "secret")),  # a nested "secret" is a field
        ({"strategy": SECRET, "action": "buyy"}, ("strategy",)),  # invalid for other reasons too
        ({"extras": {"admin": TOKEN}}, ("extras", "admin")),  # any configured secret
    ],
)
def test_a_field_holding_the_secret_is_422_and_never_echoed_stored_or_shown(
    client, ctx, redis_client, fields, path
):
    answer = post(client, alert_body(**fields))
    assert answer.status_code == 422, answer.get_json()
    assert "holds the secret" in _field(answer, *path)
    _no_secret_anywhere(answer.get_data(as_text=True), SECRET, TOKEN)
    assert queued_jobs(redis_client) == []
    row = get_alert(ctx, answer.get_json()["alert_id"])
    stored = [row.strategy, row.account, row.ticker, row.action, row.reason, row.raw_body, json.dumps(row.errors),
              json.dumps(row.payload)]  # fmt: skip
    _no_secret_anywhere(" ".join(str(s) for s in stored), SECRET, TOKEN)
    alert_id = answer.get_json()["alert_id"]
    _no_secret_anywhere(
        client.get(f"/api/alerts/{alert_id}", headers=AUTH).get_data(as_text=True), SECRET, TOKEN
    )
    _no_secret_anywhere(client.get("/api/alerts", headers=AUTH).get_data(as_text=True), SECRET, TOKEN)


def test_secret_in_header_and_in_a_nested_secret_key_is_refused(client):
    answer = post(client, alert_body(secret=None, extras={"secret": SECRET}), **{"X-Webhook-Secret": SECRET})
    assert answer.status_code == 422 and "holds the secret" in _field(answer, "extras", "secret")


def test_invalid_alert_columns_are_masked_in_lists(client, ctx):
    # a strategy name that merely contains the secret, on an alert that fails elsewhere too
    answer = post(client, alert_body(strategy=f"x-{SECRET}-y", quantity=0))
    assert answer.status_code == 422
    row = get_alert(ctx, answer.get_json()["alert_id"])
    assert row.strategy == "x-***-y"
    assert client.post("/login", data={"token": TOKEN}).status_code == 302
    _no_secret_anywhere(client.get("/").get_data(as_text=True), SECRET)


def test_a_strategy_secret_in_another_field_is_refused(make_app):
    strategy_secret = "strategy-secret-abcdefghijkl"
    client = make_app(STRATEGY_SECRETS=f"breakout={strategy_secret}").test_client()
    answer = post(client, alert_body(strategy="breakout", extras={"s": strategy_secret.upper()}))
    assert answer.status_code == 422 and "holds the secret" in _field(answer, "extras", "s")
    _no_secret_anywhere(answer.get_data(as_text=True), strategy_secret)


def test_placeholder_holding_the_secret_is_not_echoed_by_the_400(client, ctx):
    raw = raw_alert('"quantity": {{' + SECRET + "}}")
    answer = post(client, raw, content_type="text/plain")
    assert answer.status_code == 400
    _no_secret_anywhere(answer.get_data(as_text=True), SECRET)
    row = get_alert(ctx, answer.get_json()["alert_id"])
    _no_secret_anywhere(f"{row.reason} {row.raw_body} {json.dumps(row.errors)}", SECRET)


# ---- fuzz: duplicate keys at any depth never make a 5xx ---------------------------------------

_keys = st.sampled_from(["quantity", "ticker", "action", "secret", "takeProfit", "percent", "extras", "a"])
_leaf = st.one_of(
    st.integers(-5, 10**13), st.sampled_from(['"buy"', '"AAPL"', f'"{SECRET}"', "1e-400", '"x"', "null"])
)


def _object(children):
    pairs = st.lists(st.tuples(_keys, children), max_size=6)
    return pairs.map(lambda ps: "{" + ", ".join(f'"{k}": {v}' for k, v in ps) + "}")


_value = st.recursive(_leaf.map(str), lambda inner: _object(inner) | st.lists(inner, max_size=3).map(
    lambda items: "[" + ", ".join(items) + "]"), max_leaves=15)  # fmt: skip
_bodies = st.tuples(st.lists(st.tuples(_keys, _value), max_size=8), st.booleans()).map(
    lambda t: "{" + ", ".join([f'"secret": "{SECRET}"'] * t[1] + [f'"{k}": {v}' for k, v in t[0]]) + "}"
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_duplicate_keys_anywhere_never_5xx_nor_leak(app, body):
    answer = app.test_client().post("/webhook", data=body, content_type="application/json")
    assert answer.status_code < 500, answer.get_data(as_text=True)
    assert answer.is_json
    assert SECRET not in answer.get_data(as_text=True)
    if answer.status_code == 202:
        assert not _has_duplicates(body)


def _has_duplicates(body: str) -> bool:
    found = []

    def hook(pairs):
        if len({k for k, _ in pairs}) != len(pairs):
            found.append(pairs)
        return dict(pairs)

    json.loads(body, object_pairs_hook=hook)
    return bool(found)


def test_a_repeated_key_holding_the_secret_is_masked_in_every_copy(client, ctx):
    post(client, raw_alert('"quantity": 1, "extras": {"k": "' + SECRET + '", "k": 2}'))
    for row in alerts(ctx):
        _no_secret_anywhere(f"{row.raw_body} {row.reason} {json.dumps(row.errors)} {row.strategy}", SECRET)
