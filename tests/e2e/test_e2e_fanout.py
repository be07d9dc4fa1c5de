"""One alert, two accounts, two workers on one ibsim: each account gets its own order exactly once,
across a SIGKILL of one worker right after its entry went out (issue 11, "One alert, several accounts").

Real processes: ``python -m ibsim`` managing DU1 and DU2, gunicorn, and one ``python -m worker`` per
account (``IB_ACCOUNT`` and ``IB_CLIENT_ID`` of its own). The crash point is the worker's one test
hook (``TV2IB_CRASH_AT``, ``worker.executor.crash_point``).
"""

from __future__ import annotations

import signal

import pytest
from procs import Stack
from support import wait_until

pytestmark = pytest.mark.e2e

ALERT = {"ticker": "AAPL", "action": "buy", "quantity": 5, "orderType": "market", "price": 190}


def test_one_alert_to_two_accounts_orders_once_per_account_across_a_worker_kill(tmp_path, base_env):
    stack = Stack(tmp_path, base_env, sim_args=("--account", "DU1", "--account", "DU2"))
    try:
        stack.start_sim()
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
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
            assert [(o["account"], o["quantity"]) for o in orders] == [(account, 5)], state["orders"]
            bought = sum(
                e["shares"] for e in state["executions"] if e["orderRef"] == f"tv2ib:{child_id}:entry"
            )
            assert bought == 5, (account, state["executions"])
            assert all(e["account"] == account for e in state["executions"] if child_id in e["orderRef"])
            child = stack.admin_get(f"/api/alerts/{child_id}").json()
            assert child["parent_id"] == parent_id and child["payload"]["account"] == account
        held = {p["account"]: p["position"] for p in state["positions"] if p["symbol"] == "AAPL"}
        assert held == {"DU1": 5, "DU2": 5}
        # a resend of the same alert: the parent again, no new order anywhere
        again = stack.post_alert({**ALERT, "account": ["DU1", "DU2"], "strategy": "trend"})
        assert again.status_code == 200 and again.json()["alert_id"] == parent_id
        assert len(stack.sim_state()["orders"]) == len(state["orders"])
    finally:
        stack.stop()
