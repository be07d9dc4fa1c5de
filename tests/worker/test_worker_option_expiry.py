"""The alarm naming the open option positions on their expiry day: the real worker (in a thread)
against ibsim over TCP, its clock set to the expiry day; the notices as the trader gets them."""

from __future__ import annotations

import html
import logging
import time as t
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from core.services import get_alert

pytestmark = pytest.mark.e2e

NEW_YORK = ZoneInfo("America/New_York")
TITLE = "Options expire today"


def _friday_ahead() -> date:
    """A listed weekly expiry (a Friday) at least ten days out."""
    day = datetime.now(UTC).date() + timedelta(days=10)
    return day + timedelta(days=(4 - day.weekday()) % 7)


def _filled(ctx, alert: dict) -> dict:
    alert_id = add_alert(ctx, alert)
    wait_until(
        lambda: alert_status(ctx, alert_id) in {"filled", "cancelled", "rejected", "failed"}, timeout=20
    )
    doc = get_alert(ctx.sessions, alert_id)
    assert doc["status"] == "filled", (doc["status"], doc["reason"])
    return doc


def _expiry_alarms(ctx) -> list[str]:
    """The option expiry alarms written to the notice outbox, as the trader reads them."""
    with ctx.sessions() as session:
        rows = session.scalars(select(text("text")).select_from(text("notices"))
                               .where(text("kind = 'alarm'")).order_by(text("id")))  # fmt: skip
        return [html.unescape(row) for row in rows if TITLE in row]


def _looks(caplog) -> list[str]:
    """The watchers' log lines: each time one raised the alarm, or found it raised already."""
    return [
        r.getMessage() for r in caplog.records if r.name == "worker.expiry_watch" and TITLE in r.getMessage()
    ]


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    """``hour:minute`` in New York on ``day``, as the UTC time the worker's clock gives."""
    return datetime.combine(day, time(hour, minute), NEW_YORK).astimezone(UTC)


def test_an_alarm_names_the_options_expiring_today_once_and_a_later_one_alone(sim, worker_env, caplog):
    caplog.set_level(logging.WARNING, logger="worker.expiry_watch")
    env = {**worker_env, "OPTION_ENTRY_TICKS": "100"}  # entries at the far side of the quote: filled at once
    friday = _friday_ahead()
    occ = f"AAPL{friday:%y%m%d}"
    handle = WorkerThread(env, housekeeping_interval=0.2).start()  # the watcher looks every 0.2 s
    try:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        # a call of that Friday, bought from the underlying's alert (AAPL's price read, its stream kept)
        call = {"ticker": "AAPL", "optionType": "call", "expiration": friday.isoformat(), "strikePrice": 195,
                "action": "buy", "quantity": 1}  # fmt: skip
        _filled(ctx, call)
        sim.set_price("AAPL", 198.10)
        t.sleep(0.5)
        assert _expiry_alarms(ctx) == []  # not its expiry day yet
        handle.worker.trading.clock = lambda: _at(friday, 14)  # the expiry day, 14:00 in New York
        wait_until(lambda: len(_expiry_alarms(ctx)) == 1, timeout=15)
        first = _expiry_alarms(ctx)[0]
        assert f"long 1 AAPL {occ[4:]}C00195000 (call 195, in the money by 3.10 at 198.10); " in first
        assert "IB exercises options in the money by 0.01 or more at the close" in first
        t.sleep(1.0)  # five more looks
        assert len(_expiry_alarms(ctx)) == 1 and len(_looks(caplog)) == 1
    finally:
        handle.stop()

    # a restart the same day finds the same contract: no second notice
    handle = WorkerThread(env, housekeeping_interval=0.2)
    handle.worker.trading.clock = lambda: _at(friday, 14, 30)
    handle.start()
    try:
        ctx = handle.ctx
        wait_until(lambda: len(_looks(caplog)) == 2, timeout=15)
        assert len(_expiry_alarms(ctx)) == 1
        assert _looks(caplog)[1].endswith("(no new notice)")
        # a put of the same day sold later (by its OCC ticker): one more alarm, naming it alone;
        # the new worker has no AAPL stream open, so the put's moneyness is not shown
        _filled(ctx, {"ticker": f"{occ}P00200000", "action": "sell", "quantity": 2})
        wait_until(lambda: len(_expiry_alarms(ctx)) == 2, timeout=15)
        second = _expiry_alarms(ctx)[1]
        assert f"short 2 AAPL {occ[4:]}P00200000 (put 200, AAPL's price not at hand); " in second
        assert "C00195000" not in second
        t.sleep(1.0)
        assert len(_expiry_alarms(ctx)) == 2
    finally:
        handle.stop()
