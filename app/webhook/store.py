"""Persistence of webhook requests: every authenticated request becomes an Alert row.

* valid      -> status ``received`` (committed BEFORE the answer), then ``queued`` once on rq
* invalid    -> status ``invalid`` with ``errors`` (field -> problems) and a one-line ``reason``,
                and its ``alert_invalid`` notice when one is due (:mod:`app.webhook.notices`)
* duplicate  -> status ``duplicate`` with ``duplicate_of`` = the first alert's id; never enqueued
* fan-out    -> a parent ``fanned_out`` (terminal) plus one ``received`` child per account
                (``parent_id``), in the parent's transaction (:mod:`app.webhook.fanout`)

Dedup is race-free on both databases: the first alert claims its idempotency key in
``dedup_claims`` (primary key) in the SAME transaction that inserts it. A concurrent identical
request blocks on that key (PostgreSQL) or on the database write lock (SQLite) and then sees the
claim, so two identical requests at the same instant yield one ``received`` alert and one
``duplicate``. An expired claim is taken over by a conditional UPDATE, equally atomic.

Hot path: a fresh valid alert (its key unclaimed) is written by :mod:`app.webhook.fast_path`
through the DB-API, in one round trip on PostgreSQL and one transaction on SQLite. Everything
else takes a Core ``Connection`` and executes statements built once at import; building
SQLAlchemy statements per request and the ORM unit of work cost more CPU than the database round
trips themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NotRequired, TypedDict

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.webhook.fast_path import make_fast_engine as make_fast_engine
from app.webhook.fast_path import record_fresh_pg, record_fresh_sqlite
from config.settings import Settings
from core.alert_rows import ALERTS, CLAIMS, INSERT_EVENT, insert_event
from core.ids import new_alert_id
from core.models import AlertStatus, utcnow
from core.notices import NoticeDraft, enqueue_draft


class AlertRow(TypedDict):
    """The columns intake writes for one alert (every other column keeps its default)."""

    id: str
    status: str
    reason: str | None
    received_at: datetime
    updated_at: datetime
    raw_body: str
    client_ip: str | None
    strategy: str | None
    account: str | None
    ticker: str | None
    action: str | None
    enqueue_attempts: int
    errors: NotRequired[dict[str, Any]]  # an invalid alert's: field -> problems
    payload: NotRequired[dict[str, Any]]  # a valid alert's normalised payload
    idempotency_key: NotRequired[str | None]
    duplicate_of: NotRequired[str | None]
    signal_time: NotRequired[datetime | None]
    parent_id: NotRequired[str]  # a fan-out child's parent


@dataclass(frozen=True)
class Child:
    """One child alert of a fan-out to write with its parent: its account and stored payload."""

    account: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class FanOutRows:
    """What :func:`record_valid` writes for a fan-out besides the parent: the children, and the
    parent's terminal reason."""

    children: tuple[Child, ...]
    reason: str


@dataclass(frozen=True)
class Recorded:
    """What intake answers: this request's row and, for a duplicate, the first alert.

    ``children``: ``(alert id, account)`` of a fan-out's children (this request's, or for a
    duplicate of a fan-out, the first alert's)."""

    alert_id: str
    status: str
    duplicate_of: str | None = None
    first_status: str | None = None
    children: tuple[tuple[str, str | None], ...] = ()


_INSERT_ALERT = insert(ALERTS)
_TAKE_EXPIRED_CLAIM = (
    update(CLAIMS)
    .where(CLAIMS.c.key == bindparam("b_key"), CLAIMS.c.expires_at <= bindparam("b_now"))
    .values(alert_id=bindparam("b_alert_id"), expires_at=bindparam("b_expires"))
)
_CLAIM_OWNER = select(CLAIMS.c.alert_id).where(CLAIMS.c.key == bindparam("b_key"))
_ALERT_STATUS = select(ALERTS.c.status).where(ALERTS.c.id == bindparam("b_id"))
_CHILDREN = (
    select(ALERTS.c.id, ALERTS.c.account).where(ALERTS.c.parent_id == bindparam("b_id")).order_by(ALERTS.c.id)
)


@cache
def _insert_claim(dialect: str) -> Insert:
    # RETURNING, not rowcount: psycopg reports -1 for INSERT .. ON CONFLICT through SQLAlchemy.
    insert_for = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert_for(CLAIMS).on_conflict_do_nothing(index_elements=["key"]).returning(CLAIMS.c.key)


def clean_text(value: str) -> str:
    """Text storable on every backend: PostgreSQL refuses NUL characters in text columns."""
    return value.replace("\x00", "\\u0000")


def _short(value: Any, limit: int) -> str | None:
    return clean_text(value.strip())[:limit] if isinstance(value, str) and value.strip() else None


def record_invalid(
    conn: Connection,
    *,
    raw_body: str,
    errors: dict[str, Any],
    reason: str,
    client_ip: str | None,
    alert: dict[str, Any] | None = None,
    alert_id: str | None = None,
    notice: NoticeDraft | None = None,
    settings: Settings | None = None,
) -> str:
    """Store a request that authenticated but cannot be executed; returns its alert id.

    ``notice`` (with ``settings``: its chats and mode) is written in the same transaction: the
    trader hears of the alert exactly when it is stored."""
    alert = alert or {}
    now = utcnow()
    alert_id = alert_id or new_alert_id()
    reason = clean_text(reason)
    row: AlertRow = {
        "id": alert_id,
        "status": AlertStatus.INVALID.value,
        "reason": reason,
        "received_at": now,
        "updated_at": now,
        "raw_body": clean_text(raw_body),
        "errors": errors,
        "client_ip": _short(client_ip, 64),
        "strategy": _short(alert.get("strategy"), 128),
        "account": _short(alert.get("account"), 64),
        "ticker": _short(alert.get("ticker"), 64),
        "action": _short(alert.get("action"), 16),
        "enqueue_attempts": 0,
    }
    with conn.begin():
        conn.execute(_INSERT_ALERT, row)
        insert_event(conn, alert_id, now, row["status"], reason)
        if notice is not None and settings is not None:
            enqueue_draft(conn, notice, settings)
    return alert_id


def _claim(conn: Connection, key: str, alert_id: str, now: datetime, window: float) -> str:
    """Claim ``key`` for ``alert_id``; returns the owner (``alert_id`` when we won)."""
    expires = now + timedelta(seconds=window)
    stmt = _insert_claim(conn.dialect.name)
    for _ in range(3):
        if conn.execute(stmt, {"key": key, "alert_id": alert_id, "expires_at": expires}).first() is not None:
            return alert_id
        params = {"b_key": key, "b_now": now, "b_alert_id": alert_id, "b_expires": expires}
        if conn.execute(_TAKE_EXPIRED_CLAIM, params).rowcount == 1:
            return alert_id
        owner = conn.scalar(_CLAIM_OWNER, {"b_key": key})
        if owner is not None:
            return owner
        # The claim was purged between our statements: try again.
    raise RuntimeError(f"could not resolve idempotency key {key}")


def record_valid(
    engine: Engine,
    *,
    fast_engine: Engine | None = None,
    payload: dict[str, Any],
    raw_body: str,
    client_ip: str | None,
    idempotency_key: str,
    window_seconds: float,
    signal_time: datetime | None = None,
    fan_out: FanOutRows | None = None,
) -> Recorded:
    """Store a valid alert as ``received``, or as a ``duplicate`` of the key's first alert.

    Committed when this returns (the caller answers only after that). A fresh key takes
    :mod:`app.webhook.fast_path` (``fast_engine``, from :func:`make_fast_engine`, enables
    PostgreSQL's one-statement path; SQLite needs none).

    With ``fan_out`` the alert is a parent: it is stored ``fanned_out`` (terminal, with
    ``fan_out.reason``) together with one ``received`` child per account, all in the SAME
    transaction as the dedup claim, so either the whole fan-out is committed or nothing is, and
    a resend finds the claim and becomes a duplicate of the parent with no new children."""
    row = _valid_row(payload, raw_body, client_ip, idempotency_key, signal_time)
    now = row["received_at"]
    if window_seconds > 0 and fan_out is None:
        expires = now + timedelta(seconds=window_seconds)
        inserted: str | None = None
        if fast_engine is not None:
            params = dict(row, payload=json.dumps(payload), expires_at=expires)
            inserted = record_fresh_pg(fast_engine, params)
        elif engine.dialect.name == "sqlite":
            inserted = row["id"] if record_fresh_sqlite(engine, row, expires) else None
        if inserted is not None:
            return Recorded(alert_id=inserted, status=row["status"])
        row["id"] = new_alert_id()  # the fallback below must not reuse an id tried here
    with engine.connect() as conn, conn.begin():
        # The claim is the transaction's first statement (a write): on SQLite it takes the write
        # lock at once, so no stale read snapshot can make the transaction fail to upgrade.
        alert_id = row["id"]
        owner = (
            _claim(conn, idempotency_key, alert_id, now, window_seconds) if window_seconds > 0 else alert_id
        )
        if owner != alert_id:
            return _record_duplicate(conn, row, owner, window_seconds)
        if fan_out is not None:
            return _record_fan_out(conn, row, fan_out)
        conn.execute(_INSERT_ALERT, row)
        insert_event(conn, alert_id, now, row["status"], "received")
    return Recorded(alert_id=alert_id, status=row["status"])


def _valid_row(
    payload: dict[str, Any],
    raw_body: str,
    client_ip: str | None,
    idempotency_key: str,
    signal_time: datetime | None,
) -> AlertRow:
    """The ``received`` row of a valid alert, with a new id."""
    now = utcnow()
    return {
        "id": new_alert_id(),
        "status": AlertStatus.RECEIVED.value,
        "reason": None,
        "received_at": now,
        "updated_at": now,
        "raw_body": clean_text(raw_body),
        "payload": payload,
        "client_ip": _short(client_ip, 64),
        "idempotency_key": idempotency_key,
        "duplicate_of": None,
        "strategy": _short(payload.get("strategy"), 128),
        "account": _short(payload.get("account"), 64),
        "ticker": _short(payload.get("ticker"), 64),
        "action": _short(payload.get("action"), 16),
        "signal_time": signal_time,
        "enqueue_attempts": 0,
    }


def _record_duplicate(conn: Connection, row: AlertRow, owner: str, window_seconds: float) -> Recorded:
    """``row`` stored as a duplicate of ``owner`` (the key's first alert), with the first alert's
    status and, when it fanned out, its children."""
    first_status = conn.scalar(_ALERT_STATUS, {"b_id": owner})
    message = f"duplicate of alert {owner} (same idempotency key within {window_seconds:g} s)"
    row["status"], row["duplicate_of"], row["reason"] = AlertStatus.DUPLICATE.value, owner, message
    children: tuple[tuple[str, str | None], ...] = ()
    if first_status == AlertStatus.FANNED_OUT.value:
        children = tuple((c, a) for c, a in conn.execute(_CHILDREN, {"b_id": owner}).all())
    conn.execute(_INSERT_ALERT, row)
    insert_event(conn, row["id"], row["received_at"], row["status"], message)
    return Recorded(
        alert_id=row["id"],
        status=row["status"],
        duplicate_of=owner,
        first_status=first_status,
        children=children,
    )


def _record_fan_out(conn: Connection, row: AlertRow, fan_out: FanOutRows) -> Recorded:
    """``row`` stored as a fan-out parent (terminal) with its ``received`` children."""
    now = row["received_at"]
    # the accounts are the children's; the payload keeps what was sent
    row["status"], row["reason"], row["account"] = AlertStatus.FANNED_OUT.value, fan_out.reason, None
    conn.execute(_INSERT_ALERT, row)
    insert_event(conn, row["id"], now, AlertStatus.RECEIVED.value, "received")
    insert_event(conn, row["id"], now, row["status"], fan_out.reason)
    children = _insert_children(conn, row, fan_out.children, now)
    return Recorded(alert_id=row["id"], status=row["status"], children=children)


def _insert_children(
    conn: Connection, parent: AlertRow, children: tuple[Child, ...], now: datetime
) -> tuple[tuple[str, str | None], ...]:
    """The ``received`` child rows of ``parent`` (inserted after it: the foreign key), each with
    its own id (hence its own orderRefs) and no idempotency key (the parent holds the claim)."""
    rows: list[AlertRow] = []
    # ids in the order the accounts were given (ids are time-ordered, random within a millisecond):
    # every list of the children (by id) then shows them in that order
    ids = sorted(new_alert_id() for _ in children)
    for child_id, child in zip(ids, children, strict=True):
        rows.append(
            {
                **parent,
                "id": child_id,
                "status": AlertStatus.RECEIVED.value,
                "reason": None,
                "payload": child.payload,
                "idempotency_key": None,
                "account": _short(child.account, 64),
                "parent_id": parent["id"],
            }
        )
    conn.execute(_INSERT_ALERT, rows)
    events = [
        {
            "alert_id": r["id"],
            "at": now,
            "status": AlertStatus.RECEIVED.value,
            "message": f"received: account {r['account']} of fan-out {parent['id']}",
        }
        for r in rows
    ]
    conn.execute(INSERT_EVENT, events)
    return tuple((r["id"], r["account"]) for r in rows)
