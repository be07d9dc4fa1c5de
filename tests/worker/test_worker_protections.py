"""The protections of the risk file through a real worker on ibsim (issue 21, "Protections"): each
one locks, refuses with its reason, says so in a notice, unlocks when its time is up (the gate's
clock is the test's: time passes without waiting), and a lock survives a restart of the worker.

A stop-out is a real one: a bracket's stop-loss that ibsim fills when its price falls through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from support import wait_until
from worker_helpers import WorkerThread, alert_ends

from core.models import Control, Notice
from core.services import get_alert
from worker.risk.calendar import next_trading_day
from worker.risk.state import day_bounds, trading_day

RISK = """\
defaults:
  max_order_notional: 1,000,000
strategies:
  cool:
    stop_out_cooldown_minutes: 30
  guard:
    stop_loss_guard: {stop_outs: 2, within_minutes: 60, lock_minutes: 45, lock: strategy}
  dd:
    drawdown_pause: {max_drawdown: 300, within_minutes: 1440, pause_minutes: 120}
  target:
    daily_profit_target: 250
"""


@contextmanager
def running(env: dict[str, str], path: Path, now: list[datetime]) -> Iterator[WorkerThread]:
    """A worker on ``path`` as its risk file whose risk gate reads ``now[0]`` as the time."""
    handle = WorkerThread({**env, "RISK_FILE": str(path)})
    handle.worker.risk.clock = lambda: now[0]
    handle.worker.housekeeping.interval = 0.2  # the locks are said within a fifth of a second
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def risk_file(tmp_path: Path) -> Path:
    path = tmp_path / "risk.yaml"
    path.write_text(RISK)
    return path


def position(sim, symbol: str) -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == symbol)


def notices(handle: WorkerThread, state: str) -> list[str]:
    with handle.ctx.sessions() as session:
        texts = session.scalars(select(Notice.text).where(Notice.kind == "protection").order_by(Notice.id))
        return [t for t in texts if ("Entries locked" if state == "locked" else "Entries unlocked") in t]


def stopped_out(sim, handle: WorkerThread, strategy: str, symbol: str, price: float) -> None:
    """A bracket bought at ``price`` whose stop-loss (1% below) ibsim fills: a stop-out."""
    sim.set_price(symbol, price)
    alert_ends(handle.ctx, {"ticker": symbol, "action": "buy", "quantity": 10, "strategy": strategy,
                            "stopLoss": {"stopPrice": round(price * 0.99, 2)}}, "filled")  # fmt: skip
    sim.set_price(symbol, round(price * 0.98, 2))
    wait_until(lambda: position(sim, symbol) == 0, timeout=20)


def refused(handle: WorkerThread, payload: dict) -> str:
    alert_id = alert_ends(handle.ctx, {"action": "buy", "quantity": 1, **payload}, "rejected")
    return get_alert(handle.ctx.sessions, alert_id)["reason"]


def test_a_stop_out_cools_its_ticker_down_and_the_lock_survives_a_restart(sim, worker_env, tmp_path):
    now = [datetime.now(UTC)]
    path = risk_file(tmp_path)
    with running(worker_env, path, now) as handle:
        stopped_out(sim, handle, "cool", "AAPL", 190.0)
        wait_until(lambda: notices(handle, "locked") != [], timeout=10)
        reason = refused(handle, {"ticker": "AAPL", "strategy": "Cool"})  # the strategy, case aside
        assert reason.startswith(
            'risk: cooldown 30 min after a stop-out (strategy "cool"): AAPL stopped out at '
        ), reason
        assert ", no new entry on AAPL until " in reason and reason.endswith(" America/New_York"), reason
        text = notices(handle, "locked")[0]
        assert "AAPL" in text and "cool" in text and "no new entry on AAPL until" in text, text
        # another ticker of the strategy, another strategy on the ticker: not locked
        alert_ends(
            handle.ctx, {"ticker": "MSFT", "action": "buy", "quantity": 1, "strategy": "cool"}, "filled"
        )
        alert_ends(
            handle.ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "strategy": "target"}, "filled"
        )
        # an exit is never blocked: the ticker's position (bought by the other strategy) is closed
        alert_ends(handle.ctx, {"ticker": "AAPL", "action": "exit", "strategy": "cool"}, "filled")
        assert position(sim, "AAPL") == 0
    with running(worker_env, path, now) as handle:  # a restart keeps the lock and says it no twice
        assert refused(handle, {"ticker": "AAPL", "strategy": "cool"}) == reason
        now[0] = datetime.now(UTC) + timedelta(minutes=31)  # the cooldown is over
        wait_until(lambda: notices(handle, "unlocked") != [], timeout=10)
        assert len(notices(handle, "locked")) == 1
        assert "its time is up" in notices(handle, "unlocked")[0]
        alert_ends(
            handle.ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "strategy": "cool"}, "filled"
        )


def test_two_stop_outs_within_the_window_lock_the_whole_strategy_until_the_guard_lets_go(
    sim, worker_env, tmp_path
):
    now = [datetime.now(UTC)]
    with running(worker_env, risk_file(tmp_path), now) as handle:
        stopped_out(sim, handle, "guard", "AAPL", 190.0)
        alert_ends(
            handle.ctx, {"ticker": "TSLA", "action": "buy", "quantity": 1, "strategy": "guard"}, "filled"
        )
        stopped_out(sim, handle, "guard", "MSFT", 420.0)
        wait_until(lambda: notices(handle, "locked") != [], timeout=10)
        reason = refused(handle, {"ticker": "SPY", "strategy": "guard"})  # any ticker of the strategy
        assert reason.startswith('risk: stop_loss_guard 2 stop-outs within 60 min (strategy "guard"): 2 stop-outs '
                                 "(AAPL, MSFT) from "), reason  # fmt: skip
        assert ', no new entry for strategy "guard" until ' in reason, reason
        alert_ends(
            handle.ctx, {"ticker": "TSLA", "action": "exit", "strategy": "guard"}, "filled"
        )  # exits go
        now[0] = datetime.now(UTC) + timedelta(minutes=46)
        wait_until(lambda: notices(handle, "unlocked") != [], timeout=10)
        alert_ends(
            handle.ctx, {"ticker": "SPY", "action": "buy", "quantity": 1, "strategy": "guard"}, "filled"
        )


def _round_trip(sim, handle: WorkerThread, strategy: str, bought: float, sold: float) -> None:
    """Buy 10 AAPL at ``bought``, sell them at ``sold`` (IB's realized PnL is on the sell)."""
    sim.set_price("AAPL", bought)
    alert_ends(
        handle.ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "strategy": strategy}, "filled"
    )
    sim.set_price("AAPL", sold)
    alert_ends(handle.ctx, {"ticker": "AAPL", "action": "exit", "strategy": strategy}, "filled")


def _locks(handle: WorkerThread) -> str:
    """What the dashboard reads: the announced locks of the account."""
    with handle.ctx.sessions() as session:
        rows = session.scalars(select(Control.value).where(Control.key.startswith("risk:locks:")))
        return " ".join(rows)


def test_a_drawdown_pauses_the_strategy_and_a_reached_target_locks_it_until_the_next_trading_day(
    sim, worker_env, tmp_path
):
    now = [datetime.now(UTC)]
    with running(worker_env, risk_file(tmp_path), now) as handle:
        _round_trip(sim, handle, "dd", 190.0, 150.0)  # -400 realized (and commissions)
        _round_trip(sim, handle, "target", 150.0, 180.0)  # +300 realized
        wait_until(lambda: len(notices(handle, "locked")) == 2, timeout=10)
        assert "drawdown_pause" in _locks(handle) and "daily_profit_target" in _locks(handle)
        reason = refused(handle, {"ticker": "MSFT", "strategy": "dd"})
        assert reason.startswith('risk: drawdown_pause 300 USD within 1,440 min (strategy "dd"): the realized PnL '
                                 "fell to -40"), reason  # fmt: skip
        assert ', no new entry for strategy "dd" until ' in reason, reason
        reason = refused(handle, {"ticker": "TSLA", "strategy": "target"})
        assert reason.startswith('risk: daily_profit_target 250 USD (strategy "target"): the realized PnL of the '
                                 f"trading day {trading_day(now[0]).isoformat()} reached +29"), reason  # fmt: skip
        assert reason.endswith(" America/New_York (the next trading day)"), reason

        now[0] = datetime.now(UTC) + timedelta(minutes=121)  # the pause is over, the day is not
        wait_until(lambda: len(notices(handle, "unlocked")) == 1, timeout=10)
        alert_ends(handle.ctx, {"ticker": "MSFT", "action": "buy", "quantity": 1, "strategy": "dd"}, "filled")
        if now[0] < day_bounds(trading_day(datetime.now(UTC)))[1]:  # still the same trading day
            assert refused(handle, {"ticker": "TSLA", "strategy": "target"}).startswith(
                "risk: daily_profit_target"
            )

        next_day = next_trading_day(trading_day(datetime.now(UTC)))
        now[0] = day_bounds(next_day)[0] + timedelta(minutes=1)  # the next trading day has begun
        wait_until(lambda: len(notices(handle, "unlocked")) == 2, timeout=10)
        assert _locks(handle) == "[]"
        alert_ends(
            handle.ctx, {"ticker": "TSLA", "action": "buy", "quantity": 1, "strategy": "target"}, "filled"
        )
