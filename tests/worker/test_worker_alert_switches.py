"""TradersPost's ``test`` and ``ignoreTradingWindows`` through a real worker thread and ibsim: what
reaches IB (ibsim's state), the alert's final state and reason, the plan it stores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from support import wait_until
from worker_helpers import WorkerThread, alert_ends

from app.webhook.schema import normalise
from core.services import get_alert

SATURDAY = datetime(2026, 12, 12, 15, 0, tzinfo=UTC)  # New York is closed: no session at all
RISK = """\
defaults:
  trading_hours: regular
strategies:
  night:
    allow_ignore_trading_windows: true
  day: {}
"""


@contextmanager
def running(worker_env: dict[str, str], tmp_path: Path, risk: str | None = None) -> Iterator[WorkerThread]:
    env = dict(worker_env)
    if risk is not None:
        (tmp_path / "risk.yaml").write_text(risk)
        env["RISK_FILE"] = str(tmp_path / "risk.yaml")
    handle = WorkerThread(env).start()
    try:
        yield handle
    finally:
        handle.stop()


def test_a_test_alert_is_decided_recorded_and_nothing_reaches_ib(sim, worker_env, tmp_path):
    """TradersPost's own example (``test: true``): the whole decision is made and stored, its reason
    says what would have been sent, and ibsim sees no order; nor do a test exit, cancel or reversal."""
    with running(worker_env, tmp_path) as handle:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        example = {"ticker": "AAPL", "action": "buy", "sentiment": "long", "price": 191.25, "quantity": 10,
                   "quantityType": "fixed_quantity", "orderType": "market", "time": "2025-06-18T14:30:00Z",
                   "test": True, "takeProfit": {"percent": 10}, "stopLoss": {"type": "stop", "percent": 5},
                   "extras": {"strategy": "EMA_Crossover", "comment": "Breakout entry"}}  # fmt: skip
        payload, errors = normalise(example)  # as the webhook stores it ("long" is "bullish")
        assert errors == {} and payload is not None and payload.test
        tested = alert_ends(ctx, payload.to_json(), "cancelled")
        alert = get_alert(ctx.sessions, tested)
        assert alert["reason"] == "test: would send BUY 10 AAPL MKT + TP 210.38 + SL 181.69"
        assert [leg["leg"] for leg in alert["plan"]["legs"]] == ["entry", "tp", "sl"]
        assert alert["plan"]["position"]["target"] == "10"
        assert sim.state()["orders"] == [] and sim.state()["executions"] == []

        # a position bought by hand: a test reversal and a test exit leave it alone
        sim.trade(10, symbol="AAPL", price=190.0)
        wait_until(lambda: handle.worker.trading.position_of(265598) == 10)
        flip = alert_ends(
            ctx, {"ticker": "AAPL", "action": "sell", "quantity": 20, "test": True}, "cancelled"
        )
        assert get_alert(ctx.sessions, flip)["reason"] == (
            "test: would send SELL 10 AAPL MKT (close) + SELL 10 AAPL MKT"
        )
        out = alert_ends(ctx, {"ticker": "AAPL", "action": "exit", "test": True}, "cancelled")
        assert get_alert(ctx.sessions, out)["reason"] == "test: would send SELL 10 AAPL MKT (exit)"
        cancel = alert_ends(ctx, {"ticker": "AAPL", "action": "cancel", "test": True}, "cancelled")
        assert get_alert(ctx.sessions, cancel)["reason"] == (
            "test: would cancel tv2ib's working entry orders for AAPL"
        )
        # what the decision refuses is refused, and says it was a test
        more = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 5, "test": True}, "rejected")
        assert get_alert(ctx.sessions, more)["reason"] == (
            "test: would be refused: already long 10: send add or positionSize to grow a position"
        )
        state = sim.state()
        assert state["orders"] == [] and state["executions"] == []
        assert [p["position"] for p in state["positions"] if p["symbol"] == "AAPL"] == [10]


def test_ignore_trading_windows_trades_only_where_the_risk_file_allows_it(sim, worker_env, tmp_path):
    with running(worker_env, tmp_path, RISK) as handle:
        handle.worker.risk.clock = lambda: SATURDAY
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        alert = {"ticker": "AAPL", "action": "buy", "quantity": 3, "price": 190, "ignoreTradingWindows": True}

        refused = alert_ends(ctx, {**alert, "strategy": "day"}, "rejected")
        assert get_alert(ctx.sessions, refused)["reason"] == (
            "risk: trading_hours regular (defaults): the alert's ignoreTradingWindows: true is not allowed: the "
            "risk file does not set allow_ignore_trading_windows: true (set it in the strategy's section or in "
            "defaults to let its alerts skip trading_hours)"
        )
        closed = alert_ends(ctx, {**alert, "strategy": "night", "ignoreTradingWindows": False}, "rejected")
        assert "AAPL is closed now (XNYS: weekend" in get_alert(ctx.sessions, closed)["reason"]
        assert sim.state()["orders"] == []

        allowed = alert_ends(ctx, {**alert, "strategy": "night"}, "filled", timeout=30)
        checks = get_alert(ctx.sessions, allowed)["plan"]["risk"]["checks"]
        (hours,) = [c for c in checks if c["rule"] == "trading_hours"]
        assert hours["passed"] is True and hours["value"] == "closed"
        assert hours["message"] == (
            'not applied: the alert\'s ignoreTradingWindows, allowed by allow_ignore_trading_windows (strategy "night")'
        )
        assert [o["orderRef"].rsplit(":", 1)[1] for o in sim.state()["orders"]] == ["entry"]
