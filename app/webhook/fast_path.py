"""The hot path of a fresh valid alert: its dedup claim, row and ``received`` event, committed in
one round trip (PostgreSQL) or one transaction (SQLite), through the DB-API.

What it writes is exactly what :func:`app.webhook.store.record_valid`'s transactional path writes
(tests/app/test_store_paths.py compares the stored rows), committed before it returns. It skips
SQLAlchemy's execution machinery (a Connection, an execution context and a result per statement),
which cost as much CPU as the database's own work on intake's hot path: the statements are
compiled by SQLAlchemy once per dialect, and on SQLite each value goes through its column type's
own bind processor (PostgreSQL's statement takes the values as they are, as ``text()`` does).

It handles only the common case, a free idempotency key. When the key is already claimed nothing
is written and the caller's transactional path sorts out "expired claim" versus "duplicate".
Errors reach the caller as SQLAlchemy's exceptions (``OperationalError`` for a database that is
down or locked, which the view answers with 503), as on every other path.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Table, create_engine, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from core.alert_rows import ALERTS, CLAIMS, EVENTS, INSERT_EVENT
from core.dbapi import DbapiStatement, compile_statement, pooled_dbapi
from core.ids import new_alert_id
from core.models import AlertStatus

# The columns of a fresh valid alert (every other column keeps its default: NULL).
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

# PostgreSQL: claim + alert + event in ONE autocommitted statement (atomic, one round trip
# instead of BEGIN / three INSERTs / COMMIT). It inserts nothing when the key is already claimed.
_PG_RECORD_FRESH = text(
    """
WITH claim AS (
    INSERT INTO dedup_claims (key, alert_id, expires_at) VALUES (:idempotency_key, :id, :expires_at)
    ON CONFLICT (key) DO NOTHING RETURNING key
), alert AS (
    INSERT INTO alerts (id, status, reason, received_at, updated_at, client_ip, raw_body, payload,
                        idempotency_key, duplicate_of, strategy, account, ticker, action,
                        signal_time, enqueue_attempts)
    SELECT :id, :status, NULL, :received_at, :received_at, :client_ip, :raw_body, CAST(:payload AS JSON),
           :idempotency_key, NULL, :strategy, :account, :ticker, :action, :signal_time, 0
    FROM claim RETURNING id
), event AS (
    INSERT INTO alert_events (alert_id, at, status, message)
    SELECT id, :received_at, :status, 'received' FROM alert
)
SELECT count(*) FROM alert
"""
)


def make_fast_engine(engine: Engine) -> Engine | None:
    """For PostgreSQL, a small autocommit engine without pre-ping for :func:`record_fresh_pg`.

    The pool's pre-ping costs a transaction (BEGIN, SELECT 1, ROLLBACK) per request, as much as the
    insert itself. Without it a connection PostgreSQL dropped fails on first use; that failure is
    detected and retried once on a fresh connection, which is safe because the statement is atomic
    and the retry uses a new alert id under the same idempotency key (see :func:`record_fresh_pg`).
    None for other databases (SQLite has no pre-ping to save).
    """
    if engine.dialect.name != "postgresql":
        return None
    return create_engine(
        engine.url,
        isolation_level="AUTOCOMMIT",
        pool_pre_ping=False,
        pool_reset_on_return=None,  # autocommit: no transaction to roll back
        pool_size=engine.pool.size(),  # type: ignore[attr-defined]
        max_overflow=engine.pool.size(),  # type: ignore[attr-defined]
        pool_recycle=1800,
        connect_args={"connect_timeout": 3},
    )


@lru_cache(maxsize=8)
def _pg_sql(dialect: Dialect) -> str:
    return str(_PG_RECORD_FRESH.compile(dialect=dialect))


def record_fresh_pg(fast_engine: Engine, params: dict[str, Any]) -> str | None:
    """PostgreSQL's one statement; the alert id it stored, or None when the key is already claimed.

    ``params``: the row's columns, ``payload`` as JSON text and ``expires_at`` (the claim's end).
    A retry after a dropped connection cannot double an alert: if the first attempt did commit,
    the retry (new id, same key) finds the key claimed and returns None, the caller records a
    duplicate of the first alert, and the relay enqueues that first alert (still ``received``).
    """
    sql = _pg_sql(fast_engine.dialect)
    for attempt in (1, 2):
        try:
            with pooled_dbapi(fast_engine) as raw:
                cursor = raw.cursor()
                cursor.execute(sql, params)
                stored = cursor.fetchone()[0]
                cursor.close()
                return params["id"] if stored else None
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
            params = dict(params, id=new_alert_id())
    return None


def _compiled(stmt: Insert, table: Table, columns: Sequence[str], dialect: Dialect) -> DbapiStatement:
    compiled = compile_statement(stmt, dialect, columns)
    if sorted(compiled.names) != sorted(columns):  # e.g. a new column with a Python-side default
        raise RuntimeError(f"unexpected columns in the INSERT into {table.name}: {compiled.names}")
    return compiled


@dataclass(frozen=True)
class _SqlitePlan:
    claim: DbapiStatement
    alert: DbapiStatement
    event: DbapiStatement
    # One writer of this process at a time: SQLite has one write lock per database, and a thread
    # that finds it taken sleeps in SQLite's busy handler (1 ms, 2 ms, 5 ms ...) instead of
    # waking when it is released. Waiting here wakes at once.
    writing: threading.Lock = field(default_factory=threading.Lock)


# One plan (and so one writers' lock) per engine's dialect, for as long as the engine lives.
_SQLITE_PLANS: weakref.WeakKeyDictionary[Dialect, _SqlitePlan] = weakref.WeakKeyDictionary()
_SQLITE_PLANS_LOCK = threading.Lock()


def _sqlite_plan(dialect: Dialect) -> _SqlitePlan:
    plan = _SQLITE_PLANS.get(dialect)
    if plan is not None:
        return plan
    with _SQLITE_PLANS_LOCK:
        plan = _SQLITE_PLANS.get(dialect)
        if plan is None:
            claim = (
                sqlite_insert(CLAIMS).on_conflict_do_nothing(index_elements=["key"]).returning(CLAIMS.c.key)
            )
            plan = _SQLITE_PLANS[dialect] = _SqlitePlan(
                claim=_compiled(claim, CLAIMS, ("key", "alert_id", "expires_at"), dialect),
                alert=_compiled(ALERTS.insert(), ALERTS, ALERT_COLUMNS, dialect),
                event=_compiled(INSERT_EVENT, EVENTS, ("alert_id", "at", "status", "message"), dialect),
            )
    return plan


def writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """This process's SQLite writers' lock for ``engine`` (a no-op for other databases): a thread
    that also writes beside intake (the queued marker) takes it, so that intake waits on it and
    wakes the moment it is released, instead of sleeping in SQLite's busy handler."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    return _sqlite_plan(engine.dialect).writing


def record_fresh_sqlite(engine: Engine, row: Mapping[str, Any], expires_at: datetime) -> bool:
    """SQLite's one transaction: commit ``row`` (a fresh ``received`` alert, its ``ALERT_COLUMNS``)
    with its claim and event; False, with nothing written, when its key is already claimed."""
    plan = _sqlite_plan(engine.dialect)
    claim = {"key": row["idempotency_key"], "alert_id": row["id"], "expires_at": expires_at}
    status = AlertStatus.RECEIVED.value
    event = {"alert_id": row["id"], "at": row["received_at"], "status": status, "message": "received"}
    # the parameters first (JSON, dates as text): the lock is held for the statements alone
    claim_values, alert_values = plan.claim.params(claim), plan.alert.params(row)
    event_values = plan.event.params(event)
    with pooled_dbapi(engine) as raw, plan.writing:
        cursor = raw.cursor()
        # The claim is the first statement (a write): it takes SQLite's write lock at once.
        if cursor.execute(plan.claim.sql, claim_values).fetchone() is None:
            raw.rollback()
            return False
        cursor.execute(plan.alert.sql, alert_values)
        cursor.execute(plan.event.sql, event_values)
        raw.commit()
        cursor.close()
    return True
