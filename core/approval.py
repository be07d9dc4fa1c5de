"""Approval by hand: a strategy whose alerts wait for the trader's yes (the risk file's
``require_approval``, ``approval_timeout``; docs/risk.md, docs/telegram.md).

The life of such an alert:

1. The worker takes its job as usual and, before deciding anything (worker/approval.py), moves an
   opening of that strategy to ``pending_approval`` with its ``approval_deadline`` (now +
   ``approval_timeout``), an audit row and the ``approval`` notice (:func:`approval_draft`, with
   Approve / Reject buttons in Telegram) in one transaction; the job ends there. Exits and
   flattens never wait (:func:`never_waits`).
2. :func:`decide` takes the trader's answer: from the configured Telegram chats (the worker's
   bot, whose gate drops every other chat), or with the admin token (``POST
   /api/alerts/<id>/approve`` or ``/reject``, and the dashboard's alert page). An approval moves
   the alert back to ``received`` with ``approved_at`` and puts its job on its queue again
   (core/enqueue.py ``approved=True``: the new job replaces the finished one under the same id;
   Redis down, the relay does it later), then ``queued``. The worker then decides on the position
   and prices of that moment, and ``STALE_ALERT_SECONDS`` count from the approval
   (core/models.py ``staleness_start``). A rejection ends it ``rejected``, naming who.
3. Not answered by its deadline, the relay ends it ``rejected`` with the reason
   (core/relay.py ``sweep_unapproved``). Every answer is on the alert's audit trail with who gave
   it: the Telegram chat and user, the dashboard or the admin API.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypedDict

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core import alert_rows, events
from core.enqueue import enqueue_alert
from core.keys import EVENTS_CHANNEL, queue_name
from core.models import Alert, AlertEvent, AlertStatus, utcnow
from core.notices import NoticeDraft
from core.payload import AlertPayload
from core.relay import reject_waiting
from core.risk_rules import RiskRules
from core.routing import read_served

log = logging.getLogger(__name__)

APPROVAL_KIND = "approval"  # the notice with the buttons
DEFAULT_TIMEOUT = Decimal(300)  # seconds, when a strategy requires approval but sets no approval_timeout
PENDING = AlertStatus.PENDING_APPROVAL
_BUTTON = "approval"  # callback data: approval:yes:<alert id> / approval:no:<alert id>


def never_waits(payload: AlertPayload) -> bool:
    """Getting out is never held up: an exit or a flatten (``action: exit``, ``sentiment: flat``,
    ``positionSize: 0``), a cancel and an update of the exits run at once."""
    return (
        payload.action in ("exit", "cancel", "update")
        or payload.sentiment == "flat"
        or payload.position_size == 0
    )


def timeout_of(rules: RiskRules) -> Decimal:
    """How long an alert under ``rules`` may wait for its approval, in seconds."""
    return rules.approval_timeout if rules.approval_timeout is not None else DEFAULT_TIMEOUT


def span(seconds: Decimal | float) -> str:
    """``90 s``, ``5 min``, ``1 h 30 min``."""
    whole = int(seconds)
    if whole < 120 and whole % 60:
        return f"{whole} s"
    hours, minutes = divmod(round(whole / 60), 60)
    return " ".join(p for p in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "") if p)


# --- the Telegram buttons ------------------------------------------------------------------------


def button_data(alert_id: str, approve: bool) -> str:
    """The callback data of an Approve (``approve``) or Reject button (at most 64 bytes)."""
    return f"{_BUTTON}:{'yes' if approve else 'no'}:{alert_id}"


def parse_button(data: str | None) -> tuple[str, bool] | None:
    """(alert id, approve) from a button's callback data; None when it is not one of ours."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != _BUTTON or parts[1] not in ("yes", "no") or not parts[2]:
        return None
    return parts[2][:26], parts[1] == "yes"


def alert_of_notice(kind: str, dedup_key: str | None) -> str | None:
    """The alert an ``approval`` notice asks about (its dedup key is ``approval:<id>:<chat>``),
    so that the sender can give it its buttons; None for every other notice."""
    if kind != APPROVAL_KIND or not dedup_key:
        return None
    parts = dedup_key.split(":")
    return parts[1] if len(parts) >= 2 and parts[0] == APPROVAL_KIND and parts[1] else None


def _what(payload: AlertPayload) -> str:
    """The order the alert asks for, in a few words (the decision itself comes at approval)."""
    size = ""
    if payload.position_size is not None:
        size = f"to position {payload.position_size}"
    elif payload.quantity is not None:
        kind = payload.quantity_type or "fixed_quantity"
        size = f"{payload.quantity}" + ("" if kind == "fixed_quantity" else f" ({kind})")
    parts = [f"{payload.action} {size}".strip(), payload.order_type]
    for name, value in (
        ("limit", payload.limit_price),
        ("stop", payload.stop_price),
        ("price", payload.price),
    ):
        if value is not None:
            parts.append(f"{name} {value}")
    if payload.take_profit or payload.stop_loss:
        exits = [n for n, v in (("take-profit", payload.take_profit), ("stop-loss", payload.stop_loss)) if v]
        parts.append("with " + " and ".join(exits))
    return " · ".join(parts)


def approval_draft(
    alert_id: str, payload: AlertPayload, *, deadline: datetime, timeout: Decimal, account: str | None
) -> NoticeDraft:
    """The ``approval`` notice: what the alert asks, until when it may be approved, and (from the
    sender) the Approve / Reject buttons."""
    esc = html.escape
    lines = [f"✋ <b>Approval needed</b> · {esc(payload.action)} {esc(payload.ticker)}", esc(_what(payload))]
    origin = f"alert <code>{esc(alert_id)}</code>"
    if payload.strategy:
        origin = f"strategy <b>{esc(payload.strategy[:200])}</b> · {origin}"
    lines.append(origin)
    if account:
        lines.append(f"account {esc(account)}")
    lines.append(
        f"Approve within {span(timeout)} (until {deadline:%H:%M:%S} UTC), or it is rejected. It is "
        "decided when approved, on the position and prices of that moment."
    )
    if payload.test:
        lines.append("test alert: decided and recorded, nothing is sent")
    return NoticeDraft(APPROVAL_KIND, "\n".join(lines), f"{APPROVAL_KIND}:{alert_id}")


# --- the answer ----------------------------------------------------------------------------------


class ApprovalRefused(Exception):  # noqa: N818 - an answer to the trader, not a crash
    """The alert is unknown (``status`` 404) or not waiting for approval (409); the message says
    what it is instead."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DecisionDoc(TypedDict):
    """What an approval or a rejection did."""

    alert_id: str
    decision: str  # approved | rejected
    status: str  # the alert's state now: queued (received while Redis is down), or rejected
    by: str


@dataclass(frozen=True)
class _Parts:
    sessions: sessionmaker[Session]
    redis: redis.Redis
    settings: Settings


def decide(
    sessions: sessionmaker[Session],
    client: redis.Redis,
    settings: Settings,
    alert_id: str,
    *,
    approve: bool,
    by: str,
) -> DecisionDoc:
    """Approve or reject a ``pending_approval`` alert for ``by`` (who and where: "Telegram chat
    111 (user 111)", "the dashboard", "the admin API"). Raises :class:`ApprovalRefused` when the
    alert is unknown, no longer waits (decided, or its window closed: the relay rejects it).
    Database errors propagate; Redis down, an approval still holds (the relay enqueues it)."""
    if approve:
        return _approve(sessions, client, alert_id, by)
    reason = f"rejected by {by}"
    try:
        simulator = read_served(client).simulator
    except redis.RedisError:
        simulator = False
    if not reject_waiting(_Parts(sessions, client, settings), alert_id, reason, (PENDING.value,),
                          simulator=simulator):  # fmt: skip
        raise _not_waiting(sessions, alert_id)
    log.warning("alert %s rejected by %s", alert_id, by)
    return {"alert_id": alert_id, "decision": "rejected", "status": AlertStatus.REJECTED.value, "by": by}


def _approve(sessions: sessionmaker[Session], client: redis.Redis, alert_id: str, by: str) -> DecisionDoc:
    now = utcnow()
    message = f"approved by {by}: back on its queue, decided now on the position and prices of this moment"
    with sessions.begin() as session:
        moved = session.execute(
            update(Alert)
            .where(Alert.id == alert_id, Alert.status == PENDING.value, Alert.approval_deadline >= now)
            .values(status=AlertStatus.RECEIVED.value, approved_at=now, reason=None, updated_at=now)
            .returning(Alert.account)
        ).first()
        if moved is None:
            raise _not_waiting(session, alert_id)
        session.add(AlertEvent(alert_id=alert_id, at=now, status=AlertStatus.RECEIVED.value, message=message))
    log.warning("alert %s approved by %s", alert_id, by)
    account = moved[0]
    status = AlertStatus.RECEIVED.value
    try:
        enqueue_alert(client, alert_id, account, approved=True)
        with sessions() as session:  # a connection of its own: mark_queued commits by itself
            engine = session.get_bind()
        with engine.connect() as conn:
            if alert_rows.mark_queued(conn, alert_id, queue_name(account)):
                status = AlertStatus.QUEUED.value
        client.publish(EVENTS_CHANNEL, json.dumps(events.alert_status(alert_id, status, None)))
    except redis.RedisError as exc:
        log.warning("approved alert %s stays received: Redis unavailable (%s); the relay enqueues it",
                    alert_id, type(exc).__name__)  # fmt: skip
    return {"alert_id": alert_id, "decision": "approved", "status": status, "by": by}


def _not_waiting(source: Session | sessionmaker[Session], alert_id: str) -> ApprovalRefused:
    """Why ``alert_id`` cannot be approved or rejected now."""
    query = select(Alert.status, Alert.reason, Alert.approval_deadline).where(Alert.id == alert_id)
    if isinstance(source, Session):
        row = source.execute(query).first()
    else:
        with source() as session:
            row = session.execute(query).first()
    if row is None:
        return ApprovalRefused(404, f"no alert {alert_id!r}")
    status, reason, deadline = row
    if status == PENDING:
        return ApprovalRefused(
            409, f"alert {alert_id}: the approval window closed at {deadline:%H:%M:%S} UTC"
        )
    why = f" ({reason})" if reason else ""
    return ApprovalRefused(409, f"alert {alert_id} is {status.value}{why}, not waiting for approval")
