"""The recorder holds IB's facts while the database is unreachable and writes them, in order, when it
is back: an order's last status arrives only once, so a fact dropped then would leave its alert
short of a terminal state for good (found by the chaos run, bench/chaos.py: PostgreSQL stopped
while a close order filled, the alert stayed 'submitted'). A write a caller waits for still fails
at once, as before.

Real PostgreSQL: the test's own database refuses connections (ALLOW_CONNECTIONS false, its sessions
ended) for a moment, which the other databases of the shared server never notice."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, make_url, select, text
from support import PG_ADMIN_URL

from config.settings import Settings
from core.context import AppContext
from core.models import Position
from worker.recording.recorder import Recorder
from worker.recording.snapshots import PositionSnapshot


def _position(quantity: int) -> PositionSnapshot:
    return PositionSnapshot(account="DU1", con_id=265598, symbol="AAPL", sec_type="STK", local_symbol="AAPL",
                            quantity=Decimal(quantity), avg_cost=Decimal("190"))  # fmt: skip


def _allow_connections(name: str, allowed: bool) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                    {"n": name},
                )
    finally:
        admin.dispose()


def test_facts_from_ib_are_held_while_the_database_is_unreachable(base_env, own_pg_url):
    settings = Settings.from_mapping({**base_env, "DATABASE_URL": own_pg_url})
    context = AppContext.build(settings)
    recorder = Recorder(context.sessions, None, settings, client_id=1)
    name = make_url(own_pg_url).database
    try:
        recorder.record(_position(5)).result(timeout=30)
        _allow_connections(name, False)
        try:
            held = [recorder.record(_position(q)) for q in (6, 7)]
            waited = recorder.run(lambda uow: None)  # a write its caller waits for
            with pytest.raises(Exception, match="not currently accepting connections|terminat"):
                waited.result(timeout=30)
            time.sleep(1.0)
            assert not any(f.done() for f in held)  # held, not dropped
        finally:
            _allow_connections(name, True)
        for future in held:
            future.result(timeout=30)
        with context.sessions() as session:
            assert session.scalar(select(Position.quantity).where(Position.account == "DU1")) == Decimal(7)
    finally:
        recorder.stop()
        context.close()
