"""A position's protection record is durable with the decision, before its bracket goes out: a
worker SIGKILLed right after placing the bracket restarts with the record, so its break-even rule
still moves the stop (real processes: ibsim and ``python -m worker``)."""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from support import alert_status, queue_alert, wait_until

from core.db import migrate

pytestmark = pytest.mark.e2e

BRACKET = {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190, "takeProfit": {"percent": 5},
           "stopLoss": {"percent": 2, "breakEven": {"percent": 1, "offsetTicks": 2}}}  # fmt: skip


def _stop_price(stack) -> float | None:
    stops = [o for o in stack.sim_state()["orders"]
             if o["status"] in ("Submitted", "PreSubmitted") and o["orderRef"].rsplit(":", 1)[1].startswith("sl")]  # fmt: skip
    return stops[0]["auxPrice"] if len(stops) == 1 else None


def test_a_sigkill_right_after_the_bracket_keeps_its_break_even(stack, base_env, redis_client):
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    engine = create_engine(base_env["DATABASE_URL"])
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    stack.start_worker(TV2IB_CRASH_AT="after_sl_placed")
    alert_id = queue_alert(sessions, redis_client, BRACKET)
    assert stack.wait_worker_exit(timeout=30) == -signal.SIGKILL, stack.logs("worker")
    stack.start_worker()
    wait_until(lambda: alert_status(sessions, alert_id) == "filled", 30, lambda: stack.logs("worker"))
    wait_until(lambda: _stop_price(stack) == 186.2, 15, lambda: str(stack.sim_state()["orders"]))
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 192.0})
    # the housekeeping thread looks every few seconds: the stop goes to the entry + 2 ticks
    wait_until(
        lambda: _stop_price(stack) == 190.02,
        30,
        lambda: f"{stack.sim_state()['orders']}\n{stack.logs('worker')}",
    )
    engine.dispose()
