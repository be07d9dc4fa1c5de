"""The job's lifecycle (worker/execution/executor.py) on a fake Trading (tests/worker/fake_trading.py)
and a real SQLite database: load, look, decide, write the decision down BEFORE any order goes out,
act, record, end. No simulated broker: the fake plays IB."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fake_trading import FakeTrading
from sqlalchemy import select
from support import queue_alert
from worker_helpers import AAPL

from config.settings import Settings
from core.context import AppContext
from core.models import Alert, AlertEvent, Order
from worker.decision.model import Leg
from worker.execution.executor import Executor
from worker.execution.readiness import JobLimits
from worker.recording.recorder import Recorder

D = Decimal


class FakeConn:
    """The connection as the executor uses it: ready, and a call that runs a coroutine to its end."""

    ready = True

    def wait_ready(self, timeout: float) -> bool:
        return True

    def call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run(coro)


@pytest.fixture
def ctx(base_env: dict[str, str]) -> Iterator[AppContext]:
    context = AppContext.build(Settings.from_mapping(base_env))
    yield context
    context.close()


@pytest.fixture
def job(ctx: AppContext) -> Iterator[tuple[Executor, FakeTrading]]:
    recorder = Recorder(ctx.sessions, None, ctx.settings, 7)
    fake = FakeTrading(AAPL)
    executor = Executor(ctx.sessions, recorder, FakeConn(), fake, JobLimits(30, reversal_fill=0.2),  # type: ignore[arg-type]
                        threading.Event())  # fmt: skip
    yield executor, fake
    recorder.stop()


def _trail(ctx: AppContext, alert_id: str) -> list[str]:
    with ctx.sessions() as session:
        rows = session.scalars(
            select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
        )
        return [row.message for row in rows]


def _alert(ctx: AppContext, alert_id: str) -> Alert:
    with ctx.sessions() as session:
        alert = session.get(Alert, alert_id)
        session.expunge(alert)
        return alert


def test_an_opening_is_written_down_before_its_bracket_goes_out(ctx, job):
    executor, fake = job
    alert_id = queue_alert(ctx.sessions, ctx.redis, {"ticker": "AAPL", "action": "buy", "quantity": 10,
                                                     "price": 190, "stopLoss": {"stopPrice": 185}}, enqueue=False)  # fmt: skip
    assert executor.execute_alert(alert_id) == "submitted"
    assert fake.calls[:2] == ["placed entry BUY 10 MKT", "placed sl SELL 10 STP"]
    trail = _trail(ctx, alert_id)
    assert trail == [
        "picked up by the worker",
        "decided: buy 10: flat -> long 10",
        "entry #1 BUY 10 AAPL working at IB",
    ]
    plan = _alert(ctx, alert_id).plan
    assert plan["kind"] == "bracket" and [leg["leg"] for leg in plan["legs"]] == ["entry", "sl"]
    assert plan["position"]["protection_after"]["prices"] == {"sl": "185.00"}
    with ctx.sessions() as session:
        assert {o.leg for o in session.scalars(select(Order).where(Order.alert_id == alert_id))} == {
            "entry",
            "sl",
        }
    assert executor.execute_alert(alert_id) == "submitted"  # a rerun re-reads, sends nothing
    assert fake.calls.count("placed entry BUY 10 MKT") == 1


def test_a_reversal_whose_close_ib_refuses_ends_rejected_with_the_exits_back(ctx, job):
    executor, fake = job
    legs = [Leg("entry", "BUY", "MKT", D(10), transmit=False),
            Leg("sl", "SELL", "STP", D(10), stop_price=D(187), tif="GTC", parent_leg="entry")]  # fmt: skip
    asyncio.run(fake.place_legs("OPEN", AAPL.con_id, legs, 2, lambda leg: None, lambda p, a: None))
    fake.refuse = {"close"}
    alert_id = queue_alert(ctx.sessions, ctx.redis, {"ticker": "AAPL", "action": "sell", "quantity": 20, "price": 190},
                           enqueue=False)  # fmt: skip
    assert executor.execute_alert(alert_id) == "rejected"
    alert = _alert(ctx, alert_id)
    assert alert.reason.startswith("IB refused the close order: 201 Order rejected - reason:refused by the test; "
                                   "not reversed; position left long 10; its exits were put back: sl SELL 10")  # fmt: skip
    assert alert.plan["position"]["outcome"] == alert.reason
    assert alert.plan["position"]["protection_after"] == alert.plan["position"]["protection_before"]
    assert fake.position_of(AAPL.con_id) == D(10) and [r for r, *_ in fake.exits().values()] == ["sl"]


def test_an_exit_while_flat_cancels_what_works_and_ends_cancelled(ctx, job):
    executor, fake = job
    legs = [Leg("entry", "BUY", "LMT", D(10), limit_price=D(180))]
    asyncio.run(fake.place_legs("REST", AAPL.con_id, legs, 2, lambda leg: None, lambda p, a: None))
    alert_id = queue_alert(ctx.sessions, ctx.redis, {"ticker": "AAPL", "action": "exit"}, enqueue=False)
    assert executor.execute_alert(alert_id) == "cancelled"
    alert = _alert(ctx, alert_id)
    assert alert.reason == "exit: no open position in AAPL; cancelled 1 working order(s)"
    assert alert.plan["cancelled"] == ["tv2ib:REST:entry"] and alert.plan["position"]["kind"] == "none"
