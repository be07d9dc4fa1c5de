"""Several workers record the same positions at once (IB reports every position of an account to
every connection): the upsert of the ``positions`` row is race-free on SQLite and PostgreSQL.

Real databases, real recorders (each with its own engine and writer thread, as in separate worker
processes), released together on a barrier for each position so both insert the same new row."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

from sqlalchemy import select

from config.settings import Settings
from core.context import AppContext
from core.models import Position
from worker.recording.recorder import Recorder, UnitOfWork
from worker.recording.snapshots import PositionSnapshot, Reconciliation

WORKERS = 3
POSITIONS = 40


def _snapshot(account: str, con_id: int, quantity: int) -> PositionSnapshot:
    return PositionSnapshot(account=account, con_id=con_id, symbol=f"S{con_id}", sec_type="STK",
                            local_symbol=f"S{con_id}", quantity=Decimal(quantity), avg_cost=Decimal("10.5"))  # fmt: skip


def test_workers_recording_the_same_new_positions_at_once_never_fail(base_env, database_url):
    settings = Settings.from_mapping({**base_env, "DATABASE_URL": database_url})
    contexts = [AppContext.build(settings) for _ in range(WORKERS)]
    recorders = [Recorder(c.sessions, None, settings, client_id=20 + i) for i, c in enumerate(contexts)]
    account = f"DU{uuid.uuid4().hex[:8]}"  # the PostgreSQL database is shared by the run's tests
    barrier = threading.Barrier(WORKERS)
    failures: list[BaseException] = []

    def worker(recorder: Recorder) -> None:
        for con_id in range(1, POSITIONS + 1):
            barrier.wait(timeout=30)
            try:  # one fact per transaction, as a lone position report is written
                recorder.record(_snapshot(account, con_id, con_id)).result(timeout=30)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                failures.append(exc)

    threads = [threading.Thread(target=worker, args=(r,)) for r in recorders]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not failures, f"{len(failures)} position writes failed, first: {failures[0]!r}"
        assert [r.errors for r in recorders] == [0] * WORKERS
        # the same position reported again (a change) updates the one row
        recorders[0].record(_snapshot(account, 1, -3)).result(timeout=30)
        with contexts[0].sessions() as session:
            rows = list(session.scalars(select(Position).where(Position.account == account)))
        assert sorted((r.con_id, r.quantity) for r in rows) == [
            (c, Decimal(-3 if c == 1 else c)) for c in range(1, POSITIONS + 1)
        ]
        assert all(r.avg_cost == Decimal("10.5") and r.symbol == f"S{r.con_id}" for r in rows)
    finally:
        for recorder in recorders:
            recorder.stop()
        for context in contexts:
            context.close()


def test_a_reconciliation_zeroes_the_positions_ib_no_longer_reports(base_env, sqlite_url):
    # the upserts and the reconciliation's zeroing in one transaction, in IB's order: a position
    # upserted earlier in the transaction is what the reconciliation reads back
    settings = Settings.from_mapping(base_env)
    context = AppContext.build(settings)
    recorder = Recorder(context.sessions, None, settings, client_id=1)
    try:
        recorder.record(_snapshot("DU1", 1, 5)).result(timeout=10)
        with context.sessions.begin() as session:
            uow = UnitOfWork(session)
            recorder._on_position(uow, _snapshot("DU1", 2, 7))
            recorder._on_reconcile(uow, Reconciliation("connect", 1, "DU1", [], [], [_snapshot("DU1", 2, 8)]))
            recorder._on_position(uow, _snapshot("DU1", 1, 4))
            recorder._on_reconcile(uow, Reconciliation("connect", 1, "DU1", [], [], [_snapshot("DU1", 2, 8)]))
        with context.sessions() as session:
            rows = {r.con_id: r.quantity for r in session.scalars(select(Position))}
        assert rows == {1: Decimal(0), 2: Decimal(8)}
    finally:
        recorder.stop()
        context.close()
