"""One IB account, one live worker (issue 16, item 2): a second worker for an account refuses to
start with the reason (exit code 2), and nothing it could have doubled is doubled.

Real processes: ``python -m ibsim`` managing DU1 and DU2, gunicorn and ``python -m worker``. The
probe ran a worker without ``IB_ACCOUNT`` beside the DU1 worker (as docs/scaling.md advised, "to
take the alerts that name none"): it learned DU1 from IB, its guard saw none of client 21's exits
and attached a second stop and target to every DU1 position; a move through the stop filled both
and left DU1 short 10.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from procs import Stack
from support import wait_until

pytestmark = pytest.mark.e2e

WORKING = frozenset({"ApiPending", "PendingSubmit", "PreSubmitted", "Submitted"})
BRACKET = {"ticker": "AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190,
           "takeProfit": {"amount": 5}, "stopLoss": {"amount": 1.5}, "account": "DU1"}  # fmt: skip


def du1_position(stack: Stack) -> float:
    return sum(
        p["position"]
        for p in stack.sim_state()["positions"]
        if p["account"] == "DU1" and p["symbol"] == "AAPL"
    )


def du1_exits(stack: Stack) -> list[tuple[int, str, str, float]]:
    """tv2ib's working exits on DU1 AAPL: (client id, action, order type, remaining)."""
    return sorted(
        (o["clientId"], o["action"], o["orderType"], o["remaining"])
        for o in stack.sim_state()["orders"]
        if o["account"] == "DU1"
        and o["status"] in WORKING
        and o["orderRef"].rsplit(":", 1)[-1][:2] in ("tp", "sl")
    )


def spawn_worker(stack: Stack, name: str, **env: str) -> subprocess.Popen[bytes]:
    """``python -m worker`` with ``env`` over the stack's, logging to ``<name>.log`` (no wait)."""
    return stack._spawn(name, [sys.executable, "-m", "worker"], {**stack.env, **env})


def exit_code(stack: Stack, proc: subprocess.Popen[bytes], name: str, timeout: float = 40) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} still runs beside the account's worker:\n{stack.logs(name)}")


def heartbeat_serves(stack: Stack, account: str, client_id: int) -> Any:
    import json

    import redis

    from core.keys import heartbeat_key

    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        raw = client.get(heartbeat_key(account, client_id))
    finally:
        client.close()
    return json.loads(raw).get("serves") if raw else None


def test_a_second_worker_for_an_account_refuses_to_start_and_nothing_is_doubled(tmp_path, base_env):
    stack = Stack(tmp_path, base_env, sim_args=("--account", "DU1", "--account", "DU2"))
    try:
        stack.start_sim()
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
        stack.start_account_worker("DU1", 21)
        stack.start_web()
        answer = stack.post_alert(BRACKET)
        assert answer.status_code == 202, answer.text
        wait_until(lambda: du1_position(stack) == 10 and len(du1_exits(stack)) == 2, 20,
                   lambda: stack.logs("worker-DU1"))  # fmt: skip
        one_set = [(21, "SELL", "LMT", 10.0), (21, "SELL", "STP", 10.0)]
        assert du1_exits(stack) == one_set

        # the probe's worker: no IB_ACCOUNT; IB's first managed account is DU1. And one naming DU1.
        unnamed = spawn_worker(stack, "worker-unnamed", IB_CLIENT_ID="31")
        named = spawn_worker(stack, "worker-DU1-again", IB_ACCOUNT="DU1", IB_CLIENT_ID="32")
        assert exit_code(stack, unnamed, "worker-unnamed") == 2
        log = stack.logs("worker-unnamed")
        assert "manages DU1, the account a worker without IB_ACCOUNT trades, and account DU1 is already " \
               "served by another live worker (client id 21" in log, log  # fmt: skip
        assert "One IB account is served by one worker only" in log
        assert exit_code(stack, named, "worker-DU1-again") == 2
        log = stack.logs("worker-DU1-again")
        assert "tv2ib worker: account DU1 is already served by another live worker (client id 21" in log, log

        # nothing doubled: one stop and one target; an add is one order; a move through the stop
        # closes the position and leaves DU1 flat, not short
        assert du1_exits(stack) == one_set
        added = stack.post_alert({**BRACKET, "action": "add", "quantity": 2})
        assert added.status_code == 202, added.text
        wait_until(lambda: du1_position(stack) == 12 and [e[3] for e in du1_exits(stack)] == [12.0, 12.0], 20,
                   lambda: f"{du1_exits(stack)}\n{stack.logs('worker-DU1')}")  # fmt: skip
        buys = [o for o in stack.sim_state()["orders"] if o["account"] == "DU1" and o["action"] == "BUY"]
        assert sorted(o["quantity"] for o in buys) == [2.0, 10.0], buys
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 188.0})
        wait_until(lambda: du1_position(stack) == 0 and du1_exits(stack) == [], 20,
                   lambda: f"{du1_position(stack)} {du1_exits(stack)}\n{stack.logs('worker-DU1')}")  # fmt: skip
        assert stack.procs["worker-DU1"].poll() is None  # the account's own worker runs on
    finally:
        stack.stop()


def test_two_workers_started_at_once_for_one_account_one_serves_the_other_refuses(tmp_path, base_env):
    stack = Stack(tmp_path, base_env, sim_args=("--account", "DU1", "--account", "DU2"))
    try:
        stack.start_sim()
        procs = {
            cid: spawn_worker(stack, f"worker-{cid}", IB_ACCOUNT="DU2", IB_CLIENT_ID=str(cid))
            for cid in (41, 42)
        }

        def one_exited() -> int | None:
            done = [cid for cid, proc in procs.items() if proc.poll() is not None]
            return done[0] if len(done) == 1 else None

        refused = wait_until(one_exited, 40, lambda: "\n".join(stack.logs(f"worker-{c}") for c in procs))
        assert procs[refused].returncode == 2, stack.logs(f"worker-{refused}")
        assert "account DU2 is already served by another live worker" in stack.logs(f"worker-{refused}")
        serving = 83 - refused  # the other of 41 and 42
        wait_until(lambda: heartbeat_serves(stack, "DU2", serving) == ["DU2"], 20,
                   lambda: stack.logs(f"worker-{serving}"))  # fmt: skip
        assert procs[serving].poll() is None
    finally:
        stack.stop()
