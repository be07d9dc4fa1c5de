"""Alerts run back to back decide on the position the previous alert's fill made, even when IB's
position report trails the fill (TWS sends it a moment later; ibsim's ``position_delay`` fault
widens that moment). Without waiting for the report, a ``positionSize`` burst overshoots: the
second alert sees the old position and buys again."""

from __future__ import annotations

from support import wait_until
from worker_helpers import add_alert, alert_status

from core.services import get_alert


def _position(sim, symbol: str = "AAPL") -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == symbol)


def test_back_to_back_targets_wait_for_the_position_report_of_the_previous_fill(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    sim.fault("position_delay", ms=400)
    ids = [add_alert(ctx, {"ticker": "AAPL", "action": "buy", "positionSize": size, "price": 190})
           for size in (1, 2, 3)]  # fmt: skip
    wait_until(lambda: all(alert_status(ctx, a) == "filled" for a in ids), timeout=20,
               what=lambda: [(a, get_alert(ctx.sessions, a)["reason"]) for a in ids])  # fmt: skip
    sim.fault("position_delay", ms=0)
    assert _position(sim) == 3
    bought = [sum(e["shares"] for e in sim.state()["executions"] if e["orderRef"] == f"tv2ib:{a}:entry")
              for a in ids]  # fmt: skip
    assert bought == [1, 1, 1]
    # each decision names the position it started from: 0, then 1, then 2
    befores = [get_alert(ctx.sessions, a)["plan"]["position"]["before"] for a in ids]
    assert befores == ["0", "1", "2"]


def test_a_flatten_right_after_a_fill_closes_what_the_fill_made(sim, running_worker):
    """The kill switch sizes its closing orders on the position a decision reads (IB's report plus
    our executions since), not on a report that trails the fill: with the report a second late, a
    flatten sent as the entry fills closed nothing and left the position open."""
    from core.services import request_flatten

    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    sim.fault("position_delay", ms=1000)
    alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 5, "price": 190})
    wait_until(lambda: alert_status(ctx, alert_id) == "filled", timeout=10)
    request_flatten(ctx.redis, None, by="test")
    closes = lambda: [e for e in sim.state()["executions"] if e["orderRef"].startswith("tv2ib-flatten:")]  # noqa: E731
    wait_until(lambda: closes(), timeout=10)
    wait_until(lambda: _position(sim) == 0, timeout=10, what=lambda: sim.state()["positions"])
    assert sum(e["shares"] for e in closes()) == 5
