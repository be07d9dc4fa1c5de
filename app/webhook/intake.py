"""The intake pipeline of one webhook request, in the order of design.md:

limit -> address -> media type -> body (bounded) -> parse -> authenticate -> validate ->
dedup + persist (committed) -> enqueue (outbox) -> answer.

Every answer is an :class:`Outcome` (HTTP status, JSON body, a short outcome name for logs and
metrics). Nothing secret is ever put in an answer, a stored row or a log line: the ``secret``
key is dropped and any configured secret value still present is replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from flask import Request

from app.context import AppContext
from app.keys import queue_name
from app.routing import ServedCache, account_refusal
from app.webhook import auth, parsing, store
from app.webhook.dedup import idempotency_key
from app.webhook.enqueue import enqueue_alert
from app.webhook.marker import QueuedMarker
from app.webhook.ratelimit import WebhookLimiter
from app.webhook.schema import field_errors_summary, normalise

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """The answer to one webhook request."""

    status: int
    body: dict[str, Any]
    outcome: str
    alert_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error_outcome(status: int, outcome: str, code: str, message: str, **extra: Any) -> Outcome:
    body: dict[str, Any] = {"error": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    return Outcome(status, body, outcome, alert_id=extra.get("alert_id"))


class Intake:
    """Turns webhook requests into stored, enqueued alerts. One per app, thread-safe."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.settings = ctx.settings
        self.secrets = ctx.settings.secrets()
        self.limiter = WebhookLimiter(ctx.redis, ctx.settings.rate_limit, ctx.settings.auth_failure_limit)
        self.marker = QueuedMarker(ctx.engine)
        self.fast_engine = store.make_fast_engine(ctx.engine)
        # served accounts from the workers' heartbeats, re-read every few seconds, not per alert
        self.served = ServedCache(ctx.redis)

    def close(self) -> None:
        """Write pending ``queued`` marks and close the fast-path connections."""
        self.marker.flush(2.0)
        if self.fast_engine is not None:
            self.fast_engine.dispose()

    def _scrub(self, value: Any) -> Any:
        """``value`` with every configured secret replaced by ``***`` (JSON round trip)."""
        text = json.dumps(value, ensure_ascii=False)
        cleaned = parsing.redact(text, self.secrets)
        return value if cleaned == text else json.loads(cleaned)

    def _too_many(self, item: Any) -> Outcome:
        outcome = error_outcome(
            429, "rate_limited", "rate_limited", f"too many requests; the limit is {item}"
        )
        outcome.headers["Retry-After"] = str(item.get_expiry())
        return outcome

    def handle(self, request: Request) -> Outcome:
        """Run the whole pipeline for ``request``. Database errors propagate (the view answers 503)."""
        settings = self.settings
        address = request.remote_addr or "unknown"
        within_rate, auth_attempts_left = self.limiter.check(address)
        if not within_rate:
            return self._too_many(self.limiter.rate)
        if not auth.address_allowed(settings, address):
            if not auth_attempts_left:
                return self._too_many(self.limiter.auth_failures)
            self.limiter.record_auth_failure(address)
            return error_outcome(403, "forbidden", "forbidden", "this address may not send alerts")
        try:
            parsing.check_content_type(request)
            raw = parsing.read_body(request, settings.max_body_bytes)
        except parsing.BodyError as exc:
            outcome = {408: "timeout", 413: "too_large", 415: "unsupported"}.get(exc.status, "bad_request")
            return error_outcome(exc.status, outcome, parsing_code(exc.status), exc.message)

        alert, text, parse_error = parsing.parse_alert(raw)
        if parse_error is not None or alert is None:
            return self._unparsable(
                request, address, raw, text, parse_error or "unparsable body", auth_attempts_left
            )

        if not auth_attempts_left:
            return self._too_many(self.limiter.auth_failures)
        presented = auth.presented_secret(alert, request.headers)
        if not auth.secret_ok(settings, presented, alert.get("strategy")):
            self.limiter.record_auth_failure(address)
            return error_outcome(401, "unauthorized", "unauthorized", "missing or wrong secret")

        body_text = parsing.stored_body(alert, text, raw, self.secrets)
        payload, errors = normalise(alert)
        if payload is not None:
            refusal = account_refusal(payload.get("account"), self.served.get())
            if refusal is not None:  # no worker would ever take it: say so now, not in 120 s
                payload, errors = None, {"account": [refusal]}
        if payload is None:
            errors = self._scrub(errors)
            reason = "invalid alert: " + field_errors_summary(errors)
            with self.ctx.engine.connect() as conn:
                alert_id = store.record_invalid(
                    conn,
                    raw_body=body_text,
                    errors=errors,
                    reason=reason,
                    client_ip=address,
                    alert=alert,
                )
            return error_outcome(422, "invalid", "invalid_alert", reason, fields=errors, alert_id=alert_id)

        payload = self._scrub(payload)
        recorded = store.record_valid(
            self.ctx.engine,
            fast_engine=self.fast_engine,
            payload=payload,
            raw_body=body_text,
            client_ip=address,
            idempotency_key=idempotency_key(payload),
            window_seconds=settings.dedup_window_seconds,
            signal_time=_signal_time(payload.get("time")),
        )
        if recorded.duplicate_of is not None:
            body = {"alert_id": recorded.duplicate_of, "status": recorded.first_status, "duplicate": True}
            return Outcome(200, body, "duplicate", alert_id=recorded.duplicate_of)
        status = self._enqueue(recorded.alert_id, payload.get("account"))
        return Outcome(202, {"alert_id": recorded.alert_id, "status": status}, "accepted", recorded.alert_id)

    def _unparsable(
        self,
        request: Request,
        address: str,
        raw: bytes,
        text: str | None,
        reason: str,
        auth_attempts_left: bool,
    ) -> Outcome:
        """400; stored as invalid when the request still proves it knows a secret.

        A secret presented here counts like any other attempt: a wrong one is an authentication
        failure, and an address out of attempts gets 429, so "stored or not" is no oracle."""
        presented = request.headers.get(auth.SECRET_HEADER) or parsing.secret_in_text(text)
        alert_id = None
        if presented is not None and not auth_attempts_left:
            return self._too_many(self.limiter.auth_failures)
        if presented is not None and not auth.secret_ok(self.settings, presented, any_configured=True):
            self.limiter.record_auth_failure(address)
        elif presented is not None:
            with self.ctx.engine.connect() as conn:
                alert_id = store.record_invalid(
                    conn,
                    raw_body=parsing.stored_body(None, text, raw, self.secrets),
                    errors={"_body": [reason]},
                    reason=f"invalid alert: {reason}",
                    client_ip=address,
                )
        return error_outcome(400, "bad_request", "bad_request", reason, alert_id=alert_id)

    def _enqueue(self, alert_id: str, account: str | None) -> str:
        """Outbox step: enqueue after commit; if Redis is down the relay does it later.

        The row moves to ``queued`` right after the answer (:class:`QueuedMarker`); the answer
        already says ``queued`` because the job is on its queue."""
        try:
            enqueue_alert(self.ctx.redis, alert_id, account)
        except redis.RedisError as exc:
            log.warning(
                "alert %s stays received: Redis unavailable (%s); the relay will enqueue it",
                alert_id,
                type(exc).__name__,
            )
            return "received"
        self.marker.mark(alert_id, queue_name(account))
        return "queued"


def parsing_code(status: int) -> str:
    return {
        400: "bad_request",
        408: "request_timeout",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }.get(status, "bad_request")


def _signal_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
