"""The decision's write, the one every opening order waits for, as plain DB-API statements.

It writes exactly what :func:`worker.recording.alert_state.store_decision` and
:func:`worker.recording.protection.save_spec` write on the ORM's path (the plan, ``processing``,
the two audit lines, the position's protection spec), in one transaction of its own on the
recorder's thread (:meth:`worker.recording.recorder.Recorder.run_direct`), through the column types'
own bind processors (core/dbapi.py); the statements are the ORM path's own.
tests/worker/test_recording_decision_write.py compares the rows of the two paths. Without the
session around them the write took 0.99 ms instead of 1.34 ms on SQLite and 2.68 ms instead of
4.06 ms on PostgreSQL (``python -m bench.decision_write``, p50, the same machine).

It handles only the first write of a decision on an alert not yet ``processing``; otherwise it
writes nothing and says so, and the caller takes the general path.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect

from core import events
from core.alert_rows import INSERT_EVENT
from core.dbapi import DbapiStatement, compile_statement, pooled_dbapi
from core.events import Event
from core.models import AlertStatus, utcnow
from worker.recording.alert_state import PICKED_UP, STORE_DECISION
from worker.recording.protection import INSERT_SPEC, UPDATE_SPEC, ProtectionSpec, spec_key, spec_values

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Statements:
    store: DbapiStatement
    event: DbapiStatement
    update_spec: DbapiStatement
    insert_spec: DbapiStatement


@functools.lru_cache(maxsize=8)  # per dialect: compiled once
def _statements(dialect: Dialect) -> _Statements:
    return _Statements(
        compile_statement(STORE_DECISION, dialect),
        compile_statement(INSERT_EVENT, dialect, ("alert_id", "status", "message", "at")),
        compile_statement(UPDATE_SPEC, dialect),
        compile_statement(INSERT_SPEC, dialect),
    )


def write_decision(
    engine: Engine, alert_id: str, plan: dict[str, Any], message: str, spec: ProtectionSpec | None
) -> list[Event] | None:
    """Commit the decision: the plan, ``processing`` with its audit lines (picked up, ``message``),
    and the spec the position will have (None: none). Returns the events to publish, or None,
    having written nothing, when the alert is already past its first write."""
    statements, now = _statements(engine.dialect), utcnow()
    spec_row = None if spec is None else spec_values(spec_key(spec.account, spec.con_id), spec, now)
    store = statements.store.params({"alert_id": alert_id, "new_plan": plan, "at": now})
    lines = [statements.event.params({"alert_id": alert_id, "status": AlertStatus.PROCESSING.value,
                                      "message": text_, "at": now}) for text_ in (PICKED_UP, message)]  # fmt: skip
    with pooled_dbapi(engine) as raw:
        cursor = raw.cursor()
        cursor.execute(statements.store.sql, store)
        moved = cursor.fetchone()
        if moved is None:
            raw.rollback()
            return None
        for line in lines:
            cursor.execute(statements.event.sql, line)
        if spec_row is not None:
            cursor.execute(statements.update_spec.sql, statements.update_spec.params(spec_row))
            if cursor.rowcount == 0:  # one writer (the recorder thread): no race
                cursor.execute(statements.insert_spec.sql, statements.insert_spec.params(spec_row))
        raw.commit()
        cursor.close()
    log.info("alert %s -> %s: %s", alert_id, AlertStatus.PROCESSING.value, PICKED_UP)
    return [events.alert_status(alert_id, AlertStatus.PROCESSING.value, moved[0])]
