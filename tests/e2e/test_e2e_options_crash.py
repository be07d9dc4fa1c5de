"""An option position's exits match it across SIGKILLs of the worker (invariant 7 on options).

Real processes: ``python -m ibsim`` and ``python -m worker`` (SQLite, private Redis DB), killed at
the protocol's crash points (env ``TV2IB_CRASH_AT``) while it opens calls with a bracket, reduces
them, and reverses them into puts; each time a new worker finishes the job.
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from support import alert_status, queue_alert, wait_until

from core.db import migrate

pytestmark = pytest.mark.e2e

EAGER = {"OPTION_ENTRY_TICKS": "100"}  # entries at the far side of the quote: they fill at once
BOTH = {
    "ticker": "AAPL",
    "optionType": "both",
    "expiration": "+30 days",
    "intrinsicValue": "otm",
    "strikesAway": 1,
}
OPEN = {**BOTH, "action": "buy", "quantity": 3, "takeProfit": {"percent": 40}, "stopLoss": {"percent": 25}}


def _options(state: dict) -> dict[int, float]:
    return {
        p["conId"]: p["position"] for p in state["positions"] if p.get("secType") == "OPT" and p["position"]
    }


def _exits(state: dict, con_id: int) -> dict[str, float]:
    """The working exit quantities on ``con_id`` by leg (tp, sl)."""
    out: dict[str, float] = {}
    for order in state["orders"]:
        if order["conId"] == con_id and order["status"] in ("Submitted", "PreSubmitted"):
            leg = order["orderRef"].rsplit(":", 1)[1]
            out[leg] = out.get(leg, 0) + order["quantity"] - (order.get("filled") or 0)
    return out


def _matches(stack, con_id: int, size: float) -> bool:
    """Invariant 7: the take-profit and the stop-loss each equal the position, on the closing side."""
    state = stack.sim_state()
    if _options(state).get(con_id, 0) != size:
        return False
    working = [
        o for o in state["orders"] if o["conId"] == con_id and o["status"] in ("Submitted", "PreSubmitted")
    ]
    return _exits(state, con_id) == {"tp": size, "sl": size} and all(o["action"] == "SELL" for o in working)


def _crash_and_finish(stack, sessions, redis_client, payload: dict, point: str) -> str:
    stack.start_worker(TV2IB_CRASH_AT=point, **EAGER)
    alert_id = queue_alert(sessions, redis_client, payload)
    code = stack.wait_worker_exit(timeout=30)
    assert code == -signal.SIGKILL, f"{point}: worker exited with {code}\n{stack.logs('worker')}"
    stack.start_worker(**EAGER)
    wait_until(lambda: alert_status(sessions, alert_id) == "filled", 30,
               lambda: f"{point}: alert not filled\n{stack.logs('worker')}")  # fmt: skip
    return alert_id


def test_option_exits_match_the_position_across_sigkills(stack, base_env, redis_client):
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    engine = create_engine(base_env["DATABASE_URL"])
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)

    # 1. the bracket on the calls, killed after its stop-loss went out: each leg once, exits = 3
    opened = _crash_and_finish(stack, sessions, redis_client, OPEN, "after_sl_placed")
    state = stack.sim_state()
    legs = [o for o in state["orders"] if opened in o["orderRef"]]
    assert sorted(o["orderRef"].rsplit(":", 1)[1] for o in legs) == ["entry", "sl", "tp"]
    calls = legs[0]["conId"]
    wait_until(
        lambda: _matches(stack, calls, 3), 15, lambda: f"exits do not match 3\n{stack.sim_state()['orders']}"
    )
    assert stack.kill_worker(signal.SIGTERM) == 0

    # 2. a partial sell of the calls, killed after its close went out: exits shrink to the 2 left
    reduce = {**BOTH, "optionType": "call", "action": "sell", "quantity": 1}
    _crash_and_finish(stack, sessions, redis_client, reduce, "after_close_placed")
    wait_until(
        lambda: _matches(stack, calls, 2), 15, lambda: f"exits do not match 2\n{stack.sim_state()['orders']}"
    )
    assert stack.kill_worker(signal.SIGTERM) == 0

    # 3. the reversal into puts, killed right after the calls' exit went out (in its child alert):
    #    the next worker finishes the close once, then opens the puts; only puts are left
    reverse = {**BOTH, "action": "sell", "quantity": 1}
    reversed_id = _crash_and_finish(stack, sessions, redis_client, reverse, "after_exit_placed")
    state = stack.sim_state()
    call_exits = [o for o in state["orders"] if o["conId"] == calls and o["orderRef"].endswith(":exit")]
    assert len(call_exits) == 1 and call_exits[0]["quantity"] == 2, call_exits
    puts = [o for o in state["orders"] if reversed_id in o["orderRef"] and o["orderRef"].endswith(":entry")]
    assert len(puts) == 1 and puts[0]["right"] == "P"
    assert _options(state) == {puts[0]["conId"]: 1}
    wait_until(lambda: _exits(stack.sim_state(), calls) == {}, 10, "the calls' exits are still working")
