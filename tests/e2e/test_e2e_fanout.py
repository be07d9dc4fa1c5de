"""One alert, two accounts, two workers on one ibsim: each account gets its own order exactly once,
across a SIGKILL of one worker right after its entry went out (issue 11, "One alert, several accounts").

Real processes: ``python -m ibsim`` managing DU1 and DU2, gunicorn, and one ``python -m worker`` per
account (``IB_ACCOUNT`` and ``IB_CLIENT_ID`` of its own). The crash point is the worker's one test
hook (``TV2IB_CRASH_AT``, ``worker.execution.protocol.crash_point``).
"""

from __future__ import annotations

import signal

import pytest
from procs import Stack
from support import wait_until

pytestmark = pytest.mark.e2e

# sized by each account's own NetLiquidation: 1% of 1,000,000 at 190 -> 52; 1% of 500,000 -> 26
ALERT = {"ticker": "AAPL", "action": "buy", "quantity": 1, "quantityType": "percent_of_equity",
         "orderType": "market", "price": 190}  # fmt: skip
SIZED = {"DU1": 52, "DU2": 26}


def test_one_alert_to_two_accounts_orders_once_per_account_across_a_worker_kill(tmp_path, base_env):
    stack = Stack(tmp_path, base_env, sim_args=("--account", "DU1", "--account", "DU2"))
    try:
        stack.start_sim()
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
        # DU2 is a margin account half DU1's size: each child is sized by its own account
        stack.sim_post("/account", {"account": "DU2", "cash": False, "balance": 500000})
        crashing = stack.start_account_worker("DU1", 21, TV2IB_CRASH_AT="after_entry_placed")
        stack.start_account_worker("DU2", 22)
        stack.start_web()

        answer = stack.post_alert({**ALERT, "account": ["DU1", "DU2"], "strategy": "trend"})
        assert answer.status_code == 202, answer.text
        parent_id = answer.json()["alert_id"]
        children = {c["account"]: c["alert_id"] for c in answer.json()["children"]}
        assert sorted(children) == ["DU1", "DU2"]

        # DU1's worker dies right after its entry reached IB; a new one (no crash point) resumes it
        assert crashing.wait(20) == -signal.SIGKILL, stack.logs("worker-DU1")
        stack.start_account_worker("DU1", 21)

        def both_filled() -> dict | None:
            doc = stack.admin_get(f"/api/alerts/{parent_id}").json()
            done = all(c["status"] in ("submitted", "filled") for c in doc["children"])
            return doc if done else None

        parent = wait_until(
            both_filled, 20, lambda: f"{stack.logs('worker-DU1')}\n{stack.logs('worker-DU2')}"
        )
        assert parent["status"] == "fanned_out"
        assert {c["account"]: c["id"] for c in parent["children"]} == children

        state = stack.sim_state()
        for account, child_id in children.items():
            orders = [o for o in state["orders"] if o["orderRef"] == f"tv2ib:{child_id}:entry"]
            placed = [(o["account"], o["quantity"]) for o in orders]
            assert placed == [(account, SIZED[account])], state["orders"]
            bought = sum(
                e["shares"] for e in state["executions"] if e["orderRef"] == f"tv2ib:{child_id}:entry"
            )
            assert bought == SIZED[account], (account, state["executions"])
            assert all(e["account"] == account for e in state["executions"] if child_id in e["orderRef"])
            child = stack.admin_get(f"/api/alerts/{child_id}").json()
            assert child["parent_id"] == parent_id and child["payload"]["account"] == account
            net = "1,000,000.00" if account == "DU1" else "500,000.00"
            assert f"1% of {net} USD NetLiquidation" in child["plan"]["sizing"]["text"], child["plan"]
        held = {p["account"]: p["position"] for p in state["positions"] if p["symbol"] == "AAPL"}
        assert held == SIZED
        # a resend of the same alert: the parent again, no new order anywhere
        again = stack.post_alert({**ALERT, "account": ["DU1", "DU2"], "strategy": "trend"})
        assert again.status_code == 200 and again.json()["alert_id"] == parent_id
        assert len(stack.sim_state()["orders"]) == len(state["orders"])
    finally:
        stack.stop()
