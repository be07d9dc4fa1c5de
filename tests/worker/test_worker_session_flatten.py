"""The session-end flatten (risk file ``flatten_before_close``): the real worker (in a thread) on
ibsim over TCP, its clock set around the flatten minute of a normal day and of an early-close day;
what the trader sees: ibsim's positions and orders, the notice, the alert's history, the refusal."""

from __future__ import annotations

import html
import re
import time as t
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from support import wait_until
from worker_helpers import WorkerThread, alert_ends

from core.models import Notice
from core.services import get_alert

pytestmark = pytest.mark.e2e

NEW_YORK = ZoneInfo("America/New_York")
RISK = """\
strategies:
  day:
    flatten_before_close: 15
  swing:
    max_order_quantity: 1000
"""


def _thanksgiving_ahead() -> date:
    """The next US Thanksgiving (fourth Thursday of November) at least a week away."""
    today = datetime.now(UTC).date() + timedelta(days=7)
    for year in (today.year, today.year + 1):
        first = date(year, 11, 1)
        day = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
        if day >= today:
            return day
    raise AssertionError("unreachable")


THANKSGIVING = _thanksgiving_ahead()
NORMAL_DAY = THANKSGIVING - timedelta(days=1)  # a Wednesday, the NYSE closes at 16:00
EARLY_CLOSE = THANKSGIVING + timedelta(days=1)  # the Friday after, the NYSE closes at 13:00


def _at(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), NEW_YORK).astimezone(UTC)


class Clock:
    """The worker's clock (the trading room's and the risk gate's), set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def running(worker_env: dict[str, str], tmp_path: Path, clock: Clock) -> Iterator[WorkerThread]:
    path = tmp_path / "risk.yaml"
    path.write_text(RISK)
    handle = WorkerThread({**worker_env, "RISK_FILE": str(path)}, housekeeping_interval=0.2)
    handle.worker.trading.clock = clock
    handle.worker.risk.clock = clock
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def position(sim, symbol: str) -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == symbol)


CON_IDS = {"AAPL": 265598, "MSFT": 272093}  # ibsim's


def working(sim, symbol: str) -> list[str]:
    """The refs of the orders still working at ibsim on ``symbol``."""
    return [o["orderRef"] for o in sim.state()["orders"]
            if o["conId"] == CON_IDS[symbol] and o["status"] in ("Submitted", "PreSubmitted")]  # fmt: skip


def notices(ctx) -> list[str]:
    with ctx.sessions() as session:
        rows = session.scalars(
            select(Notice.text).where(Notice.kind == "session_flatten").order_by(Notice.id)
        )
        return [html.unescape(re.sub(r"<[^>]+>", "", text)) for text in rows]


def flatten_orders(sim, alert_id: str) -> list[dict]:
    return [o for o in sim.state()["orders"] if o["orderRef"].startswith(f"tv2ib:{alert_id}:flatten")]


def _opened(handle: WorkerThread, sim) -> tuple[str, str]:
    """A long 10 AAPL of strategy "day" with its bracket, a short 5 MSFT of "swing" (no flatten)
    with its stop, and 7 SPY bought by hand (no alert: never flattened). The two alerts' ids."""
    sim.set_price("AAPL", 190.0)
    sim.set_price("MSFT", 420.0)
    day = alert_ends(handle.ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "strategy": "day",
                                  "takeProfit": {"limitPrice": 210}, "stopLoss": {"stopPrice": 180}}, "filled")  # fmt: skip
    swing = alert_ends(handle.ctx, {"ticker": "MSFT", "action": "sell", "quantity": 5, "strategy": "swing",
                                    "stopLoss": {"stopPrice": 450}}, "filled")  # fmt: skip
    sim.trade(7, symbol="SPY", price=500.0)
    wait_until(lambda: len(working(sim, "AAPL")) == 2 and len(working(sim, "MSFT")) == 1, timeout=15)
    return day, swing


@pytest.mark.parametrize(
    ("day", "close"),
    [(NORMAL_DAY, (16, 0)), (EARLY_CLOSE, (13, 0))],
    ids=["normal day, 16:00 close", "early close, 13:00"],
)
def test_the_strategys_position_is_flattened_at_its_minute_and_only_it(sim, worker_env, tmp_path, day, close):
    hour, minute = close
    flatten_minute = _at(day, hour, minute) - timedelta(minutes=15)
    clock = Clock(flatten_minute - timedelta(minutes=30))
    with running(worker_env, tmp_path, clock) as handle:
        alert_id, _swing = _opened(handle, sim)
        clock.now = flatten_minute - timedelta(seconds=1)  # the minute before: nothing
        t.sleep(1.2)  # six looks
        assert position(sim, "AAPL") == 10 and len(working(sim, "AAPL")) == 2
        assert notices(handle.ctx) == []

        clock.now = flatten_minute  # the minute: AAPL closed, its exits gone
        wait_until(lambda: position(sim, "AAPL") == 0, timeout=15)
        wait_until(lambda: len(notices(handle.ctx)) == 1, timeout=15)
        assert working(sim, "AAPL") == []
        assert [o["status"] for o in flatten_orders(sim, alert_id)] == ["Filled"]
        text = notices(handle.ctx)[0]
        assert "Session-end flatten · 1 position closed" in text
        assert "SELL 10 AAPL (was long 10)" in text
        early = ", early close" if day == EARLY_CLOSE else ""
        assert f"15 min before the {hour}:00 America/New_York close (XNYS{early}, " in text
        assert 'flatten_before_close (strategy "day")' in text and "strategy day" in text
        # the other strategy's position and the manual one stay, with their exits
        assert position(sim, "MSFT") == -5 and len(working(sim, "MSFT")) == 1
        assert position(sim, "SPY") == 7
        history = [e["message"] for e in get_alert(handle.ctx.sessions, alert_id)["events"]]
        assert any(m.startswith("session-end flatten (15 min before") and "SELL 10 AAPL, filled" in m
                   for m in history), history  # fmt: skip

        # until the close the strategy opens nothing; another strategy still trades
        refused = alert_ends(handle.ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "strategy": "day"},
                             "rejected")  # fmt: skip
        reason = get_alert(handle.ctx.sessions, refused)["reason"]
        assert reason.startswith(
            'risk: flatten_before_close 15 min (strategy "day"): AAPL\'s session closes at '
        )
        assert f"flattened from {hour - 1}:45 and no new entry opens until the close" in reason
        alert_ends(
            handle.ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "strategy": "swing"}, "filled"
        )
        t.sleep(1.0)
        assert position(sim, "AAPL") == 1 and len(notices(handle.ctx)) == 1


def test_a_restart_at_the_minute_closes_nothing_twice(sim, worker_env, tmp_path):
    flatten_minute = _at(NORMAL_DAY, 15, 45)
    clock = Clock(flatten_minute - timedelta(minutes=30))
    with running(worker_env, tmp_path, clock) as handle:
        alert_id, _swing = _opened(handle, sim)
        clock.now = flatten_minute + timedelta(seconds=30)
        wait_until(lambda: len(notices(handle.ctx)) == 1, timeout=15)
        assert position(sim, "AAPL") == 0

    clock.now = flatten_minute + timedelta(minutes=1)
    with running(worker_env, tmp_path, clock) as handle:
        t.sleep(1.5)  # the new worker looks seven times within the window
        assert len(flatten_orders(sim, alert_id)) == 1 and position(sim, "AAPL") == 0
        assert len(notices(handle.ctx)) == 1
        assert position(sim, "MSFT") == -5 and position(sim, "SPY") == 7


def test_a_close_ib_refuses_is_told_and_the_exits_come_back(sim, worker_env, tmp_path):
    flatten_minute = _at(NORMAL_DAY, 15, 45)
    clock = Clock(flatten_minute - timedelta(minutes=30))
    with running(worker_env, tmp_path, clock) as handle:
        _opened(handle, sim)
        sim.fault("reject_next", reason="Simulated closing-only rule")
        clock.now = flatten_minute
        wait_until(lambda: len(notices(handle.ctx)) == 1, timeout=15)
        text = notices(handle.ctx)[0]
        assert "Session-end flatten · 0 of 1 position closed" in text
        assert "⚠️ NOT closed: SELL 10 AAPL (was long 10): not closed: IB ended the order" in text
        assert "Simulated closing-only rule" in text and "close it by hand" in text
        # the position keeps its stop and target, and the next looks leave it alone
        wait_until(lambda: len(working(sim, "AAPL")) == 2, timeout=15)
        t.sleep(1.0)
        assert position(sim, "AAPL") == 10 and len(notices(handle.ctx)) == 1
