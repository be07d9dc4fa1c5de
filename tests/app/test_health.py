"""Liveness and readiness against real Redis and a real database."""

from __future__ import annotations

import json
import time

from app import keys


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


def test_readyz_reports_worker_heartbeat(client, redis_client):
    beat = {"ts": time.time(), "ib_connected": True, "account": "DU1", "client_id": 7, "pid": 1}
    redis_client.set(keys.heartbeat_key("DU1", 7), json.dumps(beat), ex=keys.HEARTBEAT_TTL_SECONDS)
    body = client.get("/readyz").get_json()
    assert body["worker"] == "ok" and body["ib"] == "connected"
    assert body["workers"][0]["client_id"] == 7


def test_readyz_names_redis_when_it_is_down(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["redis"].startswith("error") and body["database"] == "ok"
