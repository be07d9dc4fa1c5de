"""A pacing storm (ibsim's ``pacing`` fault: IB answers error 100 to order messages and drops
them): every alert still ends with exactly one order set at IB, or refused ``IB pacing: ...``; no
exit exceeds the position."""

from __future__ import annotations

from collections import Counter

from support import wait_until
from worker_helpers import add_alert, alert_status

from core.services import get_alert

CLIENT = 7  # worker_env's IB_CLIENT_ID
ALERTS = 8
TERMINAL_OR_WORKING = ("submitted", "filled", "rejected", "cancelled", "failed", "stale")


def _bracket(i: int, order_type: str = "limit") -> dict:
    payload = {"ticker": "AAPL", "action": "buy", "quantity": 1 + i, "orderType": order_type,
               "takeProfit": {"limitPrice": 200}, "stopLoss": {"stopPrice": 180}, "strategy": f"s{i}"}  # fmt: skip
    if order_type == "limit":
        payload["limitPrice"] = 185 + i * 0.1  # resting below the market: its exits wait under it
    return payload


def _orders(sim, alert_id: str) -> list[dict]:
    return [
        o
        for o in sim.state()["orders"]
        if o["clientId"] == CLIENT and o["orderRef"].startswith(f"tv2ib:{alert_id}:")
    ]


def _legs_at_ib(sim, alert_id: str) -> Counter:
    """Each leg's orders at IB that IB accepted (working or done, not refused)."""
    return Counter(
        o["orderRef"].rsplit(":", 1)[1] for o in _orders(sim, alert_id) if o["status"] != "Inactive"
    )


def test_a_burst_under_a_pacing_storm_places_each_bracket_exactly_once(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    # 7 refusals: whole brackets and a bracket cut in the middle (a child refused, or sent without
    # its dropped parent, which IB refuses with 201)
    sim.fault("pacing", count=7, clientId=CLIENT)
    ids = [add_alert(ctx, _bracket(i)) for i in range(ALERTS)]

    def all_working() -> bool:
        return all(_legs_at_ib(sim, a) == Counter(entry=1, tp=1, sl=1) and alert_status(ctx, a) == "submitted"
                   for a in ids)  # fmt: skip

    wait_until(all_working, timeout=90)
    for alert_id in ids:
        working = [o for o in _orders(sim, alert_id) if o["status"] in ("Submitted", "PreSubmitted")]
        assert sorted(o["orderRef"].rsplit(":", 1)[1] for o in working) == ["entry", "sl", "tp"]
    assert running_worker.worker.ib.pacing_violations >= 7  # counted (heartbeat, metrics)


def test_market_brackets_under_a_pacing_storm_keep_exits_equal_to_the_position(sim, running_worker):
    ctx = running_worker.ctx
    tickers = ("AAPL", "MSFT", "SPY", "QQQ")
    for ticker in tickers:
        sim.set_price(ticker, 190.0)
    sim.fault("pacing", count=5, clientId=CLIENT)
    ids = [add_alert(ctx, {**_bracket(i, "market"), "ticker": t}) for i, t in enumerate(tickers)]
    wait_until(lambda: all(alert_status(ctx, a) == "filled" for a in ids), timeout=90)

    def exits_match(ticker: str, want: int) -> bool:
        state = sim.state()
        held = [p for p in state["positions"] if p["symbol"] == ticker]
        position = sum(p["position"] for p in held)
        con_ids = {p["conId"] for p in held}
        per_role: Counter = Counter()
        for o in state["orders"]:
            if (
                o["clientId"] == CLIENT
                and o["status"] in ("Submitted", "PreSubmitted")
                and o["conId"] in con_ids
            ):
                per_role[o["orderRef"].rsplit(":", 1)[1].rstrip("0123456789")] += o["remaining"]
        return position == want and per_role["tp"] == want and per_role["sl"] == want

    for i, (alert_id, ticker) in enumerate(zip(ids, tickers, strict=True)):
        wait_until(lambda: exits_match(ticker, 1 + i), timeout=30)  # noqa: B023 - waited on at once
        assert _legs_at_ib(sim, alert_id) == Counter(entry=1, tp=1, sl=1)  # never a second order


def test_a_storm_that_outlasts_the_retries_refuses_the_alert_with_ib_pacing(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    sim.fault("pacing", seconds=120, clientId=CLIENT)
    alert_id = add_alert(ctx, _bracket(0))
    wait_until(lambda: alert_status(ctx, alert_id) == "rejected", timeout=90)
    reason = get_alert(ctx.sessions, alert_id)["reason"]
    assert reason.startswith("IB pacing: Max rate of messages per second has been exceeded"), reason
    assert "not sent again" in reason
    assert _legs_at_ib(sim, alert_id) == Counter()  # nothing at IB
    sim.fault("pacing", count=0, seconds=0)
    after = add_alert(ctx, _bracket(1))
    wait_until(lambda: alert_status(ctx, after) == "submitted", timeout=30)
    wait_until(lambda: _legs_at_ib(sim, after) == Counter(entry=1, tp=1, sl=1))
