"""Admin API: bearer token, disabled without ADMIN_TOKEN, thin wrappers over core.services."""

from __future__ import annotations

from app_helpers import alert_body, post
from rq import Queue
from support import TEST_ADMIN_TOKEN

from core.keys import queue_name
from core.services import FLATTEN_JOB

TOKEN = TEST_ADMIN_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_admin_api_disabled_without_token(make_app):
    client = make_app(ADMIN_TOKEN="").test_client()
    answer = client.get("/api/alerts", headers=AUTH)
    assert answer.status_code == 404 and "admin API disabled" in answer.get_json()["message"]


def test_missing_or_wrong_token_is_401(client):
    assert client.get("/api/alerts").status_code == 401
    wrong = client.get("/api/alerts", headers={"Authorization": "Bearer nope-nope-nope-nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/alerts", headers={"Authorization": TOKEN}).status_code == 401


def test_alerts_list_filter_and_detail(client):
    accepted = post(client, alert_body()).get_json()["alert_id"]
    invalid = post(client, alert_body(quantity=0)).get_json()["alert_id"]
    listed = client.get("/api/alerts", headers=AUTH).get_json()["alerts"]
    assert [a["id"] for a in listed] == [invalid, accepted]
    only_invalid = client.get("/api/alerts?status=invalid&limit=5", headers=AUTH).get_json()["alerts"]
    assert [a["id"] for a in only_invalid] == [invalid]
    # a status that does not exist is refused, naming the ones that do (it used to match nothing)
    nonsense = client.get("/api/alerts?status=nonsense", headers=AUTH)
    assert nonsense.status_code == 400
    assert (
        "status must be one of received, queued, pending_approval, processing"
        in nonsense.get_json()["message"]
    )
    assert "fanned_out" in nonsense.get_json()["fields"]["status"][0]
    assert client.get("/api/alerts?limit=abc", headers=AUTH).status_code == 400
    detail = client.get(f"/api/alerts/{accepted}", headers=AUTH).get_json()
    assert detail["status"] == "queued" and detail["payload"]["ticker"] == "AAPL"
    assert [e["status"] for e in detail["events"]] == ["received", "queued"]
    assert detail["orders"] == [] and detail["fills"] == []
    assert client.get("/api/alerts/NOPE", headers=AUTH).status_code == 404


def test_orders_positions_status(client):
    assert client.get("/api/orders", headers=AUTH).get_json() == {"orders": []}
    assert client.get("/api/positions", headers=AUTH).get_json() == {"positions": []}
    status = client.get("/api/status", headers=AUTH).get_json()
    assert status["paused"] is False and status["redis"] is True


def test_pause_resume_and_flatten(client, redis_client):
    assert client.post("/api/pause", headers=AUTH).get_json()["paused"] is True
    assert client.get("/api/status", headers=AUTH).get_json()["paused"] is True
    assert client.post("/api/resume", headers=AUTH).get_json()["paused"] is False
    answer = client.post("/api/flatten?account=DU1", headers=AUTH)
    assert answer.status_code == 202
    jobs = Queue(queue_name("DU1"), connection=redis_client).jobs
    assert [(j.func_name, j.args) for j in jobs] == [(FLATTEN_JOB, ("DU1", "api"))]


def test_flatten_with_redis_down_is_503(make_app):
    client = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    answer = client.post("/api/flatten", headers=AUTH)
    assert answer.status_code == 503 and answer.get_json()["error"] == "unavailable"


def test_repeated_bad_tokens_lock_the_address_out(make_app, one_limit_window):
    client = make_app(ADMIN_AUTH_FAILURE_LIMIT="2/minute").test_client()
    bad = {"Authorization": "Bearer wrong-wrong-wrong-wrong"}
    assert [client.get("/api/alerts", headers=bad).status_code for _ in range(2)] == [401, 401]
    assert client.get("/api/alerts", headers=AUTH).status_code == 429


def test_admin_token_failures_do_not_lock_the_webhook(make_app, one_limit_window):
    # the defaults: 10 failures a minute each, on separate counters
    client = make_app(AUTH_FAILURE_LIMIT="", ADMIN_AUTH_FAILURE_LIMIT="").test_client()
    bad = {"Authorization": "Bearer wrong-wrong-wrong-wrong"}
    assert [client.get("/api/alerts", headers=bad).status_code for _ in range(10)] == [401] * 10
    assert client.get("/api/alerts", headers=AUTH).status_code == 429
    assert post(client, alert_body()).status_code == 202
    # nor do they count as webhook failures: a wrong secret is still a plain 401
    assert post(client, alert_body(secret="wrong-secret-000000000")).status_code == 401


def test_dashboard_login_failures_count_as_admin_failures_not_webhook_ones(make_app, one_limit_window):
    client = make_app(AUTH_FAILURE_LIMIT="", ADMIN_AUTH_FAILURE_LIMIT="").test_client()
    wrong = {"token": "wrong-wrong-wrong-wrong"}
    assert [client.post("/login", data=wrong).status_code for _ in range(10)] == [401] * 10
    assert client.post("/login", data={"token": TOKEN}).status_code == 429
    assert client.get("/api/alerts", headers=AUTH).status_code == 429  # the same admin counter
    assert post(client, alert_body()).status_code == 202


def test_webhook_secret_failures_do_not_lock_the_admin_out(make_app, one_limit_window):
    client = make_app(AUTH_FAILURE_LIMIT="", ADMIN_AUTH_FAILURE_LIMIT="").test_client()
    wrong = alert_body(secret="wrong-secret-000000000")
    assert [post(client, wrong).status_code for _ in range(11)] == [401] * 10 + [429]
    assert client.get("/api/alerts", headers=AUTH).status_code == 200
