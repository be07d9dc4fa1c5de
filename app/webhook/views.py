"""``POST /webhook``: the HTTP face of :class:`app.webhook.intake.Intake`.

Writes the one canonical log line per webhook (outcome, alert id, HTTP status, latency, client
address; never the secret) and counts the answer in ``/metrics``.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.resources import resources
from app.webhook.intake import error_outcome

log = logging.getLogger("tv2ib.webhook")

bp = Blueprint("webhook", __name__)


@bp.post("/webhook")
def webhook() -> Response:
    """Take one TradingView alert; see docs/intake.md "HTTP answers" for every status."""
    started = time.perf_counter()
    web = resources()
    try:
        result = web.intake.handle(request)
    except (OperationalError, InterfaceError, PoolTimeout) as exc:
        # TradingView resends after a 5xx; the pool's pre-ping reconnects once the database is back.
        log.warning("database unavailable during intake: %s", type(exc).__name__)
        result = error_outcome(
            503, "unavailable", "unavailable", "the database is unavailable; retry shortly"
        )
        result.headers["Retry-After"] = "5"
    except Exception:  # noqa: BLE001 - never a traceback to the client; logged with its stack
        log.exception("unexpected error in webhook intake")
        result = error_outcome(500, "error", "internal_error", "internal error; the alert was not stored")
    response = jsonify(result.body)
    response.status_code = result.status
    response.headers.update(result.headers)
    elapsed = time.perf_counter() - started
    web.metrics.observe(result.outcome, result.status, elapsed)
    reason = result.body.get("message", "")
    log.info(
        "webhook %s alert=%s status=%s latency_ms=%.1f client=%s%s",
        result.outcome,
        result.alert_id or "-",
        result.status,
        elapsed * 1000,
        request.remote_addr or "-",
        f" reason={reason!r}" if reason else "",
        extra={
            "alert_id": result.alert_id,
            "outcome": result.outcome,
            "http_status": result.status,
            "latency_ms": round(elapsed * 1000, 2),
            "client": request.remote_addr,
        },
    )
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
