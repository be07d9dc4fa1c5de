"""A take-profit in levels across SIGKILLs of the worker: the exits match the position all along.

Real processes: ``python -m ibsim`` and ``python -m worker`` (SQLite, private Redis DB). A worker is
killed right after the last leg of the sub-brackets went out (``TV2IB_CRASH_AT``, before it
recorded them) and a new one adopts them; and a worker is SIGKILLed between two level fills
(after level 1 moved the stops to break-even; level 2 fills while no worker runs, IB cancels the
level's stop by itself: the OCA group), and a new one leaves the exits as they are. A thread polls
ibsim's ``/state`` all the while and checks invariant 7 extended on every snapshot (the stops
together equal the position, the take-profits never exceed it: ``support.stop_problem``).
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from support import StateWatcher, alert_status, queue_alert, stop_problem, wait_until

from app.webhook.schema import normalise
from core.db import migrate

pytestmark = pytest.mark.e2e

LEVELS = {
    "ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190,
    "takeProfit": [{"percent": 1, "quantity": 3}, {"percent": 2, "quantity": 3}, {"percent": 3}],
    "stopLoss": {"percent": 2, "breakEven": {"afterTakeProfit": 1}},
}  # fmt: skip


def _stops(state: dict[str, Any]) -> list[tuple[str, float, float]]:
    return sorted(
        (o["orderRef"].rsplit(":", 1)[-1], o["auxPrice"], o["quantity"] - (o.get("filled") or 0))
        for o in state["orders"]
        if o["status"] in ("Submitted", "PreSubmitted") and o["orderRef"].rsplit(":", 1)[-1].startswith("sl")
    )


def _position(state: dict[str, Any]) -> float:
    return sum(p["position"] for p in state["positions"] if p["symbol"] == "AAPL")


def _start(stack, base_env) -> tuple[sessionmaker, StateWatcher]:
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    engine = create_engine(base_env["DATABASE_URL"])
    migrate(engine)
    watcher = StateWatcher(f"http://127.0.0.1:{stack.sim_control_port}/state", stop_problem).start()
    return sessionmaker(engine, expire_on_commit=False), watcher


def _queue(sessions, redis_client) -> str:
    payload, errors = normalise(LEVELS)
    assert payload is not None, errors
    return queue_alert(sessions, redis_client, payload.to_json())


def _price(stack, price: float) -> None:
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": price})


def _check(watcher: StateWatcher) -> None:
    watcher.finish()
    assert watcher.snapshots > 20
    assert watcher.broken == []


def test_the_sub_brackets_are_sent_once_across_a_sigkill(stack, base_env, redis_client):
    """Killed once the last sub-bracket leg is at IB, before it was recorded: the next worker adopts
    the legs (each sent once) and the levels work, IB keeping the stops equal to the position."""
    sessions, watcher = _start(stack, base_env)
    try:
        stack.start_worker(TV2IB_CRASH_AT="after_sl.3_placed")
        alert_id = _queue(sessions, redis_client)
        assert stack.wait_worker_exit(timeout=30) == -signal.SIGKILL, stack.logs("worker")
        stack.start_worker()
        wait_until(lambda: alert_status(sessions, alert_id) == "filled", 30, lambda: stack.logs("worker"))
        legs = sorted(
            o["orderRef"].rsplit(":", 1)[-1] for o in stack.sim_state()["orders"] if alert_id in o["orderRef"]
        )
        assert legs == ["entry", "sl.1", "sl.2", "sl.3", "tp.1", "tp.2", "tp.3"]  # each once
        wait_until(lambda: _stops(stack.sim_state()) == [("sl.1", 186.2, 3), ("sl.2", 186.2, 3), ("sl.3", 186.2, 4)],
                   15, lambda: str(_stops(stack.sim_state())))  # fmt: skip
        _price(stack, 192.0)  # level 1
        wait_until(lambda: _position(stack.sim_state()) == 7, 10)
        wait_until(lambda: [s[0] for s in _stops(stack.sim_state())] == ["sl.2", "sl.3"], 10)
    finally:
        _check(watcher)


def test_the_stops_match_the_position_across_a_sigkill_between_fills(stack, base_env, redis_client):
    """Level 1 fills and the stops move to break-even; the worker is SIGKILLed; level 2 fills with
    no worker running (IB cancels its stop itself); a new worker changes nothing."""
    sessions, watcher = _start(stack, base_env)
    try:
        stack.start_worker()
        alert_id = _queue(sessions, redis_client)
        wait_until(lambda: alert_status(sessions, alert_id) == "filled", 30, lambda: stack.logs("worker"))
        wait_until(lambda: _stops(stack.sim_state()) == [("sl.1", 186.2, 3), ("sl.2", 186.2, 3), ("sl.3", 186.2, 4)],
                   15, lambda: str(_stops(stack.sim_state())))  # fmt: skip
        _price(stack, 192.0)  # level 1
        # the break-even watcher looks every 5 s (a loaded 2-core machine: give it a few looks)
        wait_until(lambda: _stops(stack.sim_state()) == [("sl.2", 190.0, 3), ("sl.3", 190.0, 4)], 40,
                   lambda: f"{_stops(stack.sim_state())}\n{stack.logs('worker')}")  # fmt: skip

        assert stack.kill_worker(signal.SIGKILL) == -signal.SIGKILL
        _price(stack, 194.0)  # level 2, no worker
        wait_until(lambda: _position(stack.sim_state()) == 4, 10)
        assert _stops(stack.sim_state()) == [("sl.3", 190.0, 4)]  # IB cancelled sl.2 itself

        stack.start_worker()  # connected; the guard checks every position after the reconnect
        time.sleep(2.0)  # let that check run: it must change nothing
        state = stack.sim_state()
        assert _stops(state) == [("sl.3", 190.0, 4)]
        working = sorted(o["orderRef"].rsplit(":", 1)[-1] for o in state["orders"]
                         if o["status"] in ("Submitted", "PreSubmitted"))  # fmt: skip
        assert working == ["sl.3", "tp.3"], working
        _price(stack, 196.0)  # level 3: flat
        wait_until(lambda: _position(stack.sim_state()) == 0 and not _stops(stack.sim_state()), 10)
    finally:
        _check(watcher)
