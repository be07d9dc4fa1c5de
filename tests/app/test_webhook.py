"""POST /webhook against real Redis and real SQLite/PostgreSQL (the ``client`` fixture runs each
test on both databases)."""

from __future__ import annotations

import json
import threading

import pytest
from app_helpers import SECRET, alert_body, alerts, get_alert, post, queued_jobs, raw_alert
from sqlalchemy import text

from core.enqueue import alert_job_id
from core.keys import EXECUTE_ALERT_JOB
from core.models import AlertStatus


def test_valid_alert_is_stored_queued_and_enqueued_once(client, ctx, redis_client):
    answer = post(client, alert_body(quantity="10", orderType="LIMIT", limitPrice="187.5"))
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["status"] == "queued"
    alert = get_alert(ctx, body["alert_id"])
    assert alert.status is AlertStatus.QUEUED  # typed when read back, not a bare string
    assert alert.queue_name == "tv2ib:orders:default"
    assert alert.payload["ticker"] == "AAPL" and alert.payload["exchange"] == "NASDAQ"
    assert alert.payload["quantity"] == 10 and alert.payload["limitPrice"] == 187.5
    assert alert.payload["orderType"] == "limit" and alert.payload["quantityType"] == "fixed_quantity"
    jobs = queued_jobs(redis_client)
    assert [j.id for j in jobs] == [alert_job_id(alert.id)]
    assert jobs[0].func_name == EXECUTE_ALERT_JOB and jobs[0].args == (alert.id,)
    assert [e.status for e in _events(ctx, alert.id)] == ["received", "queued"]


def _events(ctx, alert_id):
    from core.models import AlertEvent

    with ctx.sessions() as session:
        return list(session.query(AlertEvent).filter_by(alert_id=alert_id).order_by(AlertEvent.id))


def test_account_routes_to_its_own_queue(client, redis_client):
    answer = post(client, alert_body(account="DU123456"))
    assert answer.status_code == 202
    assert [j.args for j in queued_jobs(redis_client, "DU123456")] == [(answer.get_json()["alert_id"],)]
    assert queued_jobs(redis_client) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_tradingview_text_plain_and_curl_content_types(client, content_type):
    assert post(client, alert_body(), content_type=content_type).status_code == 202


def test_secret_in_header_instead_of_body(client, ctx):
    body = alert_body(secret=None)
    answer = post(client, body, **{"X-Webhook-Secret": SECRET})
    assert answer.status_code == 202
    assert SECRET not in get_alert(ctx, answer.get_json()["alert_id"]).raw_body


@pytest.mark.parametrize("secret", [None, "", "wrong-secret-0123456789", 12345])
def test_bad_or_missing_secret_is_401_and_reveals_nothing(client, ctx, secret):
    answer = post(client, alert_body(secret=secret, ticker="BOGUS:{{ticker}}", unknownField=1))
    assert answer.status_code == 401
    assert answer.get_json() == {"error": "unauthorized", "message": "missing or wrong secret"}
    assert alerts(ctx) == []


def test_per_strategy_secret_opens_only_its_strategy(make_app):
    strategy_secret = "strategy-secret-abcdefghijkl"
    client = make_app(STRATEGY_SECRETS=f"breakout={strategy_secret}").test_client()
    assert post(client, alert_body(secret=strategy_secret, strategy="breakout")).status_code == 202
    assert post(client, alert_body(secret=strategy_secret, strategy="meanrev")).status_code == 401
    assert post(client, alert_body(secret=strategy_secret)).status_code == 401
    # the global secret still opens every strategy
    assert post(client, alert_body(strategy="breakout", id="g1")).status_code == 202


def test_unknown_field_gets_did_you_mean_hint(client, ctx):
    answer = post(client, alert_body(takeprofit={"percent": 2}, stopLoss={"stopprice": 1}))
    assert answer.status_code == 422
    fields = answer.get_json()["fields"]
    assert "did you mean 'takeProfit'" in fields["takeprofit"][0]
    assert "did you mean 'stopPrice'" in fields["stopLoss"]["stopprice"][0]
    stored = get_alert(ctx, answer.get_json()["alert_id"])
    assert stored.status == AlertStatus.INVALID and "takeprofit" in stored.errors
    assert "takeprofit" in stored.reason


def test_unfilled_placeholder_is_named(client):
    answer = post(client, alert_body(quantity="{{strategy.order.contracts}}"))
    assert answer.status_code == 422
    message = answer.get_json()["fields"]["quantity"][0]
    assert "the placeholder {{strategy.order.contracts}} was not filled in" in message


def test_unquoted_placeholder_breaks_json_and_is_named_in_the_400(client, ctx):
    raw = raw_alert('"quantity": {{strategy.order.contracts}}')
    answer = post(client, raw, content_type="text/plain")
    assert answer.status_code == 400
    assert "{{strategy.order.contracts}}" in answer.get_json()["message"]
    stored = get_alert(ctx, answer.get_json()["alert_id"])  # it carried the secret: stored as invalid
    assert stored.status == AlertStatus.INVALID
    assert SECRET not in stored.raw_body and "***" in stored.raw_body


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"orderType": "limit"}, "limitPrice"),
        ({"orderType": "stop_limit", "stopPrice": 10}, "limitPrice"),
        ({"orderType": "stop"}, "stopPrice"),
        ({"orderType": "trailing_stop", "trailAmount": 1, "trailPercent": 1}, "trailAmount"),
        ({"takeProfit": {"limitPrice": 200, "percent": 2}}, "takeProfit"),
        ({"takeProfit": {}}, "takeProfit"),
        ({"stopLoss": {"type": "stop_limit", "stopPrice": 90}}, "stopLoss"),
        ({"stopLoss": {"type": "trailing_stop", "stopPrice": 90}}, "stopLoss"),
        ({"action": "hold"}, "action"),
        ({"action": None}, "action"),
        ({"ticker": None}, "ticker"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": -5}, "quantity"),
        ({"quantity": "ten"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": 1e300}, "quantity"),
        ({"quantity": 10**40}, "quantity"),
        ({"price": -1}, "price"),
        ({"quantityType": "percent_of_equity", "quantity": 150}, "quantity"),
        ({"timeInForce": "forever"}, "timeInForce"),
        ({"time": "yesterday"}, "time"),
        ({"extendedHours": "maybe"}, "extendedHours"),
        ({"extras": "not an object"}, "extras"),
        ({"account": "DU 1; rm -rf"}, "account"),
    ],
)
def test_field_rules_give_422_naming_the_field(client, fields, bad_field):
    body = alert_body()
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    answer = post(client, body)
    assert answer.status_code == 422, answer.get_json()
    assert bad_field in answer.get_json()["fields"]


def test_normalisation_strings_case_prefix_and_aliases(client, ctx):
    answer = post(
        client,
        alert_body(
            ticker="cme_mini:es1!",
            action="SELL",
            sentiment="Short",
            positionSize="-2",
            quantity=None,
            orderType="Stop_Limit",
            stopPrice="4500.25",
            limitPrice=4499.75,
            takeProfit={"ticks": "8"},
            stopLoss={"type": "TRAILING_STOP", "trailPercent": "1.5"},
            timeInForce="GTC",
            extendedHours="true",
            signalPrice="4501",
            time="2026-11-22T07:35:25Z",
            extras={"note": "é ✓"},
        ),
    )
    assert answer.status_code == 202, answer.get_json()
    payload = get_alert(ctx, answer.get_json()["alert_id"]).payload
    assert payload["ticker"] == "ES1!" and payload["exchange"] == "CME_MINI"
    assert payload["action"] == "sell" and payload["sentiment"] == "bearish"
    assert payload["positionSize"] == -2 and payload["quantity"] is None
    assert payload["stopPrice"] == 4500.25 and payload["limitPrice"] == 4499.75
    assert payload["takeProfit"] == {"ticks": 8}
    assert payload["stopLoss"] == {"type": "trailing_stop", "trailPercent": 1.5}
    assert payload["timeInForce"] == "gtc" and payload["extendedHours"] is True
    assert payload["price"] == 4501 and payload["time"] == "2026-11-22T07:35:25Z"
    assert payload["extras"] == {"note": "é ✓"} and "secret" not in payload


# ---- bad input of every kind (the list) ------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"\xff\xfe\x00garbage", b"[1, 2]", b'"a string"', b"42", b"null", b"true", b"{"],
)
def test_not_a_json_object_is_400(client, ctx, raw):
    answer = post(client, raw)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "bad_request"
    assert alerts(ctx) == []  # no proof of a secret: nothing stored


def test_non_object_with_header_secret_is_stored_as_invalid(client, ctx):
    answer = post(client, b"\xff\xfe not utf-8", **{"X-Webhook-Secret": SECRET})
    assert answer.status_code == 400
    stored = get_alert(ctx, answer.get_json()["alert_id"])
    assert stored.status == AlertStatus.INVALID and "UTF-8" in stored.reason


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(client, literal):
    raw = raw_alert(f'"quantity": {literal}')
    assert post(client, raw).status_code == 400


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\ud83d", "\\udc00\\ud800"])
def test_lone_surrogate_escapes_are_400_not_500(client, escape):
    answer = post(client, raw_alert('"strategy": "' + escape + '"'))
    assert answer.status_code == 400 and "surrogate" in answer.get_json()["message"]


def test_surrogate_pair_escape_is_a_normal_character(client, ctx):
    answer = post(client, raw_alert('"extras": {"mood": "\\ud83d\\ude00"}'))
    assert answer.status_code == 202
    assert get_alert(ctx, answer.get_json()["alert_id"]).payload["extras"] == {"mood": "\U0001f600"}


def test_overflowing_float_literal_is_422(client):
    raw = raw_alert('"price": 1e400')
    answer = post(client, raw)
    assert answer.status_code == 422 and "price" in answer.get_json()["fields"]


def test_ten_thousand_deep_nesting_is_400(client):
    raw = raw_alert('"extras": ' + "[" * 10_000 + "]" * 10_000)
    assert post(client, raw).status_code == 400


def test_moderately_deep_nesting_in_extras_is_422(client):
    raw = raw_alert('"extras": {"a": ' + "[" * 200 + "1" + "]" * 200 + "}")
    answer = post(client, raw)
    assert answer.status_code == 422 and "extras" in answer.get_json()["fields"]


def _padded(size: int) -> bytes:
    body = alert_body(extras={"pad": ""})
    base = len(json.dumps(body).encode())
    body["extras"]["pad"] = "x" * (size - base)
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def test_63_kib_body_is_accepted(client):
    assert post(client, _padded(63 * 1024)).status_code == 202


def test_65_kib_body_is_413_before_reading(client, ctx):
    answer = post(client, _padded(65 * 1024))
    assert answer.status_code == 413
    assert answer.get_json()["error"] == "payload_too_large"
    assert alerts(ctx) == []


@pytest.mark.parametrize(
    "ticker", ["ÄPFEL", "苹果", "AAPL\u0000", "AAPL'; DROP TABLE alerts;--", "' OR 1=1 --", "", "A" * 40]
)
def test_unicode_and_sql_looking_tickers_are_422_and_stored_safely(client, ctx, ticker):
    answer = post(client, alert_body(ticker=ticker))
    assert answer.status_code == 422
    assert "ticker" in answer.get_json()["fields"]
    stored = get_alert(ctx, answer.get_json()["alert_id"])
    assert json.loads(stored.raw_body)["ticker"] == ticker  # kept verbatim for the trader
    with ctx.engine.connect() as conn:  # and the table is still there
        assert conn.execute(text("SELECT count(*) FROM alerts")).scalar() >= 1


@pytest.mark.parametrize("ticker", ["NASDAQ\n:AAPL", "NYSE\n:IBM"])
def test_a_newline_inside_the_symbol_is_422(client, ticker):
    # "$" in a pattern also matches before a trailing newline; the exchange part must not pass
    answer = post(client, alert_body(ticker=ticker))
    assert answer.status_code == 422, answer.get_json()
    assert "ticker" in answer.get_json()["fields"]


@pytest.mark.parametrize(
    "content_type",
    ["application/xml", "multipart/form-data; boundary=x", "image/png", "application/octet-stream"],
)
def test_wrong_content_types_are_415(client, ctx, content_type):
    answer = post(client, alert_body(), content_type=content_type)
    assert answer.status_code == 415
    assert alerts(ctx) == []


def test_get_is_405_json(client):
    answer = client.get("/webhook")
    assert answer.status_code == 405 and answer.get_json()["error"] == "method_not_allowed"
    # the methods that are allowed, as RFC 9110 asks (found by schemathesis: the JSON answer had lost it)
    assert set(answer.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}  # werkzeug's order is a set's
    assert answer.mimetype == "application/json"
    answer = client.open("/api/status", method="TRACE")
    assert answer.status_code == 405 and set(answer.headers["Allow"].split(", ")) == {
        "GET",
        "HEAD",
        "OPTIONS",
    }


# ---- dedup ---------------------------------------------------------------------------------------


def test_resent_alert_is_a_duplicate_recorded_and_not_enqueued(client, ctx, redis_client):
    first = post(client, alert_body(time="2026-11-22T07:35:25Z"))
    again = post(client, alert_body(time="2026-11-22T07:35:25Z"))
    assert first.status_code == 202
    assert again.status_code == 200
    first_id = first.get_json()["alert_id"]
    assert again.get_json() == {"alert_id": first_id, "status": "queued", "duplicate": True}
    rows = alerts(ctx)
    assert len(rows) == 2
    duplicate = next(r for r in rows if r.id != first_id)
    assert duplicate.status == AlertStatus.DUPLICATE and duplicate.duplicate_of == first_id
    assert len(queued_jobs(redis_client)) == 1


def test_id_field_is_the_idempotency_key(client, redis_client):
    first = post(client, alert_body(id="order-77", quantity=1))
    second = post(client, alert_body(id="order-77", quantity=2))  # different body, same id
    third = post(client, alert_body(id="order-78", quantity=2))
    assert first.status_code == 202 and second.status_code == 200 and third.status_code == 202
    assert second.get_json()["alert_id"] == first.get_json()["alert_id"]
    assert len(queued_jobs(redis_client)) == 2


def test_dedup_window_expires(make_app, redis_client):
    import time

    client = make_app(DEDUP_WINDOW_SECONDS="0.3").test_client()
    first = post(client, alert_body())
    time.sleep(0.4)
    second = post(client, alert_body())
    assert first.status_code == 202 and second.status_code == 202
    assert first.get_json()["alert_id"] != second.get_json()["alert_id"]
    assert len(queued_jobs(redis_client)) == 2


def test_identical_requests_at_the_same_instant_enqueue_once(app, ctx, redis_client):
    barrier = threading.Barrier(8)
    answers = []

    def send():
        client = app.test_client()
        barrier.wait()
        answers.append(post(client, alert_body(id="same-instant")).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == [200] * 7 + [202]
    assert len(queued_jobs(redis_client)) == 1
    statuses = sorted(r.status for r in alerts(ctx))
    assert statuses == ["duplicate"] * 7 + ["queued"]


def test_invalid_alerts_are_not_deduplicated_or_enqueued(client, redis_client):
    assert post(client, alert_body(quantity=0)).status_code == 422
    assert post(client, alert_body(quantity=0)).status_code == 422
    assert queued_jobs(redis_client) == []


def test_thousands_of_unknown_fields_are_reported_briefly(client):
    body = alert_body()
    body.update({f"field{i}": i for i in range(3000)})
    body["k" * 5000] = 1
    answer = post(client, body)
    assert answer.status_code == 422
    fields = answer.get_json()["fields"]
    assert len(fields) <= 22 and "more unknown fields" in fields["_unknown"][0]


def test_previous_market_position_is_validated_and_stored(client, ctx):
    answer = post(client, alert_body(prevMarketPosition="Long", prevMarketPositionSize="3"))
    assert answer.status_code == 202, answer.get_json()
    payload = get_alert(ctx, answer.get_json()["alert_id"]).payload
    assert payload["prevMarketPosition"] == "long" and payload["prevMarketPositionSize"] == 3
    flat = post(client, alert_body(prevMarketPosition="flat", prevMarketPositionSize=0, id="flat"))
    assert get_alert(ctx, flat.get_json()["alert_id"]).payload["prevMarketPositionSize"] == 0
    # not given: present as null, like every other payload key
    plain = get_alert(ctx, post(client, alert_body(id="plain")).get_json()["alert_id"]).payload
    assert plain["prevMarketPosition"] is None and plain["prevMarketPositionSize"] is None


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"prevMarketPosition": "sideways"}, "prevMarketPosition", "must be one of long, short, flat"),
        ({"prevMarketPositionSize": -1}, "prevMarketPositionSize", "must be at least 0"),
        ({"prevMarketPositionSize": "many"}, "prevMarketPositionSize", "must be a number"),
        ({"prev_market_position": "long"}, "prev_market_position", "did you mean 'prevMarketPosition'"),
    ],
)
def test_previous_market_position_refusals_name_the_field(client, redis_client, fields, field, words):
    answer = post(client, alert_body(**fields))
    assert answer.status_code == 422
    assert words in answer.get_json()["fields"][field][0]
    assert queued_jobs(redis_client) == []
