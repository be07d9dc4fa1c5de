"""A reversal SIGKILLed at every step, restarted: the target is reached, once, and never unprotected
by more than the position.

Real processes: ``python -m ibsim``, gunicorn (alerts go in through ``POST /webhook``) and
``python -m worker``; the worker is killed at a named crash point (``TV2IB_CRASH_AT``, see
:func:`worker.execution.protocol.crash_point`) in the middle of a reversal, then started again. A watcher
polls ibsim's ``/state`` all the while (through the kill and the restart) and checks invariant 7
on every snapshot (:func:`worker.decision.positions.exits_fit`: tv2ib's stops and targets on the closing
side, never larger than the position). After the restart: the position is the alert's target,
every orderRef reached IB once, and the alert traded exactly its 20 shares (close 10, open 10).
"""

from __future__ import annotations

import re
import signal
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import redis
from procs import Stack
from support import StateWatcher, wait_until

from worker.decision.positions import WorkingExit, exits_fit

pytestmark = pytest.mark.e2e

SYMBOL = "AAPL"
# every step of a reversal (close then open), in the order the worker passes them
CRASH_POINTS = [
    "after_decision_recorded",  # the target is stored, nothing sent
    "after_exits_cancelled",  # the long's exits are gone (IB confirmed), the close not sent
    "after_close_placed",  # the close is at IB, not recorded
    "after_close_filled",  # flat, the open not sent
    "before_place",  # the new side's protection handed to the guard, its bracket not sent
    "after_entry_placed",  # the new bracket's entry staged (transmit=False)
    "after_tp_placed",
    "after_sl_placed",  # the new bracket transmitted, not recorded
    "after_recorded",
]
WORKING = frozenset({"ApiPending", "PendingSubmit", "PreSubmitted", "Submitted"})
EXIT_ROLE = re.compile(r"(?:.*[-_.])?(tp|sl)\d*")


def reversal(position: int) -> dict[str, Any]:
    """TradingView's reversal of ``position`` (+-10): the opposite side for twice the size."""
    return {
        "ticker": SYMBOL, "action": "sell" if position > 0 else "buy", "quantity": 20, "price": 190,
        "takeProfit": {"amount": 5}, "stopLoss": {"amount": 5},
    }  # fmt: skip


# ------------------------------------------------------------------ IB's view


def position(state: dict[str, Any]) -> Decimal:
    return sum((Decimal(str(p["position"])) for p in state["positions"] if p["symbol"] == SYMBOL), Decimal(0))


def transmitted(state: dict[str, Any]) -> list[dict[str, Any]]:
    """tv2ib's orders IB has (a staged leg left by a kill before its bracket transmitted never
    reaches the market: real TWS drops it, ibsim keeps it as PendingSubmit with transmit false)."""
    return [o for o in state["orders"] if o["orderRef"].startswith("tv2ib:") and o["transmit"]]


def working(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in transmitted(state) if o["status"] in WORKING]


def exits(state: dict[str, Any]) -> list[WorkingExit]:
    by_id = {(o["clientId"], o["orderId"]): o for o in state["orders"]}
    found = []
    for o in working(state):
        role = EXIT_ROLE.fullmatch(o["orderRef"].rsplit(":", 1)[-1])
        parent = by_id.get((o["clientId"], o["parentId"])) if o["parentId"] else None
        if (
            o["status"] == "PreSubmitted"
            and o["parentId"]
            and (parent is None or parent["status"] != "Filled")
        ):
            continue  # a bracket child waiting for its entry: not an exit yet
        if role:
            found.append(WorkingExit(o["orderRef"], role.group(1), o["action"], Decimal(str(o["remaining"]))))
    return found


def show(state: dict[str, Any]) -> str:
    lines = [f"position {position(state)}"]
    for o in state["orders"]:
        lines.append(f"  {o['orderRef']} #{o['orderId']} {o['action']} {o['orderType']} {o['quantity']} "
                     f"left {o['remaining']} {o['status']} transmit={o['transmit']}")  # fmt: skip
    return "\n".join(lines)


def invariant_problem(state: dict[str, Any]) -> str | None:
    """Invariant 7 on one snapshot of ibsim's state, with the state when it is broken."""
    problem = exits_fit(position(state), exits(state))
    return f"{problem}\n{show(state)}" if problem else None


def watching(stack: Stack) -> StateWatcher:
    return StateWatcher(f"http://127.0.0.1:{stack.sim_control_port}/state", invariant_problem)


# ------------------------------------------------------------------ the test


def wait(predicate: Any, timeout: float, why: Any) -> Any:
    """:func:`wait_until`, with the failure message built when it fails (``why()``: IB's state now)."""
    try:
        return wait_until(predicate, timeout, "")
    except TimeoutError:
        raise AssertionError(why()) from None


def alert_doc(stack: Stack, alert_id: str) -> dict[str, Any]:
    return stack.admin_get(f"/api/alerts/{alert_id}").json()


def send(stack: Stack, payload: dict[str, Any]) -> str:
    answer = stack.post_alert({**payload, "id": uuid.uuid4().hex})  # each its own alert (no dedup)
    assert answer.status_code == 202, answer.text
    return answer.json()["alert_id"]


def open_long(stack: Stack) -> None:
    stack.start_worker()
    alert_id = send(stack, {**reversal(-10), "quantity": 10})
    wait(lambda: alert_doc(stack, alert_id)["status"] == "filled", 30, lambda: stack.logs("worker"))
    wait(lambda: len(exits(stack.sim_state())) == 2, 30, lambda: f"no exits\n{show(stack.sim_state())}")
    assert stack.kill_worker(signal.SIGTERM) == 0


def reverse_through_a_crash(stack: Stack, point: str, held: int, *, jobs_lost: bool = False) -> None:
    """Kill the worker at ``point`` of the reversal of ``held``, restart it, check the outcome.
    ``jobs_lost``: Redis restarts empty before the worker does (the killed job is gone with it)."""
    with watching(stack) as watcher:
        stack.start_worker(TV2IB_CRASH_AT=point)
        alert_id = send(stack, reversal(held))
        try:
            code = stack.wait_worker_exit(timeout=30)
        except Exception as exc:  # noqa: BLE001 - say which point was never reached
            raise AssertionError(
                f"{point}: the worker never reached the crash point\n{stack.logs('worker')}"
            ) from exc
        assert code == -signal.SIGKILL, f"{point}: worker exited with {code}\n{stack.logs('worker')}"
        if jobs_lost:
            client = redis.Redis.from_url(stack.env["REDIS_URL"])
            client.flushdb()
            client.close()
        stack.start_worker()
        doc = wait(lambda: (d := alert_doc(stack, alert_id))["status"] == "filled" and d, 30,
                   lambda: f"{point}: the reversal did not end filled: {alert_doc(stack, alert_id)}\n"
                           f"{stack.logs('worker')}")  # fmt: skip

        def settled() -> dict[str, Any] | None:
            state = stack.sim_state()
            return state if position(state) == -held and len(working(state)) == 2 else None

        state = wait(
            settled,
            30,
            lambda: (
                f"{point}: not at the target with its exits\n{show(stack.sim_state())}\n"
                + "invariant 7 broken on the way:\n"
                + "\n".join(watcher.broken)
            ),
        )
        # a few more snapshots for the watcher: nothing late grows past the position
        wait_until(lambda n=watcher.snapshots: watcher.snapshots >= n + 10, 10, "watcher stalled")
    assert not watcher.broken, f"{point}: invariant 7 broken at IB:\n" + "\n".join(watcher.broken)
    assert watcher.snapshots > 10, f"{point}: the watcher saw too little"

    closing = "BUY" if held > 0 else "SELL"
    rows = sorted((o["action"], o["orderType"], o["remaining"]) for o in working(state))
    assert rows == [(closing, "LMT", 10), (closing, "STP", 10)], f"{point}:\n{show(state)}"
    twice = [ref for ref, n in Counter(o["orderRef"] for o in transmitted(state)).items() if n > 1]
    assert not twice, f"{point}: orderRef(s) sent twice: {twice}\n{show(state)}"
    traded = sum(Decimal(str(e["shares"])) for e in state["executions"] if f":{alert_id}:" in e["orderRef"])
    assert traded == 20, f"{point}: the reversal traded {traded} shares, not 20 (close 10 + open 10)"
    assert doc["reason"], f"{point}: no reason stored"
    assert stack.kill_worker(signal.SIGTERM) == 0


def run_reversals(stack: Stack, points: list[str], *, jobs_lost: bool = False) -> None:
    stack.start_sim()
    stack.sim_post("/price", {"symbol": SYMBOL, "secType": "STK", "price": 190.0})
    stack.start_web()
    open_long(stack)
    held = 10
    for point in points:
        reverse_through_a_crash(stack, point, held, jobs_lost=jobs_lost)
        held = -held


def test_sigkill_at_every_step_of_a_reversal(stack):
    run_reversals(stack, CRASH_POINTS)


def test_sigkill_between_a_reversals_close_and_its_open_then_redis_restarting_empty(stack):
    """Found by the chaos run: the worker died after the reversal's close, before its open, and
    Redis restarted empty before the worker came back, taking the job off its processing list. The
    alert sat ``submitted`` with its close filled and its opening bracket never sent. The restarted
    worker finds it (its plan's last leg unknown to IB) and runs it again: the reversal completes."""
    run_reversals(stack, ["after_close_filled", "before_place"], jobs_lost=True)


def test_sigkill_after_the_close_on_postgresql(tmp_path, base_env, own_pg_url):
    stack = Stack(tmp_path, {**base_env, "DATABASE_URL": own_pg_url})
    try:
        run_reversals(stack, ["after_close_placed", "after_exits_cancelled"])
    finally:
        stack.stop()


def test_sigkill_after_a_refused_close_put_the_exits_back(stack):
    """IB refuses the reversal's close (margin); the worker puts the long's exits back and is killed
    before it records anything. The long is protected while no worker runs, and after the restart
    the alert ends with a reason, either refused again (the refusal is IB's: real TWS reports the
    rejected order) or retried to its target (ibsim forgets a rejected order, so the rerun cannot
    know it was refused); never in between, never doubled, never over-protected."""
    stack.start_sim()
    stack.sim_post("/price", {"symbol": SYMBOL, "secType": "STK", "price": 190.0})
    stack.start_web()
    open_long(stack)
    stack.sim_post("/fault", {"kind": "reject_next", "reason": "Insufficient margin", "code": 201})
    with watching(stack) as watcher:
        stack.start_worker(TV2IB_CRASH_AT="after_exits_restored")
        alert_id = send(stack, reversal(10))
        assert stack.wait_worker_exit(timeout=30) == -signal.SIGKILL, stack.logs("worker")
        state = stack.sim_state()
        rows = sorted((o["action"], o["orderType"], o["remaining"]) for o in working(state))
        assert position(state) == 10 and rows == [("SELL", "LMT", 10), ("SELL", "STP", 10)], show(state)
        stack.start_worker()
        doc = wait(lambda: (d := alert_doc(stack, alert_id))["status"] in ("rejected", "filled") and d, 30,
                   lambda: f"the alert did not end: {alert_doc(stack, alert_id)}\n{stack.logs('worker')}")  # fmt: skip
        held = 10 if doc["status"] == "rejected" else -10
        closing = "SELL" if held > 0 else "BUY"

        def settled() -> dict[str, Any] | None:
            state = stack.sim_state()
            rows = sorted((o["action"], o["orderType"], o["remaining"]) for o in working(state))
            return (
                state
                if position(state) == held and rows == [(closing, "LMT", 10), (closing, "STP", 10)]
                else None
            )

        state = wait(settled, 30, lambda: f"{doc['status']}, but IB shows\n{show(stack.sim_state())}")
        wait_until(lambda n=watcher.snapshots: watcher.snapshots >= n + 10, 10, "watcher stalled")
    assert not watcher.broken, "invariant 7 broken at IB:\n" + "\n".join(watcher.broken)
    if doc["status"] == "rejected":
        assert "Insufficient margin" in doc["reason"], doc["reason"]
    twice = [ref for ref, n in Counter(o["orderRef"] for o in transmitted(state)).items() if n > 1]
    assert not twice, f"orderRef(s) sent twice: {twice}\n{show(state)}"
    traded = sum(Decimal(str(e["shares"])) for e in state["executions"] if f":{alert_id}:" in e["orderRef"])
    assert traded == (0 if held > 0 else 20), f"traded {traded}\n{show(state)}"


def crash_then_restart(stack: Stack, point: str, payload: dict[str, Any], held: int, traded: int) -> None:
    """Send ``payload`` to a worker that dies at ``point``, restart it; then IB holds ``held`` with
    one take-profit and one stop-loss of that size, and the alert traded ``traded`` shares once."""
    with watching(stack) as watcher:
        stack.start_worker(TV2IB_CRASH_AT=point)
        alert_id = send(stack, payload)
        assert stack.wait_worker_exit(timeout=30) == -signal.SIGKILL, f"{point}\n{stack.logs('worker')}"
        stack.start_worker()
        doc = wait(lambda: (d := alert_doc(stack, alert_id))["status"] == "filled" and d, 30,
                   lambda: f"{point}: not filled: {alert_doc(stack, alert_id)}\n{stack.logs('worker')}")  # fmt: skip
        want = [("SELL", "LMT", held), ("SELL", "STP", held)]

        def settled() -> dict[str, Any] | None:
            state = stack.sim_state()
            rows = sorted((o["action"], o["orderType"], o["remaining"]) for o in working(state))
            return state if position(state) == held and rows == want else None

        state = wait(settled, 30, lambda: f"{point}: expected {held} with {want}\n{show(stack.sim_state())}\n"
                     + "\n".join(watcher.broken))  # fmt: skip
        wait_until(lambda n=watcher.snapshots: watcher.snapshots >= n + 10, 10, "watcher stalled")
    assert not watcher.broken, f"{point}: invariant 7 broken at IB:\n" + "\n".join(watcher.broken)
    twice = [ref for ref, n in Counter(o["orderRef"] for o in transmitted(state)).items() if n > 1]
    assert not twice, f"{point}: orderRef(s) sent twice: {twice}\n{show(state)}"
    shares = sum(Decimal(str(e["shares"])) for e in state["executions"] if f":{alert_id}:" in e["orderRef"])
    assert shares == traded, f"{point}: traded {shares}, not {traded}\n{show(state)}"
    assert doc["reason"], point
    assert stack.kill_worker(signal.SIGTERM) == 0


def test_sigkill_in_a_partial_exit_and_an_add(stack):
    """A partial exit killed after its exits shrank (before the close), an add killed right after
    its entry went out (its exits grow only after the restart): each ends once, protected."""
    stack.start_sim()
    stack.sim_post("/price", {"symbol": SYMBOL, "secType": "STK", "price": 190.0})
    stack.start_web()
    open_long(stack)
    exit_4 = {"ticker": SYMBOL, "action": "exit", "quantity": 4, "price": 190}
    crash_then_restart(stack, "after_exits_cancelled", exit_4, held=6, traded=4)
    add_4 = {"ticker": SYMBOL, "action": "add", "quantity": 4, "price": 190}
    crash_then_restart(stack, "after_entry_placed", add_4, held=10, traded=4)
