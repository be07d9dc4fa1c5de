"""The whole pipe with real processes: gunicorn intake → rq → python -m worker → python -m ibsim,
read back through the admin API; then the simulated gateway restarts and the worker carries on."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import redis
from procs import Stack
from support import wait_until

from core import keys

pytestmark = pytest.mark.e2e

ALERT = {
    "ticker": "NASDAQ:AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190,
    "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5},
}  # fmt: skip


def _alert(stack: Stack, alert_id: str) -> dict:
    return stack.admin_get(f"/api/alerts/{alert_id}").json()


def test_webhook_to_bracket_fill_visible_in_admin_api_and_gateway_restart(tmp_path, base_env):
    stack = Stack(tmp_path, base_env, sim_args=("--state", str(tmp_path / "ibsim-state.json")))
    try:
        stack.start_sim()
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
        stack.start_web()
        stack.start_worker()
        answer = stack.post_alert(ALERT)
        assert answer.status_code == 202, answer.text
        alert_id = answer.json()["alert_id"]
        doc = wait_until(lambda: (d := _alert(stack, alert_id))["status"] == "filled" and d["fills"] and d, 20,
                         f"not filled\n{stack.logs('worker')}")  # fmt: skip
        assert Decimal(doc["plan"]["legs"][1]["limit_price"]) == Decimal("191.9")
        assert Decimal(doc["plan"]["legs"][2]["stop_price"]) == Decimal("189.05")
        assert {o["leg"] for o in doc["orders"]} == {"entry", "tp", "sl"}
        assert doc["fills"][0]["leg"] == "entry" and doc["fills"][0]["quantity"] == 10
        orders = stack.admin_get("/api/orders?working=1").json()["orders"]
        assert {o["leg"] for o in orders if o["alert_id"] == alert_id} >= {"tp", "sl"}
        positions = wait_until(
            lambda: stack.admin_get("/api/positions").json()["positions"], 10, "no position"
        )
        assert positions[0]["symbol"] == "AAPL" and positions[0]["quantity"] == 10

        # the gateway restarts (its --state keeps orders and positions, like IB's servers do)
        client = redis.Redis.from_url(base_env["REDIS_URL"])
        beat = keys.heartbeat_key(None, int(stack.env["IB_CLIENT_ID"]))
        stack.stop_sim()
        wait_until(lambda: not json.loads(client.get(beat) or "{}").get("ib_connected", True), 10,
                   "the worker did not notice the gateway going away")  # fmt: skip
        stack.start_sim()
        wait_until(lambda: json.loads(client.get(beat) or "{}").get("connects", 0) >= 2 and
                   json.loads(client.get(beat))["ib_connected"], 20, stack.logs("worker"))  # fmt: skip
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
        # the strategy reverses to short 5 (TradingView sends the old plus the new size): the long's
        # exits go, a close, then the short's bracket
        second = stack.post_alert({**ALERT, "action": "sell", "quantity": 15}).json()["alert_id"]
        wait_until(lambda: _alert(stack, second)["status"] == "filled", 20, stack.logs("worker"))
        state = stack.sim_state()
        assert len([o for o in state["orders"] if alert_id in o["orderRef"]]) == 3
        legs = {o["orderRef"].rsplit(":", 1)[1]: o for o in state["orders"] if second in o["orderRef"]}
        assert sorted(legs) == ["close", "entry", "sl", "tp"] and legs["entry"]["quantity"] == 5
        assert [p["position"] for p in state["positions"] if p["symbol"] == "AAPL"] == [-5]
        client.close()
    finally:
        stack.stop()
