"""The decision's write, the one every opening order waits for, as plain DB-API statements.

It writes exactly what :func:`worker.recording.alert_state.store_decision` and
:func:`worker.recording.protection.save_spec` write on the ORM's path (the plan, ``processing``,
the two audit lines, the position's protection spec), in one transaction of its own on the
recorder's thread (:meth:`worker.recording.recorder.Recorder.run_direct`), through the column types'
own bind processors (core/dbapi.py). tests/worker/test_decision_row.py compares the rows of the
two paths. On this machine the ORM's session around the same statements cost about three times
the database's own work (``python -m bench.decision_write``).

It handles only the first write of a decision on an alert not yet ``processing``; otherwise it
writes nothing and says so, and the caller takes the general path.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, text, update
from sqlalchemy.engine import Dialect

from core import events
from core.dbapi import DbapiStatement, compile_statement, pooled_dbapi
from core.events import Event
from core.models import Alert, AlertStatus, utcnow
from worker.recording.alert_state import BEFORE_PROCESSING, INSERT_EVENTS, PICKED_UP
from worker.recording.protection import INSERT_SPEC, UPDATE_SPEC, ProtectionSpec, spec_key

log = logging.getLogger(__name__)

_ALERTS = Alert.__table__
# the states it moves from, as literals (constants of the code): the driver takes no list
_BEFORE = ", ".join(f"'{status.value}'" for status in BEFORE_PROCESSING)
_STORE = (
    update(_ALERTS)
    .where(_ALERTS.c.id == bindparam("alert_id"), text(f"alerts.status IN ({_BEFORE})"))
    .values(plan=bindparam("new_plan"), status=AlertStatus.PROCESSING, updated_at=bindparam("at"))
    .returning(_ALERTS.c.reason)
)


@dataclass(frozen=True)
class _Statements:
    store: DbapiStatement
    event: DbapiStatement
    update_spec: DbapiStatement
    insert_spec: DbapiStatement


_COMPILED: dict[Dialect, _Statements] = {}
_COMPILING = threading.Lock()


def _statements(dialect: Dialect) -> _Statements:
    found = _COMPILED.get(dialect)
    if found is None:
        with _COMPILING:
            found = _COMPILED.setdefault(dialect, _Statements(
                compile_statement(_STORE, dialect),
                compile_statement(INSERT_EVENTS, dialect, ("alert_id", "status", "message", "at")),
                compile_statement(UPDATE_SPEC, dialect),
                compile_statement(INSERT_SPEC, dialect),
            ))  # fmt: skip
    return found


def write_decision(
    engine: Engine, alert_id: str, plan: dict[str, Any], message: str, spec: ProtectionSpec | None
) -> list[Event] | None:
    """Commit the decision: the plan, ``processing`` with its audit lines (picked up, ``message``),
    and the spec the position will have (None: none). Returns the events to publish, or None,
    having written nothing, when the alert is already past its first write."""
    statements, now = _statements(engine.dialect), utcnow()
    spec_values = None
    if spec is not None:
        spec_values = {"spec_key": spec_key(spec.account, spec.con_id),
                       "spec_value": json.dumps(spec.to_json(), sort_keys=True), "at": now}  # fmt: skip
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
        if spec_values is not None:
            cursor.execute(statements.update_spec.sql, statements.update_spec.params(spec_values))
            if cursor.rowcount == 0:  # one writer (the recorder thread): no race
                cursor.execute(statements.insert_spec.sql, statements.insert_spec.params(spec_values))
        raw.commit()
        cursor.close()
    log.info("alert %s -> %s: %s", alert_id, AlertStatus.PROCESSING.value, PICKED_UP)
    return [events.alert_status(alert_id, AlertStatus.PROCESSING.value, moved[0])]
