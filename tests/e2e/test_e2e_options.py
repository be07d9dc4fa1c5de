"""The worked options alert of docs/tradingview.md, sent to the webhook of a real gunicorn and
traded by a real worker on ibsim: calls, a reversal into puts, and the close."""

from __future__ import annotations

import pytest
from support import wait_until

pytestmark = pytest.mark.e2e

# docs/tradingview.md "Options from a strategy on the underlying", its placeholders filled in
TEMPLATE = {
    "ticker": "AAPL", "quantity": 1, "optionType": "both", "expiration": "+30 days", "intrinsicValue": "otm",
    "strikesAway": 1, "takeProfit": {"percent": 50}, "stopLoss": {"percent": 30}, "strategy": "aapl-options",
    "time": "2026-12-07T14:30:00Z",
}  # fmt: skip


def _traded(stack, signal: dict) -> dict:
    answer = stack.post_alert({**TEMPLATE, **signal})
    assert answer.status_code == 202, answer.text
    alert_id = answer.json()["alert_id"]

    def ended() -> dict | None:
        doc = stack.admin_get(f"/api/alerts/{alert_id}").json()
        return doc if doc["status"] in ("filled", "rejected", "cancelled", "failed") else None

    doc = wait_until(ended, 30, lambda: f"{signal} not traded\n{stack.logs('worker')}")
    assert doc["status"] == "filled", (doc["status"], doc["reason"])
    return doc


def _options(stack) -> dict[tuple[str, float], float]:
    return {(p["right"], p["strike"]): p["position"] for p in stack.sim_state()["positions"]
            if p.get("secType") == "OPT" and p["position"]}  # fmt: skip


def test_the_worked_options_alert_of_the_guide(stack):
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.start_web()
    stack.start_worker(OPTION_ENTRY_TICKS="100")  # at the far side of the quote: fills at once

    long = _traded(stack, {"action": "buy", "sentiment": "long"})
    assert (
        long["plan"]["option"]["contract"].startswith("AAPL ")
        and "call 192.50" in long["plan"]["option"]["contract"]
    )
    assert _options(stack) == {("C", 192.5): 1}

    short = _traded(stack, {"action": "sell", "sentiment": "short"})
    assert "closed_first" in short["plan"]["option"] and "put 187.50" in short["plan"]["option"]["contract"]
    assert _options(stack) == {("P", 187.5): 1}

    flat = _traded(stack, {"action": "buy", "sentiment": "flat"})
    assert flat["plan"]["option"]["held"]["contract"].startswith("long 1 ")
    assert _options(stack) == {}
