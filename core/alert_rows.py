"""The outbox's row transitions shared by intake, its queued-marker and the relay: an alert moves
from ``received`` to ``queued`` (never backwards), each move with its audit row; and housekeeping
of expired dedup claims. Plain SQLAlchemy Core on a connection: the intake fast path and the relay
both call these without an ORM session.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, insert, update

from core.models import Alert, AlertEvent, AlertStatus, DedupClaim, utcnow

# the tables as SQLAlchemy Core sees them (intake's store builds its statements on them too)
ALERTS = Alert.__table__
EVENTS = AlertEvent.__table__
CLAIMS = DedupClaim.__table__
INSERT_EVENT = insert(EVENTS)

_QUEUED_VALUES = {
    "status": AlertStatus.QUEUED.value,
    "queue_name": bindparam("b_queue"),
    "enqueued_at": bindparam("b_now"),
    "updated_at": bindparam("b_now"),
    "enqueue_attempts": ALERTS.c.enqueue_attempts + 1,
}
_MARK_QUEUED = (
    update(ALERTS)
    .where(ALERTS.c.id == bindparam("b_id"), ALERTS.c.status == AlertStatus.RECEIVED.value)
    .values(_QUEUED_VALUES)
)
# Several alerts by id. The status test is an expression (status || '') so that no database looks
# the rows up through the status index (SQLite would: every 'received' alert read per batch).
_MARK_QUEUED_RETURNING = (
    update(ALERTS)
    .where(
        ALERTS.c.id.in_(bindparam("b_ids", expanding=True)),
        ALERTS.c.status.concat("") == AlertStatus.RECEIVED.value,
    )
    .values(_QUEUED_VALUES)
    .returning(ALERTS.c.id)
)


def insert_event(conn: Connection, alert_id: str, at: datetime, status: str, message: str) -> None:
    """One audit row of an alert."""
    conn.execute(INSERT_EVENT, {"alert_id": alert_id, "at": at, "status": status, "message": message})


def mark_queued(conn: Connection, alert_id: str, queue: str) -> bool:
    """Move a ``received`` alert to ``queued`` (never backwards: the worker may be faster)."""
    now = utcnow()
    with conn.begin():
        moved = conn.execute(_MARK_QUEUED, {"b_id": alert_id, "b_queue": queue, "b_now": now}).rowcount
        if moved:
            insert_event(conn, alert_id, now, AlertStatus.QUEUED.value, f"queued on {queue}")
    return bool(moved)


def mark_queued_many(conn: Connection, items: list[tuple[str, str]]) -> int:
    """:func:`mark_queued` for several ``(alert_id, queue)`` pairs in one transaction: one UPDATE
    per queue (where the database returns the rows it moved; else one per alert) and one INSERT
    of their audit rows."""
    now = utcnow()
    by_queue: dict[str, list[str]] = {}
    for alert_id, queue in items:
        by_queue.setdefault(queue, []).append(alert_id)
    events = []
    with conn.begin():
        for queue, ids in by_queue.items():
            for alert_id in _move_to_queued(conn, ids, queue, now):
                status = AlertStatus.QUEUED.value
                events.append(
                    {"alert_id": alert_id, "at": now, "status": status, "message": f"queued on {queue}"}
                )
        if events:
            conn.execute(INSERT_EVENT, events)
    return len(events)


def _move_to_queued(conn: Connection, ids: list[str], queue: str, now: datetime) -> list[str]:
    """Of ``ids``, those moved from ``received`` to ``queued`` on ``queue``, in the given order."""
    if conn.dialect.update_returning:  # PostgreSQL, SQLite >= 3.35
        params = {"b_ids": ids, "b_queue": queue, "b_now": now}
        moved = set(conn.scalars(_MARK_QUEUED_RETURNING, params))
        return [alert_id for alert_id in ids if alert_id in moved]
    return [
        alert_id
        for alert_id in ids
        if conn.execute(_MARK_QUEUED, {"b_id": alert_id, "b_queue": queue, "b_now": now}).rowcount
    ]


def purge_expired_claims(conn: Connection, older_than_seconds: float = 3600) -> int:
    """Delete dedup claims that expired long ago (housekeeping, run by the relay)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with conn.begin():
        return conn.execute(delete(CLAIMS).where(CLAIMS.c.expires_at < cutoff)).rowcount
