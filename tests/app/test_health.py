"""Liveness and readiness against real Redis and a real database."""

from __future__ import annotations

import json
import time

import pytest
from support import TEST_ADMIN_TOKEN

from core import keys


def test_healthz(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok"}


def test_readyz_reports_database_redis_and_missing_worker(client):
    answer = client.get("/readyz")
    body = answer.get_json()
    assert answer.status_code == 200
    assert body["database"] == "ok" and body["redis"] == "ok"
    assert body["worker"] == "down" and body["ib"] == "disconnected"


ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


def _beat(redis_client, account="DU1234567", client_id=7, pid=424242):
    beat = {"ts": time.time(), "ib_connected": True, "account": account, "client_id": client_id, "pid": pid}
    redis_client.set(keys.heartbeat_key(account, client_id), json.dumps(beat), ex=keys.HEARTBEAT_TTL_SECONDS)


def test_readyz_reports_worker_heartbeat_to_the_admin(client, redis_client):
    _beat(redis_client)
    body = client.get("/readyz", headers=ADMIN).get_json()
    assert body["worker"] == "ok" and body["ib"] == "connected"
    assert body["workers"][0]["client_id"] == 7
    assert body["workers"][0]["account"] == "DU1234567" and body["workers"][0]["pid"] == 424242


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-wrong-wrong-wrong"}])
def test_anonymous_readyz_is_coarse_no_account_or_pid(client, redis_client, headers):
    _beat(redis_client)
    answer = client.get("/readyz", headers=headers)
    assert answer.status_code == 200
    assert answer.get_json() == {
        "status": "ready", "database": "ok", "redis": "ok", "worker": "ok", "ib": "connected"
    }  # fmt: skip
    assert "DU1234567" not in answer.get_data(as_text=True)
    assert "424242" not in answer.get_data(as_text=True)


def test_readyz_wrong_tokens_count_as_admin_failures(make_app, redis_client):
    _beat(redis_client)
    client = make_app(ADMIN_AUTH_FAILURE_LIMIT="2/minute").test_client()
    bad = {"Authorization": "Bearer wrong-wrong-wrong-wrong"}
    assert [client.get("/readyz", headers=bad).status_code for _ in range(3)] == [200] * 3
    # out of attempts: even the right token gets the coarse answer (no oracle), /api says 429
    assert "workers" not in client.get("/readyz", headers=ADMIN).get_json()
    assert client.get("/api/status", headers=ADMIN).status_code == 429


def test_readyz_names_redis_when_it_is_down(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json() == {
        "status": "not_ready", "database": "ok", "redis": "down", "worker": "down", "ib": "disconnected"
    }  # fmt: skip
    detailed = app.test_client().get("/readyz", headers=ADMIN)
    assert detailed.status_code == 503
    body = detailed.get_json()
    assert body["redis"].startswith("error") and body["database"] == "ok"
