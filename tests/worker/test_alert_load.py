"""The job's first read of its alert runs through the DB-API (core/dbapi.py ``DbapiQuery``): it must
read exactly what SQLAlchemy's own execution of the same statement reads, on SQLite and PostgreSQL
(the status as its enum, the payload and plan as dicts, an aware datetime, the pause switch)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from core.context import AppContext
from core.dbapi import compile_query
from core.ids import new_alert_id
from core.models import Alert, AlertStatus, Control, utcnow
from core.services import PAUSED_KEY
from worker.execution.executor import _LOAD_ALERT


def _alert(db_ctx: AppContext, **columns: object) -> str:
    alert_id = new_alert_id()
    with db_ctx.sessions.begin() as session:
        session.add(Alert(id=alert_id, received_at=utcnow() - timedelta(seconds=30), ticker="AAPL", action="buy",
                          payload={"ticker": "AAPL", "action": "buy", "quantity": 5}, **columns))  # fmt: skip
    return alert_id


def _through_sqlalchemy(db_ctx: AppContext, alert_id: str) -> tuple[object, ...] | None:
    with db_ctx.engine.connect() as connection:
        row = connection.execute(_LOAD_ALERT, {"alert_id": alert_id}).first()
    return None if row is None else tuple(row)


def test_a_fresh_alert_reads_as_sqlalchemy_reads_it(db_ctx):
    alert_id = _alert(db_ctx, status=AlertStatus.QUEUED)
    query = compile_query(_LOAD_ALERT, db_ctx.engine.dialect)
    row = query.one(db_ctx.engine, {"alert_id": alert_id})
    assert row == _through_sqlalchemy(db_ctx, alert_id)
    status, payload, counted_from, paused, plan = row
    assert status is AlertStatus.QUEUED and payload == {"ticker": "AAPL", "action": "buy", "quantity": 5}
    assert counted_from.tzinfo is not None and paused is None and plan is None
    assert query.one(db_ctx.engine, {"alert_id": alert_id}) == row  # the processors, built once, again


def test_an_approved_alert_with_a_plan_while_paused_reads_as_sqlalchemy_reads_it(db_ctx):
    approved = utcnow()
    alert_id = _alert(
        db_ctx, status=AlertStatus.PROCESSING, approved_at=approved, plan={"kind": "open", "legs": [1, 2]}
    )
    with db_ctx.sessions.begin() as session:
        session.merge(Control(key=PAUSED_KEY, value="1"))
    try:  # PostgreSQL's test database is shared by the run: the switch must not outlive the test
        row = compile_query(_LOAD_ALERT, db_ctx.engine.dialect).one(db_ctx.engine, {"alert_id": alert_id})
        assert row == _through_sqlalchemy(db_ctx, alert_id)
    finally:
        with db_ctx.sessions.begin() as session:
            session.execute(delete(Control).where(Control.key == PAUSED_KEY))
    status, _payload, counted_from, paused, plan = row
    assert status is AlertStatus.PROCESSING and paused == "1" and plan == {"kind": "open", "legs": [1, 2]}
    assert abs(counted_from - approved) < timedelta(milliseconds=1)  # staleness counts from the approval


def test_an_unknown_alert_reads_as_none(db_ctx):
    assert (
        compile_query(_LOAD_ALERT, db_ctx.engine.dialect).one(db_ctx.engine, {"alert_id": "01NOSUCHALERT"})
        is None
    )
