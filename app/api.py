"""Admin JSON API under ``/api``: thin wrappers over :mod:`core.services` (the Telegram commands
call the same functions, so both front ends say the same thing).

Bearer ``ADMIN_TOKEN``, compared in constant time. Without ``ADMIN_TOKEN`` every route answers
404 "admin API disabled" (fail closed, and nothing to probe). Failed tokens count towards the
address's ``ADMIN_AUTH_FAILURE_LIMIT`` (shared with the dashboard and ``/readyz``, apart from the
webhook's ``AUTH_FAILURE_LIMIT``: neither side's failures lock the other out).
"""

from __future__ import annotations

from typing import TypedDict

import redis
from flask import Blueprint, Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import InterfaceError, OperationalError

from app.admin_auth import admin_limiter, token_ok
from app.errors import error_response
from app.events import publish, stream_response
from app.resources import get_ctx, resources
from core import approval, performance, profit, services
from core import events as core_events
from core.context import AppContext
from core.models import ALERT_STATUSES
from core.services import AlertDoc, OrderDoc, PositionDoc

bp = Blueprint("api", __name__, url_prefix="/api")


class AlertList(TypedDict):
    """``GET /api/alerts``: newest first."""

    alerts: list[AlertDoc]


class OrderList(TypedDict):
    """``GET /api/orders``: newest first."""

    orders: list[OrderDoc]


class PositionList(TypedDict):
    """``GET /api/positions``."""

    positions: list[PositionDoc]


def _ctx() -> AppContext:
    return get_ctx()


@bp.before_request
def _authenticate() -> Response | None:
    expected = _ctx().settings.admin_token
    if not expected:
        return error_response(404, "admin API disabled: set ADMIN_TOKEN to enable it")
    limiter = admin_limiter()
    address = request.remote_addr or "unknown"
    if not limiter.auth_attempts_left(address):
        return error_response(429, "too many failed attempts; try again later")
    if not token_ok(expected, request.headers.get("Authorization")):
        limiter.record_auth_failure(address)
        response = error_response(401, "missing or wrong bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="tv2ib"'
        return response
    return None


@bp.errorhandler(OperationalError)
@bp.errorhandler(InterfaceError)
def _database_down(exc: Exception) -> Response:
    return error_response(503, "the database is unavailable; retry shortly")


@bp.errorhandler(redis.RedisError)
def _redis_down(exc: Exception) -> Response:
    return error_response(503, "Redis is unavailable; retry shortly")


def _int_arg(name: str, default: int, lo: int, hi: int) -> int | Response:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return error_response(400, f"{name} must be a whole number", fields={name: ["not a number"]})
    return max(lo, min(hi, value))


@bp.get("/alerts")
def list_alerts() -> ResponseReturnValue:
    """Newest alerts first; ``?limit=`` (1..500, default 50) and ``?status=``."""
    limit = _int_arg("limit", 50, 1, 500)
    if isinstance(limit, Response):
        return limit
    status = request.args.get("status") or None
    if status is not None and status not in ALERT_STATUSES:
        valid = ", ".join(ALERT_STATUSES)
        return error_response(
            400, f"status must be one of {valid}", fields={"status": [f"not one of {valid}"]}
        )
    body: AlertList = {"alerts": services.recent_alerts(_ctx().sessions, limit=limit, status=status)}
    return jsonify(body)


@bp.get("/alerts/<alert_id>")
def get_alert(alert_id: str) -> ResponseReturnValue:
    """One alert with payload, plan, orders, fills and its audit trail."""
    alert = services.get_alert(_ctx().sessions, alert_id[:26])
    if alert is None:
        return error_response(404, f"no alert {alert_id[:26]!r}")
    return jsonify(alert)


@bp.post("/alerts/<alert_id>/approve")
def approve_alert(alert_id: str) -> ResponseReturnValue:
    """Approve an alert that waits for approval: the worker decides it now, on the position and
    prices of this moment."""
    return _decide(alert_id, approve=True)


@bp.post("/alerts/<alert_id>/reject")
def reject_alert(alert_id: str) -> ResponseReturnValue:
    """Reject an alert that waits for approval: it ends rejected, nothing is sent."""
    return _decide(alert_id, approve=False)


def _decide(alert_id: str, *, approve: bool) -> ResponseReturnValue:
    ctx = _ctx()
    try:
        doc = approval.decide(ctx.sessions, ctx.redis, ctx.settings, alert_id[:26], approve=approve,
                              by="the admin API")  # fmt: skip
    except approval.ApprovalRefused as exc:
        return error_response(exc.status, str(exc), code="not_found" if exc.status == 404 else "not_waiting")
    return jsonify(doc)


@bp.get("/orders")
def list_orders() -> ResponseReturnValue:
    """Orders as IB last reported them; ``?working=1`` for working orders only."""
    working = request.args.get("working", "").lower() in {"1", "true", "yes"}
    body: OrderList = {"orders": services.list_orders(_ctx().sessions, working_only=working)}
    return jsonify(body)


@bp.get("/positions")
def list_positions() -> ResponseReturnValue:
    """Non-zero positions as IB last reported them."""
    body: PositionList = {"positions": services.list_positions(_ctx().sessions)}
    return jsonify(body)


@bp.get("/performance")
def execution_performance() -> ResponseReturnValue:
    """Slippage (positive is a cost) and signal-to-fill latency per strategy; ``?days=`` (1..3650,
    default 90) and ``?strategy=`` (that one, with its newest filled alerts)."""
    days = _int_arg("days", performance.DEFAULT_DAYS, 1, performance.MAX_DAYS)
    if isinstance(days, Response):
        return days
    strategy = (request.args.get("strategy") or "")[:128] or None
    return jsonify(performance.performance(_ctx().sessions, days=days, strategy=strategy))


@bp.get("/profit")
def realized_profit() -> ResponseReturnValue:
    """Realized profit, trades, win rate and drawdown per currency (Telegram's /profit); ``?days=``
    (1..3650; absent: all time)."""
    days = _int_arg("days", 0, 1, performance.MAX_DAYS) if request.args.get("days") else None
    if isinstance(days, Response):
        return days
    return jsonify(profit.profit(_ctx().sessions, days=days))


@bp.get("/daily")
def daily_profit() -> ResponseReturnValue:
    """Realized PnL, trades, fills and fees per UTC day, today first (Telegram's /daily); ``?days=``
    (1..60, default 7)."""
    days = _int_arg("days", 7, 1, profit.MAX_DAILY_DAYS)
    if isinstance(days, Response):
        return days
    return jsonify({"days": profit.daily(_ctx().sessions, days=days)})


@bp.get("/status")
def status() -> ResponseReturnValue:
    """Paused?, workers and IB connection, queue depths, last alert, today's PnL."""
    ctx = _ctx()
    body = services.status(ctx.sessions, ctx.redis)
    body["pnl_today"] = services.pnl_today(ctx.sessions)
    return jsonify(body)


@bp.post("/pause")
def pause() -> ResponseReturnValue:
    """Stop new entries (durable); exits and protective orders keep working."""
    result = services.set_paused(_ctx().sessions, True, by="api")
    publish(_ctx().redis, core_events.paused(True, by="api"))
    return jsonify(result)


@bp.post("/resume")
def resume() -> ResponseReturnValue:
    """Allow new entries again."""
    result = services.set_paused(_ctx().sessions, False, by="api")
    publish(_ctx().redis, core_events.paused(False, by="api"))
    return jsonify(result)


@bp.post("/flatten")
def flatten() -> ResponseReturnValue:
    """Ask the worker to cancel working orders and close positions (``?account=`` optional)."""
    # An empty ``account=`` (a script's unset variable) is refused, not read as "no account":
    # that would flatten the worker of the alerts naming none, maybe not the account meant.
    account = request.args.get("account")
    try:
        return jsonify(services.request_flatten(_ctx().redis, account, by="api")), 202
    except services.FlattenRefused as exc:
        return error_response(422, f"flatten refused: {exc}", fields={"account": [str(exc)]})


@bp.get("/events")
def event_stream() -> Response:
    """Live events as ``text/event-stream`` (``event: <type>``, ``data: <json>``); see app.events."""
    return stream_response(get_ctx(), resources().streams)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
