"""Liveness and readiness probes.

``/healthz`` answers 200 while the process serves requests. ``/readyz`` checks what intake
needs: the database and Redis (503 naming the one that failed). It also reports the execution
workers' heartbeats and their IB connection, but a missing worker does NOT make it 503: intake
still stores alerts and the outbox relay enqueues them, so the web process is ready; the body
says ``"worker": "down"`` for monitoring to alarm on.

Anyone may probe it (load balancers send no credentials), so an anonymous caller gets only the
status code and coarse ``ok`` / ``down`` words. The details (exception names, each worker's IB
account, client id and pid) are for a caller presenting ``Authorization: Bearer $ADMIN_TOKEN``;
a wrong token counts towards ``ADMIN_AUTH_FAILURE_LIMIT`` like anywhere else, so the two kinds of
answer are no token oracle.
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict

import redis
from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy import text

from app.admin_auth import admin_limiter, token_ok
from app.resources import get_ctx
from core.context import AppContext
from core.services import worker_heartbeats

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


class Alive(TypedDict):
    """``/healthz``'s answer: ``{"status": "ok"}``."""

    status: str


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and answering."""
    body: Alive = {"status": "ok"}
    return jsonify(body)


class Readiness(TypedDict):
    """What ``/readyz`` says in full: ``ok`` or ``error: <exception name>`` per part, the workers'
    heartbeats (account, client id, IB connection, age, pid) and the verdict."""

    database: str
    redis: str
    worker: str  # ok / down: any live worker heartbeat
    ib: str  # connected / disconnected: any worker connected to IB
    workers: list[dict[str, Any]]
    status: str  # ready / not_ready


class CoarseReadiness(TypedDict):
    """What an anonymous caller may see: ok/down per part, nothing that names an account or pid."""

    database: str
    redis: str
    worker: str
    ib: str
    status: str


def readiness(ctx: AppContext) -> tuple[bool, Readiness]:
    """Check the database and Redis; report workers and IB. Returns (ready, body)."""
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its name
        database = f"error: {type(exc).__name__}"
    try:
        ctx.redis.ping()
        redis_state = "ok"
    except redis.RedisError as exc:
        redis_state = f"error: {type(exc).__name__}"
    beats = worker_heartbeats(ctx.redis) if redis_state == "ok" else []
    ready = database == "ok" and redis_state == "ok"
    return ready, {
        "database": database,
        "redis": redis_state,
        "worker": "ok" if beats else "down",
        "ib": "connected" if any(b.get("ib_connected") for b in beats) else "disconnected",
        "workers": [
            {k: b.get(k) for k in ("account", "client_id", "ib_connected", "age_seconds", "pid")}
            for b in beats
        ],
        "status": "ready" if ready else "not_ready",
    }


def coarse(checks: Readiness) -> CoarseReadiness:
    """What an anonymous caller may see: ok/down per part, nothing that names an account or pid."""
    return {
        "database": "ok" if checks["database"] == "ok" else "down",
        "redis": "ok" if checks["redis"] == "ok" else "down",
        "worker": "ok" if checks["worker"] == "ok" else "down",
        "ib": checks["ib"],
        "status": checks["status"],
    }


def _admin_caller() -> bool:
    """True when the request carries the right admin bearer token (counted like ``/api``'s)."""
    expected = get_ctx().settings.admin_token
    authorization = request.headers.get("Authorization")
    if not expected or not authorization:
        return False
    limiter = admin_limiter()
    address = request.remote_addr or "unknown"
    if not limiter.auth_attempts_left(address):
        return False
    if token_ok(expected, authorization):
        return True
    limiter.record_auth_failure(address)
    return False


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when the database and Redis answer, else 503; worker and IB state in the body
    (coarse for anonymous callers, in full with the admin token)."""
    ready, checks = readiness(get_ctx())
    body: Readiness | CoarseReadiness = checks if _admin_caller() else coarse(checks)
    return jsonify(body), (200 if ready else 503)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
