"""What the description says of each route beyond what the code already tells: who may call it,
its query parameters, and each answer with the class its body is built from.

Keyed by Flask endpoint: the paths and methods come from the app's own URL map, the summaries
from the views' docstrings, the bodies from TypedDicts and marshmallow schemas
(:mod:`app.openapi`). A route of the webhook or the admin API missing here stops the description
from being built (tests/app/test_openapi.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.api import AlertList, OrderList, PositionList
from app.errors import ErrorBody
from app.health import Alive, CoarseReadiness, Readiness
from app.webhook.intake import Accepted, Duplicate
from core.account_ids import ACCOUNT_ID_RE
from core.approval import DecisionDoc
from core.models import ALERT_STATUSES
from core.performance import DEFAULT_DAYS, MAX_DAYS, NO_STRATEGY, PerformanceDoc
from core.profit import MAX_DAILY_DAYS, DailyDoc, ProfitDoc
from core.services import AlertDoc, FlattenDoc, PausedDoc, StatusDoc

# Security requirements (the schemes are in app.openapi.SECURITY_SCHEMES).
PUBLIC: list[dict[str, list[str]]] = []
ADMIN = [{"adminToken": []}]
ADMIN_OPTIONAL = [{}, {"adminToken": []}]
# The secret may also be the body's "secret" field, which a security scheme cannot express: hence {}.
WEBHOOK = [{"webhookSecret": []}, {}]

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}


@dataclass(frozen=True)
class Answer:
    """One documented answer: the body's class (a TypedDict, a list of them for ``anyOf``), or a
    media type with a plain string body."""

    description: str
    body: Any = ErrorBody
    media_type: str = "application/json"
    headers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    security: list[dict[str, list[str]]]
    answers: dict[int, Answer]
    parameters: list[dict[str, Any]] = field(default_factory=list)
    tag: str = "admin"


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_ADMIN_REFUSALS = {
    401: Answer("missing or wrong bearer token (counted towards ADMIN_AUTH_FAILURE_LIMIT)"),
    404: Answer("the admin API is disabled: ADMIN_TOKEN is not set"),
    429: Answer("too many failed tokens from this address; try again later"),
    503: Answer("the database or Redis is unavailable; retry shortly"),
}


def _admin(answers: dict[int, Answer], parameters: list[dict[str, Any]] | None = None) -> Route:
    merged = dict(_ADMIN_REFUSALS)
    for status, answer in answers.items():
        if status in merged and answer.body is ErrorBody:  # one status, two reasons
            answer = Answer(f"{answer.description}; or {merged[status].description}")
        merged[status] = answer
    return Route(ADMIN, dict(sorted(merged.items())), parameters or [])


WEBHOOK_ANSWERS = {
    200: Answer("a duplicate: the alert repeats one taken within DEDUP_WINDOW_SECONDS", Duplicate),
    202: Answer("stored and queued (or received: Redis is down and the relay enqueues it)", Accepted),
    400: Answer("the body is not one JSON object (an authenticated one is stored, with its alert_id)"),
    401: Answer("missing or wrong secret"),
    403: Answer("TRADINGVIEW_IPS_ONLY is set and this address is not one of TradingView's"),
    408: Answer("the body did not arrive in time"),
    413: Answer("the body is over MAX_BODY_BYTES"),
    415: Answer("a media type that cannot carry a JSON alert"),
    422: Answer("the alert is invalid: `fields` names each field and its problem; stored, with its alert_id"),
    429: Answer(
        "over a rate limit (RATE_LIMIT, AUTH_FAILURE_LIMIT, AUTHENTICATED_RATE_LIMIT)", headers=RETRY_AFTER
    ),
    503: Answer("the database is unavailable; TradingView may resend", headers=RETRY_AFTER),
}

_DECISION_ANSWERS = {
    200: Answer("done, and recorded on the alert's audit trail as the admin API's", DecisionDoc),
    404: Answer("no such alert"),
    409: Answer("the alert is not waiting for approval (decided, or its approval window closed)"),
}

ROUTES: dict[str, Route] = {
    "webhook.webhook": Route(WEBHOOK, WEBHOOK_ANSWERS, tag="webhook"),
    "health.healthz": Route(PUBLIC, {200: Answer("alive", Alive)}, tag="probes"),
    "health.readyz": Route(
        ADMIN_OPTIONAL,
        {
            200: Answer(
                "the database and Redis answer (coarse without the admin token)", [Readiness, CoarseReadiness]
            ),
            503: Answer("the database or Redis is down", [Readiness, CoarseReadiness]),
        },
        tag="probes",
    ),
    "metrics": Route(
        PUBLIC, {200: Answer("Prometheus text format", None, media_type="text/plain")}, tag="probes"
    ),
    "openapi.description": Route(PUBLIC, {200: Answer("this description", dict)}, tag="probes"),
    "api.list_alerts": _admin(
        {200: Answer("alerts, newest first", AlertList), 400: Answer("limit or status is not valid")},
        [
            _query("limit", {"type": "integer"}, "how many, 1 to 500 (taken into that range); default 50"),
            _query(
                "status",
                {"type": "string", "enum": [*ALERT_STATUSES, ""]},
                "only alerts in this status (empty: every status)",
            ),
        ],
    ),
    "api.get_alert": _admin(
        {200: Answer("the alert with everything known about it", AlertDoc), 404: Answer("no such alert")},
    ),
    "api.approve_alert": _admin(_DECISION_ANSWERS),
    "api.reject_alert": _admin(_DECISION_ANSWERS),
    "api.list_orders": _admin(
        {200: Answer("orders as IB last reported them, newest first", OrderList)},
        [_query("working", {"type": "string"}, "1, true or yes: working orders only")],
    ),
    "api.list_positions": _admin({200: Answer("non-zero positions as IB last reported them", PositionList)}),
    "api.execution_performance": _admin(
        {
            200: Answer("slippage and latency per strategy (positive slippage is a cost)", PerformanceDoc),
            400: Answer("days is not a whole number"),
        },
        [
            _query(
                "days",
                {"type": "integer"},
                f"the window in days, 1 to {MAX_DAYS} (taken into that range); default {DEFAULT_DAYS}",
            ),
            _query(
                "strategy",
                {"type": "string"},
                f"only this strategy ({NO_STRATEGY} for alerts naming none), with its newest filled alerts",
            ),
        ],
    ),
    "api.realized_profit": _admin(
        {
            200: Answer("realized profit, trades, win rate and drawdown per currency", ProfitDoc),
            400: Answer("days is not a whole number"),
        },
        [_query("days", {"type": "integer"}, f"the window in days, 1 to {MAX_DAYS}; absent: all time")],
    ),
    "api.daily_profit": _admin(
        {
            200: Answer("realized PnL per UTC day, today first", DailyDoc),
            400: Answer("days is not a whole number"),
        },
        [
            _query(
                "days",
                {"type": "integer"},
                f"how many days, 1 to {MAX_DAILY_DAYS} (taken into that range); default 7",
            )
        ],
    ),
    "api.status": _admin({200: Answer("paused, workers, queues, last alert, today's PnL", StatusDoc)}),
    "api.pause": _admin({200: Answer("new entries are paused", PausedDoc)}),
    "api.resume": _admin({200: Answer("new entries are allowed", PausedDoc)}),
    "api.flatten": _admin(
        {
            202: Answer("the flatten is queued for the account's worker", FlattenDoc),
            422: Answer("not an account id, or one no live worker serves"),
        },
        [
            _query(
                "account",
                {
                    "type": "string",
                    "pattern": "^" + ACCOUNT_ID_RE.pattern.strip("^").removesuffix(r"\Z") + "$",
                },
                "the IB account; without it, the worker of alerts that name no account",
            )
        ],
    ),
    "api.event_stream": _admin(
        {200: Answer("server-sent events until EVENTS_STREAM_SECONDS", None, media_type="text/event-stream")}
    ),
}
