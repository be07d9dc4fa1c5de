"""The decision write (``JobWrites.decided``): the DB-API's statements for the first write about
an alert (worker/recording/decision_row.py; ``store_decision`` on the unit of work's path), the
ORM's general path for every other case, and the same rows either way. On SQLite and PostgreSQL,
through the real recorder thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from support import queue_alert

from core.context import AppContext
from core.models import Alert, AlertEvent, AlertStatus, Control
from worker.decision.stored import StoredDecision
from worker.execution.job_writes import JobWrites, opening_protection
from worker.recording.alert_state import store_decision
from worker.recording.protection import save_spec, spec_key
from worker.recording.recorder import Direct, Recorder

STORED_PLANS = Path(__file__).parent / "data" / "stored_plans.jsonl"


@pytest.fixture
def ctx(db_ctx: AppContext) -> AppContext:
    """SQLite, then PostgreSQL (tests/worker/conftest.py)."""
    return db_ctx


@pytest.fixture
def recorder(ctx: AppContext) -> Iterator[Recorder]:
    rec = Recorder(ctx.sessions, None, ctx.settings, 7)
    yield rec
    rec.stop()


def _decision() -> StoredDecision:
    with STORED_PLANS.open() as lines:
        return StoredDecision.from_json(json.loads(lines.readline()))


def _rows(ctx: AppContext, alert_id: str) -> tuple[Alert, list[tuple[str, str]]]:
    with ctx.sessions() as session:
        alert = session.get(Alert, alert_id)
        session.expunge(alert)
        trail = session.execute(select(AlertEvent.status, AlertEvent.message)
                                .where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)).all()  # fmt: skip
        return alert, [tuple(row) for row in trail]


def _queued(ctx: AppContext) -> str:
    return queue_alert(
        ctx.sessions, ctx.redis, {"ticker": "AAPL", "action": "buy", "quantity": 5}, enqueue=False
    )


def test_the_first_write_stores_the_plan_moves_to_processing_and_says_both(ctx, recorder):
    alert_id, decision = _queued(ctx), _decision()
    JobWrites(recorder).decided(alert_id, decision, "buy 5: flat -> long 5").result(10)
    alert, trail = _rows(ctx, alert_id)
    assert alert.status == AlertStatus.PROCESSING and alert.plan == decision.to_json()
    assert trail == [
        ("processing", "picked up by the worker"),
        ("processing", "decided: buy 5: flat -> long 5"),
    ]


def test_a_job_that_waited_for_ib_first_takes_the_general_path_with_the_same_rows(ctx, recorder):
    alert_id, decision = _queued(ctx), _decision()
    writes = JobWrites(recorder)
    writes.waiting_for_ib(alert_id)
    writes.decided(alert_id, decision, "buy 5: flat -> long 5").result(10)
    alert, trail = _rows(ctx, alert_id)
    assert alert.status == AlertStatus.PROCESSING and alert.plan == decision.to_json()
    assert trail == [("processing", "picked up by the worker"), ("processing", "waiting for the IB connection"),
                     ("processing", "decided: buy 5: flat -> long 5")]  # fmt: skip


@pytest.mark.parametrize("status", [AlertStatus.PROCESSING, AlertStatus.SUBMITTED, AlertStatus.CANCELLED])
def test_an_alert_past_queued_is_left_to_the_general_path(ctx, recorder, status):
    alert_id = _queued(ctx)
    with ctx.sessions.begin() as session:
        session.get(Alert, alert_id).status = status
    assert (
        recorder.run(lambda uow: store_decision(uow, alert_id, {"kind": "x"}, "decided: x")).result(10)
        is False
    )
    alert, trail = _rows(ctx, alert_id)
    assert alert.status == status and alert.plan is None and trail == []


def test_an_alert_read_earlier_in_the_same_transaction_is_read_again(ctx, recorder):
    """Another fact of the same batch loaded the alert: after the plain UPDATE it must not keep
    (or write back) the old state."""
    alert_id = _queued(ctx)

    def batch(uow):
        before = uow.session.get(Alert, alert_id).status
        assert store_decision(uow, alert_id, {"kind": "x"}, "decided: x")
        return before, uow.session.get(Alert, alert_id).status, [e["type"] for e in uow.events]

    before, after, events = recorder.run(batch).result(10)
    assert (before, after) == (AlertStatus.QUEUED, AlertStatus.PROCESSING)
    assert events == ["alert_status"]
    assert _rows(ctx, alert_id)[0].plan == {"kind": "x"}


def test_a_decision_whose_waiter_gave_up_is_still_written_and_the_recorder_goes_on(ctx, recorder):
    # the job awaits its decision on the IB loop; a coroutine cancelled there (a timeout, the
    # worker stopping) cancels nothing of the write, and the recorder thread survives a waiter
    # that cancelled its future
    release = threading.Event()
    recorder.run(lambda _uow: release.wait(10))  # the recorder busy: the next write waits
    first, second = _queued(ctx), _queued(ctx)
    gave_up = JobWrites(recorder).decided(first, _decision(), "buy 5: flat -> long 5")
    assert gave_up.cancel()  # still queued: a waiter may cancel it
    release.set()
    JobWrites(recorder).decided(second, _decision(), "buy 5: flat -> long 5").result(10)
    assert _rows(ctx, second)[0].status == AlertStatus.PROCESSING
    assert _rows(ctx, first)[0].status == AlertStatus.PROCESSING  # written all the same


def _opening_decision() -> StoredDecision:
    """A stored plan that opens from flat with exits: its protection spec is written with it."""
    with STORED_PLANS.open() as lines:
        for line in lines:
            decision = StoredDecision.from_json(json.loads(line))
            if opening_protection(decision) is not None:
                return decision
    raise AssertionError("no opening plan with exits in stored_plans.jsonl")


def _spec_row(ctx: AppContext, decision: StoredDecision) -> tuple[str, object] | None:
    spec = opening_protection(decision)
    assert spec is not None
    with ctx.sessions() as session:
        row = session.get(Control, spec_key(spec.account, spec.con_id))
        return None if row is None else (row.value, row.updated_at.tzinfo)


def test_the_direct_write_stores_what_the_unit_of_work_stores(ctx, recorder):
    """``JobWrites.decided`` commits through the DB-API (worker/recording/decision_row.py); the
    ORM's path, run on an alert of its own, writes the same plan, state, trail and spec."""
    decision = _opening_decision()
    direct, general = _queued(ctx), _queued(ctx)
    JobWrites(recorder).decided(direct, decision, "buy 5: flat -> long 5").result(10)
    direct_alert, direct_trail = _rows(ctx, direct)
    direct_spec = _spec_row(ctx, decision)

    def unit_of_work(uow):
        assert store_decision(uow, general, decision.to_json(), "decided: buy 5: flat -> long 5")
        spec = opening_protection(decision)
        save_spec(uow.session, spec_key(spec.account, spec.con_id), spec)

    recorder.run(unit_of_work).result(10)
    general_alert, general_trail = _rows(ctx, general)
    assert (
        direct_trail
        == general_trail
        == [
            ("processing", "picked up by the worker"),
            ("processing", "decided: buy 5: flat -> long 5"),
        ]
    )
    assert (direct_alert.status, direct_alert.plan) == (general_alert.status, general_alert.plan)
    assert direct_alert.plan == decision.to_json() and direct_alert.status == AlertStatus.PROCESSING
    assert direct_alert.updated_at.tzinfo is not None and direct_alert.updated_at >= direct_alert.received_at
    assert direct_spec is not None and direct_spec == _spec_row(ctx, decision)
    assert json.loads(direct_spec[0]) == opening_protection(decision).to_json()


def test_the_direct_write_keeps_its_place_among_the_recorders_writes(ctx, recorder):
    """Written in submission order: an audit line queued before it is committed before it, one
    queued after it after it (one batch of the writer thread holds all three)."""
    alert_id = _queued(ctx)
    release = threading.Event()
    recorder.run(lambda _uow: release.wait(10))  # the three below wait, then go as one batch
    before = recorder.run(lambda uow: recorder.note(uow, alert_id, "a line before"))
    decided = JobWrites(recorder).decided(alert_id, _decision(), "buy 5: flat -> long 5")
    after = recorder.run(lambda uow: recorder.note(uow, alert_id, "a line after"))
    release.set()
    for future in (before, decided, after):
        future.result(10)
    assert [message for _status, message in _rows(ctx, alert_id)[1]] == [
        "a line before", "picked up by the worker", "decided: buy 5: flat -> long 5", "a line after"]  # fmt: skip


def test_the_direct_write_publishes_the_state_it_moved_to(ctx):
    published: list[dict] = []
    rec = Recorder(ctx.sessions, None, ctx.settings, 7, on_committed=published.extend)
    try:
        alert_id = _queued(ctx)
        JobWrites(rec).decided(alert_id, _decision(), "buy 5: flat -> long 5").result(10)
    finally:
        rec.stop()
    assert published == [
        {"type": "alert_status", "alert_id": alert_id, "status": "processing", "reason": None}
    ]


def test_a_database_error_reaches_the_waiter_and_the_recorder_goes_on(ctx, recorder):
    """The decision must be durable before any order leaves: a write that fails says so to the
    job (which then sends nothing), and the next write goes through."""
    alert_id = _queued(ctx)
    failing = Direct(lambda _engine: (_ for _ in ()).throw(OperationalError("UPDATE", {}, Exception("locked"))),
                     lambda _uow: None)  # fmt: skip
    with pytest.raises(OperationalError):
        recorder.run_direct(failing).result(10)
    JobWrites(recorder).decided(alert_id, _decision(), "buy 5: flat -> long 5").result(10)
    assert _rows(ctx, alert_id)[0].status == AlertStatus.PROCESSING
