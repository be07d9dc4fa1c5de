"""A bar-close burst: 500 valid alerts from ONE address at once, with the default limits.

TradingView sends every alert from four fixed addresses, and a strategy on 100+ tickers fires them
in the same second. Real gunicorn (2 workers x 4 threads), ``python -m worker`` and ibsim: every
alert gets 202 and leads to exactly one order at ibsim. Orders without take-profit / stop-loss
keep it quick (one order message each; IB's pacing of 40 messages per second sets the pace).
Each alert names its own target (``positionSize`` 1..500): whatever order the worker takes them
in, each one is exactly one order (an entry that adds, or a close that reduces); 500 plain buys
would be refused from the second on (a buy while long does not pyramid).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from procs import Stack
from support import wait_until

pytestmark = pytest.mark.e2e

BURST = 500
NOT_FILLED = frozenset({"cancelled", "rejected", "failed", "invalid", "duplicate"})  # final, not filled


def test_500_valid_alerts_from_one_address_all_accepted_each_one_order(stack: Stack):
    # IB's pacing alone makes the burst take about 40 s on a quiet machine; beside the suite's other
    # end-to-end tests (the chaos run) it can pass the stack's 60 s stale limit. This test is about
    # every alert accepted and placed exactly once, not about that limit.
    stack.env["STALE_ALERT_SECONDS"] = "300"
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.start_web()
    stack.start_worker()
    secret = stack.env["WEBHOOK_SECRET"]
    bodies = [
        {"secret": secret, "id": f"bar-close-{i}", "ticker": "AAPL", "action": "buy", "quantity": 1,
         "positionSize": i + 1, "orderType": "market"}
        for i in range(BURST)
    ]  # fmt: skip

    limits = httpx.Limits(max_connections=64)
    with (
        httpx.Client(base_url=stack.web_url, timeout=30, limits=limits) as http,
        ThreadPoolExecutor(64) as pool,
    ):
        answers = list(pool.map(lambda body: http.post("/webhook", json=body), bodies))

    codes = Counter(a.status_code for a in answers)
    assert codes == {202: BURST}, f"{codes}: {[a.text for a in answers if a.status_code != 202][:3]}"
    alert_ids = {a.json()["alert_id"] for a in answers}
    assert len(alert_ids) == BURST

    def all_filled() -> bool:
        listed = stack.admin_get(f"/api/alerts?limit={BURST}").json()["alerts"]
        # an alert that ended otherwise will never fill: say which and why now, not after the timeout
        ended = [f"{a['id']} {a['status']}: {a.get('reason')}" for a in listed if a["status"] in NOT_FILLED]
        assert not ended, "alerts that ended without a fill:\n" + "\n".join(ended[:5])
        return len(listed) == BURST and all(a["status"] == "filled" for a in listed)

    wait_until(all_filled, 240, lambda: f"not every alert filled:\n{stack.logs('worker')}", interval=1.0)
    refs = Counter(o["orderRef"] for o in stack.sim_state()["orders"])
    assert set(refs.values()) == {1}
    per_alert = Counter(ref.split(":")[1] for ref in refs)
    assert set(per_alert) == alert_ids and set(per_alert.values()) == {1}
    assert {ref.rsplit(":", 1)[1] for ref in refs} <= {"entry", "close"}
