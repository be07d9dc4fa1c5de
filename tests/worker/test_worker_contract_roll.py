"""Contracts through the real worker and ibsim: a mapped ticker with a quantity multiplier, the
continuous-futures roll, and a position held in the old month after the roll.

ibsim lists futures expiries relative to the real date; the worker's clock (``Trading.clock``)
is set to days around the front contract's roll date, so these tests hold on any date."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from core.services import get_alert
from worker.contracts.tickers import ContractSpec

ROLL_DAYS = 8  # FUTURES_ROLL_DAYS's default


def listed(sim, symbol: str) -> list:
    """ibsim's listed futures of ``symbol``, nearest expiry first."""
    return sorted(
        sim.call(lambda: [i for i in sim.sim.catalog if i.symbol == symbol and i.sec_type == "FUT"]),
        key=lambda i: i.last_trade_date,
    )


def chicago_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo("America/Chicago"))


def position_in(sim, local_symbol: str) -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["localSymbol"] == local_symbol)


def orders_of(sim, alert_id: str) -> list[dict]:
    return [o for o in sim.state()["orders"] if alert_id in o["orderRef"]]


@pytest.fixture
def mapped_worker(tmp_path, worker_env):
    path = tmp_path / "symbols.yaml"
    path.write_text("symbols:\n  NQ1!:\n    symbol: MNQ\n    quantity_multiplier: 10\n", encoding="utf-8")
    handle = WorkerThread({**worker_env, "SYMBOL_MAP_FILE": str(path)}).start()
    yield handle
    handle.stop()


def test_an_alert_on_nq_mapped_to_mnq_x10_gives_ib_ten_mnq(sim, mapped_worker):
    ctx = mapped_worker.ctx
    alert_id = add_alert(ctx, {"ticker": "CME_MINI:NQ1!", "action": "buy", "quantity": 1, "price": 17500})
    wait_until(lambda: alert_status(ctx, alert_id) == "filled")
    (order,) = orders_of(sim, alert_id)
    assert (order["symbol"], order["action"], order["quantity"]) == ("MNQ", "BUY", 10)
    plan = get_alert(ctx.sessions, alert_id)["plan"]
    assert plan["contract_map"]["ticker"] == "CME_MINI:NQ1!"
    assert plan["contract_map"]["traded"] == order["localSymbol"]
    assert plan["contract_map"]["quantity_multiplier"] == "10"
    assert plan["contract_map"]["roll"]["roll_days"] == ROLL_DAYS
    # the target in alert contracts: positionSize 0 closes the 10 MNQ
    flat = add_alert(ctx, {"ticker": "NQ1!", "action": "sell", "positionSize": 0, "price": 17500})
    wait_until(lambda: alert_status(ctx, flat) == "filled")
    assert [(o["action"], o["quantity"]) for o in orders_of(sim, flat)] == [("SELL", 10)]


def test_es1_rolls_and_an_exit_after_the_roll_closes_the_held_old_month(sim, running_worker):
    ctx, trading = running_worker.ctx, running_worker.worker.trading
    old, new = listed(sim, "ES")[:2]
    roll_date = datetime.strptime(old.last_trade_date, "%Y%m%d").date() - timedelta(days=ROLL_DAYS)

    # the day before the roll date: ES1! is the front contract
    trading.clock = lambda: chicago_noon(roll_date - timedelta(days=1))
    opened = add_alert(ctx, {"ticker": "ES1!", "action": "buy", "quantity": 2, "price": 5000})
    wait_until(lambda: alert_status(ctx, opened) == "filled")
    assert position_in(sim, old.local_symbol) == 2

    # the roll date (the cached front month does not outlive it): ES1! is the next contract, but
    # the strategy's position is still in the old one. Opening more is refused with the reason
    trading.clock = lambda: chicago_noon(roll_date)
    add = add_alert(ctx, {"ticker": "ES1!", "action": "add", "quantity": 1, "price": 5000})
    wait_until(lambda: alert_status(ctx, add) == "rejected")
    reason = get_alert(ctx.sessions, add)["reason"]
    held_in, opening = old.local_symbol, new.local_symbol
    assert reason == f"ES position of 2 is held in {held_in}; roll it or flatten before opening {opening}"
    assert orders_of(sim, add) == []

    # the exit closes the contract actually held, not the new front
    closed = add_alert(ctx, {"ticker": "ES1!", "action": "exit", "price": 5000})
    wait_until(lambda: alert_status(ctx, closed) == "filled")
    (order,) = orders_of(sim, closed)
    assert (order["localSymbol"], order["action"], order["quantity"]) == (old.local_symbol, "SELL", 2)
    assert position_in(sim, old.local_symbol) == 0 and position_in(sim, new.local_symbol) == 0
    held = get_alert(ctx.sessions, closed)["plan"]["contract_map"]["held_month"]
    assert (held["held"], held["front"]) == (old.local_symbol, new.local_symbol)

    # flat again: ES1! now opens in the next month
    reopened = add_alert(ctx, {"ticker": "ES1!", "action": "buy", "quantity": 1, "price": 5000})
    wait_until(lambda: alert_status(ctx, reopened) == "filled")
    assert position_in(sim, new.local_symbol) == 1
    roll = get_alert(ctx.sessions, reopened)["plan"]["contract_map"]["roll"]
    assert (roll["contract"], roll["rolled_from"], roll["rolled_on"]) == (
        new.local_symbol, old.local_symbol, roll_date.isoformat())  # fmt: skip


def test_an_expired_option_ticker_is_rejected_with_ibs_reason(sim, running_worker):
    ctx = running_worker.ctx
    alert_id = add_alert(ctx, {"ticker": "AAPL250117C00150000", "action": "buy", "quantity": 1})
    wait_until(lambda: alert_status(ctx, alert_id) == "rejected")
    assert get_alert(ctx.sessions, alert_id)["reason"] == (
        "IB has no unique contract for OPT AAPL 20250117 C 150 on SMART in USD: "
        "200 No security definition has been found for the request"
    )


def test_a_bad_symbol_map_stops_the_worker_at_start(tmp_path, worker_env):
    from config.settings import Settings
    from core.context import AppContext
    from worker.contracts.symbol_map import SymbolMapError
    from worker.runtime import Worker

    path = tmp_path / "symbols.yaml"
    path.write_text("symbols:\n  NQ1!:\n    quantity_multiplier: 0\n", encoding="utf-8")
    ctx = AppContext.build(Settings.from_mapping({**worker_env, "SYMBOL_MAP_FILE": str(path)}))
    try:
        with pytest.raises(SymbolMapError, match=f"SYMBOL_MAP_FILE {path} line 3: .*quantity_multiplier"):
            Worker(ctx)
    finally:
        ctx.close()


def test_the_cached_front_month_does_not_outlive_its_roll_date(sim, session):
    old, new = listed(sim, "ES")[:2]
    roll_date = datetime.strptime(old.last_trade_date, "%Y%m%d").date() - timedelta(days=ROLL_DAYS)
    spec = ContractSpec("FUT", "ES", "CME", front_index=1, roll_days=ROLL_DAYS)
    session.trading.clock = lambda: chicago_noon(roll_date - timedelta(days=1))
    assert session.call(session.instrument(spec))[1].local_symbol == old.local_symbol
    # 23:59 in Chicago the same day: still cached, still the old month
    session.trading.clock = lambda: (
        chicago_noon(roll_date - timedelta(days=1)) + timedelta(hours=11, minutes=59)
    )
    assert session.call(session.instrument(spec))[1].local_symbol == old.local_symbol
    # midnight at the exchange: the roll date, well within FRONT_MONTH_CACHE_SECONDS
    session.trading.clock = lambda: chicago_noon(roll_date) - timedelta(hours=12)
    assert session.call(session.instrument(spec))[1].local_symbol == new.local_symbol


def test_cancel_on_es1_after_the_roll_also_cancels_the_entry_resting_in_the_old_month(sim, running_worker):
    ctx, trading = running_worker.ctx, running_worker.worker.trading
    old, new = listed(sim, "ES")[:2]
    roll_date = datetime.strptime(old.last_trade_date, "%Y%m%d").date() - timedelta(days=ROLL_DAYS)
    trading.clock = lambda: chicago_noon(roll_date - timedelta(days=1))
    resting = add_alert(ctx, {"ticker": "ES1!", "action": "buy", "quantity": 1, "orderType": "limit",
                              "limitPrice": 100})  # fmt: skip
    wait_until(lambda: alert_status(ctx, resting) == "submitted")
    (entry,) = orders_of(sim, resting)
    assert entry["localSymbol"] == old.local_symbol

    trading.clock = lambda: chicago_noon(roll_date)  # ES1! is now the next month
    cancel = add_alert(ctx, {"ticker": "ES1!", "action": "cancel"})
    wait_until(lambda: alert_status(ctx, cancel) == "cancelled")
    assert get_alert(ctx.sessions, cancel)["plan"]["cancelled"] == [f"tv2ib:{resting}:entry"]
    wait_until(lambda: orders_of(sim, resting)[0]["status"] == "Cancelled")
