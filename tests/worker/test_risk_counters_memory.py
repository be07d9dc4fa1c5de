"""The risk counters in memory (worker/risk/tally.py) agree with the database's queries
(worker/risk/state.py ``counters``), on SQLite and PostgreSQL:

* rows near every boundary (the trading day's 17:00 New York, the minute's window, accounts named
  or not) written to a real database and handed to the tally the way the worker does (the
  start-up load, the recorder's commits, some twice), read at many instants;
* a real worker on ibsim driven through entries, a reversal, exits, a restart, a daily-loss halt
  and another restart: after each step the counters in memory and the query give the same figures.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from core.context import AppContext
from core.models import Fill, Order
from worker.risk import state
from worker.risk.state import ClosedFillRow, CountedRow, EntryOrderRow, RealizedFillRow, RiskCounters
from worker.risk.tally import KEEP_ORDERS, RiskTally

NOON = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # 12:00 New York
DAY_START = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)  # 17:00 New York the evening before


@pytest.fixture
def sessions(db_ctx: AppContext) -> sessionmaker[Session]:
    """SQLite, then PostgreSQL (tests/worker/conftest.py)."""
    return db_ctx.sessions


def _random_rows(
    rng: random.Random, accounts: list[str | None], now: datetime
) -> tuple[list[Fill], list[Order]]:
    """Fills and entry orders (and other legs) around the day's boundaries and the minute's window."""
    edges = [DAY_START, DAY_START + timedelta(days=1), now - timedelta(seconds=60)]
    fills, orders = [], []
    for i in range(120):
        at = rng.choice(edges) + timedelta(
            microseconds=rng.choice([0, 1, -1, rng.randint(-3 * 10**9, 3 * 10**9)])
        )
        realized = None if rng.random() < 0.2 else Decimal(rng.randint(-500_000, 500_000)) / 100
        fills.append(Fill(exec_id=f"x{uuid.uuid4().hex}", account=rng.choice(accounts), side="SLD",
                          price=Decimal(100), quantity=Decimal(1), time=at, realized_pnl=realized))  # fmt: skip
        created = now - timedelta(
            seconds=60, microseconds=rng.choice([0, 1, -1, rng.randint(-2 * 10**6, 2 * 10**6)])
        )
        orders.append(Order(order_ref=f"tv2ib:{uuid.uuid4().hex}:{rng.choice(['entry', 'entry', 'tp', 'sl'])}",
                            leg="entry" if i % 3 else "sl", account=rng.choice(accounts), action="BUY",
                            order_type="MKT", quantity=Decimal(1), created_at=created))  # fmt: skip
    return fills, orders


def _as_counted(fills: list[Fill], orders: list[Order]) -> list[CountedRow]:
    rows: list[CountedRow] = [
        RealizedFillRow(f.exec_id, f.account or "", f.time, f.realized_pnl) for f in fills if f.realized_pnl is not None
    ]  # fmt: skip
    rows += [ClosedFillRow(f.exec_id, f.account or "", "", "", "", "", f.time, f.realized_pnl)
             for f in fills if f.realized_pnl is not None]  # the protections' (no alert, no order)  # fmt: skip
    return rows + [
        EntryOrderRow(o.order_ref, o.account or "", o.created_at) for o in orders if o.leg == "entry"
    ]


def test_the_tally_answers_what_the_queries_answer_at_every_boundary(sessions):
    rng = random.Random(18)
    a, b = f"DU{uuid.uuid4().hex[:6]}", f"DU{uuid.uuid4().hex[:6]}"  # PostgreSQL's database is the run's
    now = NOON
    fills, orders = _random_rows(rng, [a, b, None], now)
    with sessions.begin() as session:  # what the database holds when the worker starts
        session.add_all(fills[:50] + orders[:60])
    with sessions.begin() as session:  # the recorder's first commit, before the start-up load reads
        session.add_all(fills[50:60])
    tally = RiskTally()
    tally.apply(_as_counted(fills[50:60], []))
    with sessions() as session:
        rows, halts = state.tally_rows(session, state.trading_day(now) - timedelta(days=2), now - KEEP_ORDERS)
    tally.load(rows, halts)
    with sessions.begin() as session:  # the recorder's later commits
        session.add_all(fills[60:] + orders[60:])
    counted = _as_counted(fills[50:], orders[60:])
    rng.shuffle(counted)
    tally.apply(counted)  # some rows twice (a reconnect's reconciliation records them again)
    instants = [DAY_START + timedelta(microseconds=d) for d in (-1, 0, 1)] + [
        NOON,
        DAY_START + timedelta(days=1),
    ]
    instants += [now + timedelta(microseconds=rng.randint(-3_000_000, 3_000_000)) for _ in range(20)]
    with sessions() as session:
        for account in (a, b):
            for at in instants:
                assert tally.counters(account, at) == state.counters(session, account, at), (account, at)


# ---------------------------------------------------------------------------------------------- a real worker

RISK = """\
defaults:
  daily_loss_limit: 150
  max_orders_per_minute: 50
"""


def _counters_query(statement: str, parameters: object) -> bool:
    """One of worker/risk/state.py ``counters``' three queries (the start-up load reads rows:
    no sum, no count, the halt rows by LIKE)."""
    text = statement.lower()
    halt_row = "from controls" in text and "like" not in text and "risk:halt:" in str(parameters)
    return "sum(fills.realized_pnl)" in text or "count(orders.id)" in text or halt_row


def _start(env: dict[str, str], asked: list[str]) -> WorkerThread:
    """A worker; ``asked`` collects the counters' queries it runs outside the recorder thread (the
    probe below runs them there on purpose): an alert's path must run none."""
    handle = WorkerThread(env)
    handle.worker.housekeeping.interval = 0.2  # the daily-loss watcher's period

    @event.listens_for(handle.ctx.engine, "before_cursor_execute")
    def watch(_conn, _cursor, statement: str, parameters, _context, _many) -> None:  # noqa: ANN001
        if threading.current_thread().name != "recorder" and _counters_query(statement, parameters):
            asked.append(f"{threading.current_thread().name}: {statement}")

    return handle.start()


def probe(handle: WorkerThread) -> tuple[RiskCounters, RiskCounters]:
    """The counters in memory and the database's query for the worker's account at one instant,
    read on the recorder thread between its transactions (a session of its own sees what is
    committed; the memory has taken every commit): nothing moves while both are read."""
    worker = handle.worker
    account = worker.trading.account or ""
    assert account, "the worker knows its account"

    def read(_uow: object) -> tuple[RiskCounters, RiskCounters]:
        now = datetime.now(UTC)
        with worker.ctx.sessions() as session:
            return worker.risk.tally.counters(account, now), state.counters(session, account, now)

    return worker.recorder.run(read).result(10)


def agreed(handle: WorkerThread) -> RiskCounters:
    memory, database = probe(handle)
    assert memory == database
    return memory


def _buy_and_wait(handle: WorkerThread, payload: dict, status: str = "filled") -> str:
    alert_id = add_alert(handle.ctx, payload)
    wait_until(lambda: alert_status(handle.ctx, alert_id) == status, timeout=20)
    return alert_id


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_worker_on_ibsim_keeps_the_counters_the_database_query_gives(
    sim, worker_env, tmp_path: Path, backend: str, request: pytest.FixtureRequest
):
    risk = tmp_path / "risk.yaml"
    risk.write_text(RISK)
    env = {**worker_env, "RISK_FILE": str(risk)}
    if backend == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    asked: list[str] = []
    handle = _start(env, asked)
    try:
        sim.set_price("AAPL", 190.0)
        start = agreed(handle)  # the database may hold earlier tests' rows (PostgreSQL): all loaded
        _buy_and_wait(handle, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190})
        assert agreed(handle).orders_last_minute == start.orders_last_minute + 1

        sim.set_price("AAPL", 188.0)  # the reversal closes 10 at a loss and opens a short of 10
        _buy_and_wait(handle, {"ticker": "AAPL", "action": "sell", "quantity": 20, "price": 188})
        wait_until(lambda: probe(handle)[0].realized < start.realized, timeout=10)
        after_reversal = agreed(handle)
        assert after_reversal.orders_last_minute == start.orders_last_minute + 2

        sim.set_price("AAPL", 194.0)
        _buy_and_wait(handle, {"ticker": "AAPL", "action": "exit"})
        wait_until(lambda: probe(handle)[0].realized < after_reversal.realized, timeout=10)
        before_restart = agreed(handle)
        assert before_restart.halt is None
    finally:
        handle.stop()

    handle = _start(env, asked)  # rebuilt from the database
    try:
        after_restart = agreed(handle)
        assert after_restart.realized == before_restart.realized
        _buy_and_wait(handle, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 194})
        agreed(handle)
        sim.set_price("AAPL", 180.0)  # unrealized -140 on top of the realized loss: the watcher halts
        wait_until(lambda: probe(handle)[0].halt is not None, timeout=15)
        halted = agreed(handle)
        sim.set_price("MSFT", 100.0)
        _buy_and_wait(handle, {"ticker": "MSFT", "action": "buy", "quantity": 1, "price": 100}, "rejected")
        assert agreed(handle) == halted
    finally:
        handle.stop()

    handle = _start(env, asked)  # the halt too is rebuilt from the database
    try:
        assert agreed(handle).halt == halted.halt
    finally:
        handle.stop()
    # nothing queried the counters, neither the alerts nor the watcher, but the watcher's halt as
    # it wrote it (read, written, read back: once a day)
    assert [a for a in asked if not a.startswith("housekeeping: ")] == [], asked
    assert len(asked) <= 3, asked
