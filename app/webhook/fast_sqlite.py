"""SQLite's fast path for a fresh valid alert: claim + alert + event in one DB-API transaction.

What it writes is exactly what :func:`app.webhook.store.record_valid`'s transactional path writes
(the same three INSERTs, compiled by SQLAlchemy for this dialect once, each value converted by its
column type's own bind processor), committed before it returns. It skips SQLAlchemy's execution
machinery (a Connection, an execution context and a result object per statement), which cost as
much CPU as SQLite's own work on intake's hot path.

It handles only the common case: the idempotency key is free. When the key is already claimed it
rolls back and returns None, and the transactional path sorts out "expired claim" versus
"duplicate". Errors reach the caller as SQLAlchemy's exceptions (``OperationalError`` for a
locked or unreachable database, which the view answers with 503), as on every other path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from core.alert_rows import ALERTS, CLAIMS, EVENTS, INSERT_EVENT
from core.models import AlertStatus

# The columns of a fresh valid alert (those of PostgreSQL's one-statement path in store.py).
ALERT_COLUMNS = (
    "id",
    "status",
    "reason",
    "received_at",
    "updated_at",
    "client_ip",
    "raw_body",
    "payload",
    "idempotency_key",
    "duplicate_of",
    "strategy",
    "account",
    "ticker",
    "action",
    "signal_time",
    "enqueue_attempts",
)
_CLAIM_COLUMNS = ("key", "alert_id", "expires_at")
_EVENT_COLUMNS = ("alert_id", "at", "status", "message")

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Statement:
    """One INSERT as SQL text for the DB-API: its positional columns, each with its bind processor."""

    sql: str
    columns: tuple[tuple[str, Processor], ...]

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[c] if proc is None else proc(row[c]) for c, proc in self.columns)


def _compiled(stmt: Insert, table: Table, columns: Sequence[str], dialect: Dialect) -> _Statement:
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup or ())
    if sorted(order) != sorted(columns):  # e.g. a new column with a Python-side default
        raise RuntimeError(f"unexpected columns in the INSERT into {table.name}: {order}")
    return _Statement(
        str(compiled),
        tuple((c, table.c[c].type.dialect_impl(dialect).bind_processor(dialect)) for c in order),
    )


@dataclass(frozen=True)
class _Plan:
    claim: _Statement
    alert: _Statement
    event: _Statement


@lru_cache(maxsize=8)
def _plan(dialect: Dialect) -> _Plan:
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    claim = sqlite_insert(CLAIMS).on_conflict_do_nothing(index_elements=["key"]).returning(CLAIMS.c.key)
    return _Plan(
        claim=_compiled(claim, CLAIMS, _CLAIM_COLUMNS, dialect),
        alert=_compiled(ALERTS.insert(), ALERTS, ALERT_COLUMNS, dialect),
        event=_compiled(INSERT_EVENT, EVENTS, _EVENT_COLUMNS, dialect),
    )


def record_fresh(engine: Engine, row: Mapping[str, Any], expires_at: datetime) -> bool:
    """Commit ``row`` (a fresh ``received`` alert) with its claim and event; False, with nothing
    written, when its idempotency key is already claimed."""
    plan = _plan(engine.dialect)
    claim = {"key": row["idempotency_key"], "alert_id": row["id"], "expires_at": expires_at}
    event = {"alert_id": row["id"], "at": row["received_at"], "status": AlertStatus.RECEIVED.value}
    event["message"] = "received"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        statement = plan.claim
        try:
            # The claim is the first statement (a write): it takes SQLite's write lock at once.
            if cursor.execute(statement.sql, statement.values(claim)).fetchone() is None:
                raw.rollback()
                return False
            statement = plan.alert
            cursor.execute(statement.sql, statement.values(row))
            statement = plan.event
            cursor.execute(statement.sql, statement.values(event))
            raw.commit()
        except engine.dialect.loaded_dbapi.Error as exc:
            raw.rollback()
            raise DBAPIError.instance(
                statement.sql, None, exc, engine.dialect.loaded_dbapi.Error, hide_parameters=True
            ) from exc
        finally:
            cursor.close()
    finally:
        raw.close()  # back to the pool
    return True
