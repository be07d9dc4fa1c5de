"""Routing with real processes (gunicorn, python -m worker without IB_ACCOUNT, ibsim): an alert
naming the account IB manages is traded; one naming an account no worker serves is refused at
once with 422; a flatten to a malformed or unserved account is refused."""

from __future__ import annotations

import httpx
import pytest
from procs import Stack
from support import wait_until

pytestmark = pytest.mark.e2e

MANAGED = "DU1234567"  # ibsim's default managed account
ALERT = {
    "ticker": "NASDAQ:AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190,
    "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5},
}  # fmt: skip


def test_alerts_route_to_the_accounts_workers_serve(stack: Stack) -> None:
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.start_web()
    stack.start_worker()  # no IB_ACCOUNT: serves "default" and DU1234567

    answer = stack.post_alert({**ALERT, "account": MANAGED})
    assert answer.status_code == 202, answer.text
    alert_id = answer.json()["alert_id"]
    wait_until(lambda: stack.admin_get(f"/api/alerts/{alert_id}").json()["status"] in ("submitted", "filled"),
               20, f"the alert naming {MANAGED} was not traded\n{stack.logs('worker')}")  # fmt: skip

    refused = stack.post_alert({**ALERT, "account": "DU999"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["fields"]["account"] == [
        f"no worker serves account DU999; workers serve: {MANAGED} and alerts that name no account"
    ]

    headers = {"Authorization": f"Bearer {stack.env['ADMIN_TOKEN']}"}
    for account in ("../../x", "DU999"):
        flat = httpx.post(
            f"{stack.web_url}/api/flatten", params={"account": account}, headers=headers, timeout=5
        )
        assert flat.status_code == 422, flat.text
