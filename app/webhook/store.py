"""Persistence of webhook requests: every authenticated request becomes an Alert row.

* valid      -> status ``received`` (committed BEFORE the answer), then ``queued`` once on rq
* invalid    -> status ``invalid`` with ``errors`` (field -> problems) and a one-line ``reason``
* duplicate  -> status ``duplicate`` with ``duplicate_of`` = the first alert's id; never enqueued

Dedup is race-free on both databases: the first alert claims its idempotency key in
``dedup_claims`` (primary key) in the SAME transaction that inserts it. A concurrent identical
request blocks on that key (PostgreSQL) or on the database write lock (SQLite) and then sees the
claim, so two identical requests at the same instant yield one ``received`` alert and one
``duplicate``. An expired claim is taken over by a conditional UPDATE, equally atomic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy import insert as insert_row
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from app.ids import new_alert_id
from app.models import Alert, AlertEvent, AlertStatus, DedupClaim, utcnow


@dataclass(frozen=True)
class Recorded:
    """What intake answers: this request's row and, for a duplicate, the first alert."""

    alert_id: str
    status: str
    duplicate_of: str | None = None
    first_status: str | None = None


def clean_text(value: str) -> str:
    """Text storable on every backend: PostgreSQL refuses NUL characters in text columns."""
    return value.replace("\x00", "\\u0000")


def _short(value: Any, limit: int) -> str | None:
    return clean_text(value.strip())[:limit] if isinstance(value, str) and value.strip() else None


def record_invalid(
    sessions: sessionmaker[Session],
    *,
    raw_body: str,
    errors: dict[str, Any],
    reason: str,
    client_ip: str | None,
    alert: dict[str, Any] | None = None,
) -> str:
    """Store a request that authenticated but cannot be executed; returns its alert id."""
    alert = alert or {}
    row = Alert(
        id=new_alert_id(),
        status=AlertStatus.INVALID.value,
        reason=clean_text(reason),
        raw_body=clean_text(raw_body),
        errors=errors,
        client_ip=_short(client_ip, 64),
        strategy=_short(alert.get("strategy"), 128),
        account=_short(alert.get("account"), 64),
        ticker=_short(alert.get("ticker"), 64),
        action=_short(alert.get("action"), 16),
    )
    with sessions.begin() as session:
        session.add(row)
        session.add(AlertEvent(alert_id=row.id, status=row.status, message=reason))
    return row.id


def _claim(session: Session, key: str, alert_id: str, now: datetime, window: float) -> str:
    """Claim ``key`` for ``alert_id``; returns the owner (``alert_id`` when we won)."""
    expires = now + timedelta(seconds=window)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for _ in range(3):
        stmt = insert(DedupClaim).values(key=key, alert_id=alert_id, expires_at=expires)
        # RETURNING, not rowcount: psycopg reports -1 for INSERT .. ON CONFLICT through SQLAlchemy.
        stmt = stmt.on_conflict_do_nothing(index_elements=["key"]).returning(DedupClaim.key)
        if session.execute(stmt).first() is not None:
            return alert_id
        taken = session.execute(
            update(DedupClaim)
            .where(DedupClaim.key == key, DedupClaim.expires_at <= now)
            .values(alert_id=alert_id, expires_at=expires)
        ).rowcount
        if taken == 1:
            return alert_id
        owner = session.scalar(select(DedupClaim.alert_id).where(DedupClaim.key == key))
        if owner is not None:
            return owner
        # The claim was purged between our statements: try again.
    raise RuntimeError(f"could not resolve idempotency key {key}")


def record_valid(
    sessions: sessionmaker[Session],
    *,
    payload: dict[str, Any],
    raw_body: str,
    client_ip: str | None,
    idempotency_key: str,
    window_seconds: float,
    signal_time: datetime | None = None,
) -> Recorded:
    """Store a valid alert as ``received``, or as a ``duplicate`` of the key's first alert."""
    now = utcnow()
    alert_id = new_alert_id()
    row: dict[str, Any] = {
        "id": alert_id,
        "received_at": now,
        "updated_at": now,
        "raw_body": clean_text(raw_body),
        "payload": payload,
        "client_ip": _short(client_ip, 64),
        "idempotency_key": idempotency_key,
        "strategy": _short(payload.get("strategy"), 128),
        "account": _short(payload.get("account"), 64),
        "ticker": _short(payload.get("ticker"), 64),
        "action": _short(payload.get("action"), 16),
        "signal_time": signal_time,
        "enqueue_attempts": 0,
        "reason": None,
        "duplicate_of": None,
    }
    # Core statements, not ORM objects: this is the hot path and nothing is read back.
    with sessions.begin() as session:
        # The claim is the transaction's first statement (a write): on SQLite it takes the write
        # lock at once, so no stale read snapshot can make the transaction fail to upgrade.
        owner = (
            _claim(session, idempotency_key, alert_id, now, window_seconds)
            if window_seconds > 0
            else alert_id
        )
        first_status = None
        message = "received"
        row["status"] = AlertStatus.RECEIVED.value
        if owner != alert_id:
            first_status = session.scalar(select(Alert.status).where(Alert.id == owner))
            row["status"] = AlertStatus.DUPLICATE.value
            row["duplicate_of"] = owner
            row["reason"] = message = (
                f"duplicate of alert {owner} (same idempotency key within {window_seconds:g} s)"
            )
        session.execute(insert_row(Alert.__table__).values(**row))
        session.execute(
            insert_row(AlertEvent.__table__).values(
                alert_id=alert_id, at=now, status=row["status"], message=message
            )
        )
    if owner == alert_id:
        return Recorded(alert_id=alert_id, status=row["status"])
    return Recorded(alert_id=alert_id, status=row["status"], duplicate_of=owner, first_status=first_status)


def mark_queued(sessions: sessionmaker[Session], alert_id: str, queue: str) -> bool:
    """Move a ``received`` alert to ``queued`` (never backwards: the worker may be faster)."""
    now = utcnow()
    with sessions.begin() as session:
        moved = session.execute(
            update(Alert)
            .where(Alert.id == alert_id, Alert.status == AlertStatus.RECEIVED.value)
            .values(
                status=AlertStatus.QUEUED.value,
                queue_name=queue,
                enqueued_at=now,
                updated_at=now,
                enqueue_attempts=Alert.enqueue_attempts + 1,
            )
        ).rowcount
        if moved:
            session.execute(
                insert_row(AlertEvent.__table__).values(
                    alert_id=alert_id, at=now, status=AlertStatus.QUEUED.value, message=f"queued on {queue}"
                )
            )
    return bool(moved)


def purge_expired_claims(sessions: sessionmaker[Session], older_than_seconds: float = 3600) -> int:
    """Delete dedup claims that expired long ago (housekeeping, run by the relay)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with sessions.begin() as session:
        return session.execute(delete(DedupClaim).where(DedupClaim.expires_at < cutoff)).rowcount
