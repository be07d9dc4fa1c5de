"""The intake pipeline of one webhook request, in the order of docs/design.md:

address -> media type -> body (bounded) -> parse -> authenticate -> limit -> validate ->
dedup + persist (committed) -> enqueue (outbox) -> answer.

The limit comes after authentication on purpose: a request with a valid secret pays only the
in-process burst ceiling (no Redis call), every other request the per-address Redis limits
(:mod:`app.webhook.ratelimit`), so nobody sharing a trader's address can get the trader refused.

Every answer is an :class:`Outcome` (HTTP status, JSON body, a short outcome name for logs and
metrics). Nothing secret is ever put in an answer, a stored row or a log line: an alert with a
secret in any field but ``secret`` is refused (422 naming the field), the stored body has every
secret replaced by ``***`` (:mod:`app.webhook.redaction`), and so has every stored column.

TradingView never shows the answer, so a refusal is also told to the trader
(:mod:`app.webhook.notices`): an alert stored ``invalid`` gets an ``alert_invalid`` notice in its
own transaction, and a failed authentication is counted for the ``auth_failed`` digest in the rate
limiter's Redis call. A valid alert pays nothing for either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NotRequired, TypedDict

import redis
from flask import Request

from app.webhook.auth import SECRET_HEADER, address_allowed, presented_secret, secret_ok
from app.webhook.dedup import idempotency_key
from app.webhook.fanout import Route, route
from app.webhook.fast_path import make_fast_engine
from app.webhook.marker import QueuedMarker
from app.webhook.notices import IntakeNotices
from app.webhook.parsing import (
    BodyError,
    Decoded,
    check_content_type,
    decode_alert,
    read_body,
    secret_in_text,
    stored_body,
)
from app.webhook.ratelimit import WebhookLimiter
from app.webhook.redaction import HOLDER_MESSAGE, Redactor, nest
from app.webhook.schema import Normalised, field_errors_summary, normalise_alert
from app.webhook.store import Child, FanOutRows, Recorded, record_invalid, record_valid
from core.context import AppContext
from core.enqueue import enqueue_alert
from core.ids import new_alert_id
from core.intake_notices import CAUSE_ADDRESS, CAUSE_SECRET, CAUSE_UNREADABLE
from core.keys import queue_name
from core.models import AlertStatus
from core.notices import simulator_marked
from core.risk_file import RiskFile
from core.routing import Served, ServedCache, account_refusal

# The columns of an invalid alert's row taken from the alert as sent (shown in lists).
_SHOWN_COLUMNS = ("strategy", "account", "ticker", "action")
DUPLICATE_KEY_MESSAGE = (
    "the key appears more than once; send it once (which of the values was meant is unknown)"
)
SECRET_NOT_TEXT = "must be a string: the secret as text (or leave it out and send X-Webhook-Secret)"

log = logging.getLogger(__name__)


class ChildQueued(TypedDict):
    """One child of a fan-out in the 202 answer."""

    alert_id: str
    account: str | None
    status: str  # queued, or received when Redis is down (the relay enqueues it)


class Accepted(TypedDict):
    """202: the alert is committed; ``status`` ``queued``, ``received`` (Redis down) or ``fanned_out``."""

    alert_id: str
    status: str
    children: NotRequired[list[ChildQueued]]  # a fan-out's


class ChildRepeated(TypedDict):
    """One child of the fan-out a duplicate repeats."""

    alert_id: str
    account: str | None


class Duplicate(TypedDict):
    """200: the alert repeats one already taken; that alert's id and status."""

    alert_id: str
    status: str | None  # the first alert's
    duplicate: bool
    children: NotRequired[list[ChildRepeated]]


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

    def __init__(self, ctx: AppContext, risk_file: RiskFile | None = None):
        self.ctx = ctx
        # the risk file's fan-out accounts per strategy (read once per process; HUP reloads it)
        self.risk_file = risk_file or RiskFile()
        self.settings = ctx.settings
        self.secrets = ctx.settings.secrets()
        self.redactor = Redactor(self.secrets)
        self.notices = IntakeNotices(ctx.settings, ctx.redis)
        self.limiter = WebhookLimiter(
            ctx.redis,
            ctx.settings.rate_limit,
            ctx.settings.auth_failure_limit,
            ctx.settings.authenticated_rate_limit,
            self.notices.failure_digest_seconds,
        )
        self.marker = QueuedMarker(ctx.engine)
        self.fast_engine = make_fast_engine(ctx.engine)
        # served accounts from the workers' heartbeats, re-read every few seconds, not per alert
        self.served = ServedCache(ctx.redis)

    def close(self) -> None:
        """Write pending ``queued`` marks and close the fast-path connections."""
        self.marker.flush(2.0)
        if self.fast_engine is not None:
            self.fast_engine.dispose()

    def _scrub(self, value: Any) -> Any:
        """``value`` with every configured secret replaced by ``***`` (keys and strings)."""
        return self.redactor.value(value)

    def _refusals(self, decoded: Decoded, alert: dict[str, Any]) -> dict[str, Any]:
        """Field errors that stop an alert before validation: duplicate keys (which value was
        meant is unknown), fields holding a secret (named, never echoed) and a ``secret`` that is
        no string."""
        errors = nest(
            (tuple(self.redactor.text(p)[:64] for p in path) for path in decoded.duplicate_keys[:20]),
            DUPLICATE_KEY_MESSAGE,
        )
        errors = nest(self.redactor.holders(alert, decoded.text), HOLDER_MESSAGE, errors)
        if not isinstance(alert.get("secret", ""), str):  # authenticated by the header; stored masked
            errors.setdefault("secret", []).append(SECRET_NOT_TEXT)
        return errors

    def _shown_columns(self, alert: dict[str, Any]) -> dict[str, Any]:
        return {k: self.redactor.text(v) for k in _SHOWN_COLUMNS if isinstance(v := alert.get(k), str)}

    def _too_many(self, item: Any, what: str) -> Outcome:
        outcome = error_outcome(
            429, "rate_limited", "rate_limited", f"too many {what} from this address; the limit is {item}"
        )
        outcome.headers["Retry-After"] = str(item.get_expiry())
        return outcome

    def _unauthenticated(
        self, address: str, outcome: Outcome, *, auth_failure: bool, cause: str | None = None
    ) -> Outcome:
        """``outcome`` for a request without a valid secret, or 429 when its address is over
        ``RATE_LIMIT`` or (for a failed authentication) ``AUTH_FAILURE_LIMIT``. With a ``cause``
        it is counted for the ``auth_failed`` notice in the same Redis call."""
        exceeded = self.limiter.unauthenticated(address, auth_failure=auth_failure, cause=cause)
        if exceeded is None:
            return outcome
        if exceeded is self.limiter.rate:
            return self._too_many(exceeded, "requests without a valid secret")
        return self._too_many(exceeded, "failed authentications")

    def _authenticated_over_limit(self, address: str) -> Outcome | None:
        """429 when a sender with a valid secret is over ``AUTHENTICATED_RATE_LIMIT`` (in process)."""
        if self.limiter.authenticated_ok(address):
            return None
        return self._too_many(self.limiter.authenticated.item, "alerts")

    def handle(self, request: Request) -> Outcome:
        """Run the whole pipeline for ``request``. Database errors propagate (the view answers 503)."""
        address = request.remote_addr or "unknown"
        raw = self._read(request, address)
        if isinstance(raw, Outcome):
            return raw
        decoded = decode_alert(raw)
        alert, text = decoded.alert, decoded.text
        if decoded.error is not None or alert is None:
            return self._unparsable(request, address, raw, text, decoded.error or "unparsable body")
        refused = self._authenticate(request, address, alert)
        if refused is not None:
            return refused
        body_text = stored_body(text, raw, self.redactor)
        checked = self._validate(decoded, alert)
        if isinstance(checked, dict):
            errors = self._scrub(checked)
            reason = "invalid alert: " + field_errors_summary(errors)
            alert_id = self._record_invalid(body_text, errors, reason, address, self._shown_columns(alert))
            return error_outcome(422, "invalid", "invalid_alert", reason, fields=errors, alert_id=alert_id)
        return self._store(*checked, body_text, address)

    def _read(self, request: Request, address: str) -> bytes | Outcome:
        """The body, once the address may send alerts and the body is one to read; else the refusal."""
        if not address_allowed(self.settings, address):
            refused = error_outcome(403, "forbidden", "forbidden", "this address may not send alerts")
            return self._unauthenticated(address, refused, auth_failure=True, cause=CAUSE_ADDRESS)
        try:
            check_content_type(request)
            return read_body(request, self.settings.max_body_bytes)
        except BodyError as exc:
            outcome = {408: "timeout", 413: "too_large", 415: "unsupported"}.get(exc.status, "bad_request")
            refused = error_outcome(exc.status, outcome, parsing_code(exc.status), exc.message)
            if exc.status in (400, 408):
                # Where this body ends is unknown: the next bytes are no request to trust.
                refused.headers["Connection"] = "close"
            return self._unauthenticated(address, refused, auth_failure=False)

    def _authenticate(self, request: Request, address: str, alert: dict[str, Any]) -> Outcome | None:
        """None when the alert carries a valid secret and its sender is within its limit; else the
        refusal (401, or 429 once the address is out of attempts or over its limit)."""
        presented = presented_secret(alert, request.headers)
        if not secret_ok(self.settings, presented, alert.get("strategy")):
            refused = error_outcome(401, "unauthorized", "unauthorized", "missing or wrong secret")
            return self._unauthenticated(address, refused, auth_failure=True, cause=CAUSE_SECRET)
        return self._authenticated_over_limit(address)

    def _validate(self, decoded: Decoded, alert: dict[str, Any]) -> tuple[Normalised, Route] | dict[str, Any]:
        """The alert normalised and routed to its account(s), or the field errors that refuse it."""
        errors = self._refusals(decoded, alert)
        if errors:
            return errors
        normalised, errors = normalise_alert(alert, max_quantity=self.settings.max_order_quantity)
        if normalised is None:
            return errors
        routed = route(normalised, self.risk_file)
        refusals = _account_refusals(routed, self.served.get())
        if refusals:  # no worker would ever take it: say so now, not in 120 s; store no child
            return {"account": refusals}
        return normalised, routed

    def _store(self, normalised: Normalised, routed: Route, body_text: str, address: str) -> Outcome:
        """Commit the valid alert (or find the one it repeats), enqueue it, and say so."""
        # The idempotency key is that of the alert as SENT (a list of accounts, or none), not of
        # where the risk file routed it: a resend after the file changed is still a duplicate.
        sent = self._scrub(normalised.to_json())
        fan_out = None
        if routed.fans_out:
            children = tuple(Child(a, self._scrub(routed.child_payload(a))) for a in routed.accounts)
            fan_out = FanOutRows(children, routed.parent_reason())
        # The payload executed: the one sent, unless the risk file gave the alert its account.
        same = routed.fans_out or (routed.payload is normalised.payload and not normalised.accounts)
        recorded = record_valid(
            self.ctx.engine,
            fast_engine=self.fast_engine,
            payload=sent if same else self._scrub(routed.payload.to_json()),
            raw_body=body_text,
            client_ip=address,
            idempotency_key=idempotency_key(sent),
            window_seconds=self.settings.dedup_window_seconds,
            signal_time=_signal_time(sent.get("time")),
            fan_out=fan_out,
        )
        return self._answer(recorded, routed)

    def _answer(self, recorded: Recorded, routed: Route) -> Outcome:
        """200 for a duplicate (the first alert's id and status), else 202 once enqueued."""
        if recorded.duplicate_of is not None:
            repeated: Duplicate = {
                "alert_id": recorded.duplicate_of,
                "status": recorded.first_status,
                "duplicate": True,
            }
            if recorded.children:
                repeated["children"] = [{"alert_id": c, "account": a} for c, a in recorded.children]
            return Outcome(200, dict(repeated), "duplicate", alert_id=recorded.duplicate_of)
        accepted: Accepted
        if recorded.status == AlertStatus.FANNED_OUT.value:  # parent and children are committed already
            accepted = {
                "alert_id": recorded.alert_id,
                "status": recorded.status,
                "children": self._enqueue_children(recorded.children),
            }
        else:
            status = self._enqueue(recorded.alert_id, routed.payload.account)
            accepted = {"alert_id": recorded.alert_id, "status": status}
        return Outcome(202, dict(accepted), "accepted", recorded.alert_id)

    def _unparsable(
        self, request: Request, address: str, raw: bytes, text: str | None, reason: str
    ) -> Outcome:
        """400; stored as invalid when the request still proves it knows a secret.

        A secret presented here counts like any other attempt: a wrong one is an authentication
        failure (429 once the address is out of attempts), a right one is stored."""
        presented = request.headers.get(SECRET_HEADER) or secret_in_text(text)
        reason = self.redactor.text(reason)  # it may quote a placeholder holding the secret
        refused = error_outcome(400, "bad_request", "bad_request", reason)
        if presented is None or not secret_ok(self.settings, presented, any_configured=True):
            # no secret at all: a template that lost its JSON is reported like a wrong secret
            cause = CAUSE_UNREADABLE if presented is None else CAUSE_SECRET
            return self._unauthenticated(address, refused, auth_failure=presented is not None, cause=cause)
        over_limit = self._authenticated_over_limit(address)
        if over_limit is not None:
            return over_limit
        body_text = stored_body(text, raw, self.redactor)
        alert_id = self._record_invalid(
            body_text, {"_body": [reason]}, f"invalid alert: {reason}", address, {}
        )
        return error_outcome(400, "bad_request", "bad_request", reason, alert_id=alert_id)

    def _record_invalid(
        self, body_text: str, errors: dict[str, Any], reason: str, address: str, shown: dict[str, Any]
    ) -> str:
        """Store an authenticated request that cannot be executed, with its ``alert_invalid``
        notice in the same transaction (unless it is counted for a digest); returns its id.
        Everything passed in is redacted already."""
        alert_id = new_alert_id()
        notice = self.notices.invalid_alert(
            alert_id, errors=errors, reason=reason, client_ip=address, shown=shown
        )
        if notice is not None and self.served.get().simulator:  # the workers trade ibsim: say so
            notice = simulator_marked(notice)
        with self.ctx.engine.connect() as conn:
            return record_invalid(
                conn,
                alert_id=alert_id,
                raw_body=body_text,
                errors=errors,
                reason=reason,
                client_ip=address,
                alert=shown,
                notice=notice,
                settings=self.settings,
            )

    def _enqueue_children(self, children: tuple[tuple[str, str | None], ...]) -> list[ChildQueued]:
        """Enqueue a fan-out's committed children, each on its account's queue. Once Redis fails,
        the rest are not tried (each try could cost its connect timeout, and TradingView waits 3 s
        at most): they stay ``received`` and the relay enqueues them."""
        listed: list[ChildQueued] = []
        redis_up = True
        for child, account in children:
            status = self._enqueue(child, account) if redis_up else "received"
            redis_up = status == "queued"
            listed.append({"alert_id": child, "account": account, "status": status})
        return listed

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


def _account_refusals(routed: Route, served: Served) -> list[str]:
    """Why the alert's account(s) would never be taken: each account of a fan-out is checked like
    a single alert's (:func:`core.routing.account_refusal`); one refused account refuses the alert."""
    accounts: tuple[str | None, ...] = routed.accounts if routed.fans_out else (routed.payload.account,)
    refusals = [r for a in accounts if (r := account_refusal(a, served)) is not None]
    if refusals and routed.from_risk_file:
        refusals = [f"{routed.source}: {r}" for r in refusals]
    return refusals


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
