"""A protection's lock across a SIGKILL of the worker (issue 21, "Locks survive a restart").

Real processes: ``python -m ibsim`` and ``python -m worker`` (SQLite, private Redis DB), and the
real clock: a stop-out cools AAPL down for half a minute (the cooldown takes decimals), the worker is
killed while the lock holds, and the restarted one refuses the same entry with the same reason,
says no second "Entries locked", and says "Entries unlocked" when the 30 seconds are up. The
locks with a controlled clock and every protection: tests/worker/test_worker_protections.py.
"""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker
from support import alert_status, queue_alert, wait_until

from core.db import migrate
from core.models import Alert, Notice

pytestmark = pytest.mark.e2e

RISK = """\
defaults:
  max_order_notional: 1,000,000
strategies:
  scalp:
    stop_out_cooldown_minutes: 0.5
"""
ENTRY = {"ticker": "AAPL", "action": "buy", "quantity": 5, "strategy": "scalp"}


def test_a_cooldown_lock_survives_a_sigkill_and_ends_on_time(stack, base_env, redis_client, tmp_path):
    path = tmp_path / "risk.yaml"
    path.write_text(RISK)
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    engine = create_engine(base_env["DATABASE_URL"])
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)

    def ends(payload: dict, status: str) -> str:
        alert_id = queue_alert(sessions, redis_client, payload)
        wait_until(lambda: alert_status(sessions, alert_id) == status, 20,
                   f"{payload} not {status}\n{stack.logs('worker')}")  # fmt: skip
        return alert_id

    def said(words: str) -> list[str]:
        with sessions() as session:
            texts = session.scalars(select(Notice.text).where(Notice.kind == "protection"))
            return [t for t in texts if words in t]

    def reason(alert_id: str) -> str:
        with sessions() as session:
            return str(session.get(Alert, alert_id).reason)

    stack.start_worker(RISK_FILE=str(path))
    ends({**ENTRY, "stopLoss": {"stopPrice": 188}}, "filled")
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 187.0})  # the stop fills
    stopped = time.monotonic()
    wait_until(lambda: said("Entries locked") != [], 15, f"no lock notice\n{stack.logs('worker')}")
    before = reason(ends(ENTRY, "rejected"))
    assert before.startswith(
        'risk: cooldown 0.5 min after a stop-out (strategy "scalp"): AAPL stopped out at '
    ), before

    stack.kill_worker(signal.SIGKILL)
    stack.start_worker(RISK_FILE=str(path))
    after = reason(ends(ENTRY, "rejected"))
    assert after == before, f"{after}\n{time.monotonic() - stopped:.1f} s after the stop-out"
    wait_until(lambda: said("Entries unlocked") != [], 45, f"no unlock notice\n{stack.logs('worker')}")
    assert len(said("Entries locked")) == 1  # the restart said nothing again
    ends(ENTRY, "filled")
