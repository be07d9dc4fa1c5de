"""Rate limits, address allowlist with trusted proxies, database outages, logging and metrics."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from app_helpers import SECRET, alert_body, alerts, post, settle
from sqlalchemy import text

from app.resources import get_ctx, resources
from app.webhook.store import make_fast_engine
from core.db import make_engine

TV_IP = "52.89.214.238"


def _burst(app, bodies, address="10.1.1.1", threads=8):
    """POST every body at once from one client address (``threads`` concurrent clients)."""

    def send(body):
        client = app.test_client()
        return client.post("/webhook", json=body, environ_base={"REMOTE_ADDR": address})

    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(send, bodies))
    settle(app)
    return answers


def test_a_bar_close_burst_of_valid_alerts_from_one_address_is_all_stored(make_app):
    # the defaults (RATE_LIMIT 120/minute used to refuse 180 of these 300 with 429, never stored)
    app = make_app(RATE_LIMIT="", AUTH_FAILURE_LIMIT="", AUTHENTICATED_RATE_LIMIT="")
    answers = _burst(app, [alert_body(id=f"bar-close-{i}", ticker=f"T{i}") for i in range(300)])
    assert [a.status_code for a in answers] == [202] * 300
    stored = alerts(get_ctx(app))
    assert len(stored) == 300 and {a.status for a in stored} == {"queued"}


def test_rate_limit_counts_only_requests_without_a_valid_secret(make_app, one_limit_window):
    client = make_app(RATE_LIMIT="3/minute").test_client()
    codes = [post(client, alert_body(secret=None, id=f"r{i}")).status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    answer = post(client, alert_body(secret=None, id="r9"))
    assert answer.get_json()["error"] == "rate_limited" and answer.headers["Retry-After"] == "60"
    assert "without a valid secret" in answer.get_json()["message"]
    # the same address's valid alerts are not refused by it
    assert [post(client, alert_body(id=f"v{i}")).status_code for i in range(5)] == [202] * 5
    # another address has its own allowance
    other = client.post("/webhook", json=alert_body(secret=None), environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 401


def test_authenticated_rate_limit_is_the_ceiling_for_valid_alerts(make_app):
    client = make_app(AUTHENTICATED_RATE_LIMIT="3/minute").test_client()
    codes = [post(client, alert_body(id=f"r{i}")).status_code for i in range(4)]
    assert codes == [202, 202, 202, 429]
    answer = post(client, alert_body(id="r9"))
    assert answer.get_json()["error"] == "rate_limited" and answer.headers["Retry-After"] == "60"
    assert answer.get_json()["message"] == "too many alerts from this address; the limit is 3 per 1 minute"
    other = client.post("/webhook", json=alert_body(id="r10"), environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 202


def test_wrong_secrets_lock_out_guessing_but_never_a_valid_secret(make_app, one_limit_window):
    app = make_app(AUTH_FAILURE_LIMIT="")  # the default, 10/minute
    client = app.test_client()
    wrong = alert_body(secret="wrong-wrong-wrong-wrong")
    assert [post(client, wrong).status_code for _ in range(10)] == [401] * 10
    assert post(client, wrong).status_code == 429
    assert post(client, alert_body(secret=None)).status_code == 429  # a missing secret is a failure too
    # the trader sharing that address (TradingView's senders, a proxy) is not switched off
    answer = post(client, alert_body(id="after-lockout"))
    assert answer.status_code == 202
    assert [a.id for a in alerts(get_ctx(app))] == [answer.get_json()["alert_id"]]
    assert post(client, wrong).status_code == 429
    other = client.post("/webhook", json=wrong, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 401


def test_a_burst_of_wrong_secrets_mixed_into_valid_alerts_refuses_no_valid_one(make_app, one_limit_window):
    app = make_app(RATE_LIMIT="", AUTH_FAILURE_LIMIT="")
    bodies = [alert_body(id=f"mix-{i}", secret=None if i % 3 == 0 else SECRET) for i in range(150)]
    answers = _burst(app, bodies)
    valid = [a.status_code for body, a in zip(bodies, answers, strict=True) if "secret" in body]
    assert valid == [202] * 100
    refused = [a.status_code for body, a in zip(bodies, answers, strict=True) if "secret" not in body]
    assert set(refused) <= {401, 429} and refused.count(401) == 10


def test_limiter_fails_open_when_redis_is_down(make_app):
    client = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATE_LIMIT="1/minute").test_client()
    codes = [post(client, alert_body(id=f"f{i}")).status_code for i in range(3)]
    assert codes == [202, 202, 202]


def test_tradingview_only_refuses_other_addresses(make_app):
    client = make_app(TRADINGVIEW_IPS_ONLY="true").test_client()
    answer = post(client, alert_body())
    assert answer.status_code == 403
    assert answer.get_json() == {
        "error": "forbidden",
        "message": "not sent by TradingView: TRADINGVIEW_IPS_ONLY accepts alerts only from TradingView's "
        "addresses (34.212.75.30, 52.32.178.7, 52.89.214.238, 54.218.53.128), and this request came from "
        "'127.0.0.1' (behind a reverse proxy, TRUSTED_PROXIES must count it)",
    }
    ok = client.post("/webhook", json=alert_body(), environ_base={"REMOTE_ADDR": TV_IP})
    assert ok.status_code == 202


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        (f"{TV_IP}", 202),  # the proxy saw TradingView
        (f"6.6.6.6, {TV_IP}", 202),  # the proxy appends the real peer on the right
        (f"{TV_IP}, 6.6.6.6", 403),  # forged on the left: the proxy saw 6.6.6.6
        (f"{TV_IP}, {TV_IP}, 6.6.6.6", 403),
    ],
)
def test_trusted_proxy_uses_the_rightmost_hop_so_forging_gains_nothing(make_app, forwarded, expected):
    client = make_app(TRADINGVIEW_IPS_ONLY="true", TRUSTED_PROXIES="1").test_client()
    answer = client.post("/webhook", json=alert_body(), headers={"X-Forwarded-For": forwarded})
    assert answer.status_code == expected


def test_two_trusted_proxies_take_the_second_hop_from_the_right(make_app):
    client = make_app(TRADINGVIEW_IPS_ONLY="true", TRUSTED_PROXIES="2").test_client()
    ok = client.post(
        "/webhook", json=alert_body(), headers={"X-Forwarded-For": f"6.6.6.6, {TV_IP}, 10.0.0.2"}
    )
    forged = client.post(
        "/webhook", json=alert_body(), headers={"X-Forwarded-For": f"{TV_IP}, 6.6.6.6, 10.0.0.2"}
    )
    assert ok.status_code == 202 and forged.status_code == 403


def test_without_trusted_proxies_x_forwarded_for_is_ignored(make_app):
    client = make_app(TRADINGVIEW_IPS_ONLY="true").test_client()
    answer = client.post("/webhook", json=alert_body(), headers={"X-Forwarded-For": TV_IP})
    assert answer.status_code == 403


def test_database_down_is_503_and_recovers(app, ctx):
    client = app.test_client()
    good_engine = ctx.engine
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    ctx.engine = dead
    intake = resources(app).intake
    good_fast = intake.fast_engine
    if good_fast is not None:  # PostgreSQL's one-statement path has its own pool
        intake.fast_engine = make_fast_engine(dead)
    try:
        answer = post(client, alert_body())
        assert answer.status_code == 503
        assert answer.get_json()["error"] == "unavailable" and answer.headers["Retry-After"] == "5"
        invalid = post(client, alert_body(quantity=0))  # storing an invalid alert needs the database too
        assert invalid.status_code == 503
    finally:
        ctx.engine = good_engine
        if good_fast is not None:
            intake.fast_engine.dispose()
            intake.fast_engine = good_fast
        dead.dispose()
    assert post(client, alert_body()).status_code == 202


def test_database_connections_killed_recover_without_a_failed_request(make_app, app_pg_url):
    app = make_app(DATABASE_URL=app_pg_url)
    client = app.test_client()
    assert post(client, alert_body(id="k1")).status_code == 202
    ctx = get_ctx(app)
    with ctx.engine.connect() as conn:
        name = conn.execute(text("SELECT current_database()")).scalar()
    admin = make_engine(app_pg_url)
    with admin.begin() as conn:  # what a PostgreSQL restart does to every pooled connection
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
    admin.dispose()
    assert post(client, alert_body(id="k2")).status_code == 202
    assert sorted(a.status for a in alerts(ctx)) == ["queued", "queued"]  # one row each, no retry twin


def test_a_restart_that_dropped_every_pooled_connection_costs_no_failed_request(make_app, app_pg_url):
    """Found by the chaos run (a 503 seconds after PostgreSQL came back): intake's fast path held
    several pooled connections, all dropped by the restart, and its one retry met a second dead
    one. A dropped connection now discards every connection the pool held before it."""
    app = make_app(DATABASE_URL=app_pg_url)
    client = app.test_client()
    assert post(client, alert_body(id="p1")).status_code == 202
    ctx = get_ctx(app)
    fast = resources(app).intake.fast_engine
    held = [fast.raw_connection() for _ in range(3)]  # three connections in the pool, as under load
    for raw in held:
        raw.close()
    admin = make_engine(app_pg_url)
    with admin.begin() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND pid <> pg_backend_pid()")
        )  # fmt: skip
    admin.dispose()
    assert [post(client, alert_body(id=f"p{i}")).status_code for i in range(2, 6)] == [202] * 4
    assert sorted(a.status for a in alerts(ctx)) == ["queued"] * 5


def test_one_log_line_per_webhook_and_never_the_secret(client, ctx, caplog):
    caplog.set_level(logging.DEBUG)
    post(client, alert_body())
    post(client, alert_body(secret=None), **{"X-Webhook-Secret": SECRET})
    post(client, alert_body(quantity=0))
    post(client, alert_body(secret="wrong-secret-000000000"))
    post(client, '{"secret": "' + SECRET + '", broken', content_type="text/plain")
    post(client, alert_body(extras={"echo": SECRET}))
    lines = [r for r in caplog.records if r.name == "tv2ib.webhook" and r.getMessage().startswith("webhook ")]
    assert len(lines) == 6
    first = lines[0]
    assert first.outcome == "accepted" and first.http_status == 202 and first.alert_id
    assert first.client == "127.0.0.1" and first.latency_ms >= 0
    assert "latency_ms=" in first.getMessage() and first.alert_id in first.getMessage()
    assert SECRET not in caplog.text
    for row in alerts(ctx):  # nor in anything stored
        assert SECRET not in (row.raw_body or "")
        assert SECRET not in str(row.payload) and SECRET not in str(row.errors)


def test_metrics_count_outcomes_and_latency(client):
    from prometheus_client.parser import text_string_to_metric_families

    post(client, alert_body())
    post(client, alert_body(secret="wrong-secret-000000000"))
    text_body = client.get("/metrics").get_data(as_text=True)
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text_body)
        for s in family.samples
    }
    assert found[("tv2ib_webhook_requests_total", (("outcome", "accepted"), ("status", "202")))] == 1
    assert found[("tv2ib_webhook_requests_total", (("outcome", "unauthorized"), ("status", "401")))] == 1
    assert found[("tv2ib_webhook_latency_seconds_count", ())] == 2
    assert found[("tv2ib_alerts_waiting", (("status", "queued"),))] == 1
    assert found[("tv2ib_alerts_waiting", (("status", "received"),))] == 0


def test_unparsable_rate_limit_is_a_settings_error(base_env):
    from config.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="RATE_LIMIT"):
        Settings.from_mapping(dict(base_env, RATE_LIMIT="lots"))


def test_secrets_in_unparsable_bodies_count_as_attempts(make_app, one_limit_window):
    app = make_app(AUTH_FAILURE_LIMIT="2/minute")
    client = app.test_client()
    broken = '{"secret": "guess-guess-guess-guess", "quantity": {{x}}}'
    assert post(client, broken, content_type="text/plain").status_code == 400
    assert post(client, broken, content_type="text/plain").status_code == 400
    # out of attempts: no more 400 answers to learn from for a wrong secret ...
    assert post(client, broken, content_type="text/plain").status_code == 429
    # ... while the right one is still stored for the trader to see
    right = '{"secret": "' + SECRET + '", "quantity": {{x}}}'
    answer = post(client, right, content_type="text/plain")
    assert answer.status_code == 400 and answer.get_json()["alert_id"]
    assert [a.status for a in alerts(get_ctx(app))] == ["invalid"]
