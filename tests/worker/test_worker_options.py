"""Options traded from an alert on the underlying, and by an option ticker: the real worker (in a
thread) against ibsim's option chains over TCP, with the real ib_async client."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from core.services import get_alert

pytestmark = pytest.mark.e2e

AAPL = 190.0
CALLS = {"ticker": "AAPL", "optionType": "call", "expiration": "+30 days"}
ENDED = {"filled", "cancelled", "rejected", "failed"}


@pytest.fixture
def eager_worker(worker_env):
    """A worker whose option entries are limits at the far side of the quote (OPTION_ENTRY_TICKS
    100, capped there): marketable at once, so the tests' entries fill."""
    handle = WorkerThread({**worker_env, "OPTION_ENTRY_TICKS": "100"}).start()
    yield handle
    handle.stop()


def _ended(ctx, alert_id: str, timeout: float = 20) -> dict:
    wait_until(lambda: alert_status(ctx, alert_id) in ENDED, timeout=timeout)
    return get_alert(ctx.sessions, alert_id)


def _filled(ctx, alert_id: str) -> dict:
    doc = _ended(ctx, alert_id)
    assert doc["status"] == "filled", (doc["status"], doc["reason"])
    return doc


def _legs(sim, alert_id: str) -> dict[str, dict]:
    return {o["orderRef"].rsplit(":", 1)[1]: o for o in sim.state()["orders"] if alert_id in o["orderRef"]}


def _option_positions(sim) -> dict[int, float]:
    return {
        p["conId"]: p["position"]
        for p in sim.state()["positions"]
        if p.get("secType") == "OPT" and p["position"]
    }


def _working_exits(sim, con_id: int) -> dict[str, float]:
    """The working take-profit and stop-loss quantities on ``con_id`` (the guard's, by leg name)."""
    exits: dict[str, float] = {}
    for order in sim.state()["orders"]:
        if order["conId"] == con_id and order["status"] in ("Submitted", "PreSubmitted"):
            leg = order["orderRef"].rsplit(":", 1)[1]
            exits[leg] = exits.get(leg, 0) + order["quantity"] - order.get("filled", 0)
    return exits


def _first_friday_on_or_after(day: date) -> date:
    return day + timedelta(days=(4 - day.weekday()) % 7)


def test_buy_with_call_buys_the_chosen_call_at_a_marketable_limit_with_exits_on_the_premium(
    sim, eager_worker
):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    alert = {**CALLS, "action": "buy", "quantity": 2, "intrinsicValue": "otm", "strikesAway": 2,
             "price": 190.0, "takeProfit": {"percent": 50}, "stopLoss": {"percent": 30}}  # fmt: skip
    doc = _filled(ctx, add_alert(ctx, alert))
    option = doc["plan"]["option"]
    choice = option["choice"]
    # the money at 190 (strikes 2.50 apart near it), two strikes out of the money for a call: 195
    picked = (choice["atmStrike"], choice["strike"], choice["right"], choice["side"])
    assert picked == ("190", "195", "C", "BUY")
    assert date.fromisoformat(choice["expiry"]) >= datetime.now(UTC).date() + timedelta(days=29)
    assert "AAPL at 190.00" in option["why"] and "buy calls to open" in option["why"]
    legs = _legs(sim, doc["id"])
    entry, tp, sl = legs["entry"], legs["tp"], legs["sl"]
    assert entry["secType"] == "OPT" and entry["strike"] == 195 and entry["right"] == "C"
    assert (entry["action"], entry["quantity"], entry["orderType"]) == ("BUY", 2, "LMT")
    limit = Decimal(str(entry["lmtPrice"]))
    assert Decimal(option["entry"]["limit"]) == limit and "mid" in option["entry"]["why"]
    # exits on the premium: 50 % above and 30 % below the entry, on the option's grid (a tick 0.05 at most)
    assert abs(Decimal(str(tp["lmtPrice"])) - limit * Decimal("1.5")) <= Decimal("0.05")
    assert abs(Decimal(str(sl["auxPrice"])) - limit * Decimal("0.7")) <= Decimal("0.05")
    assert (tp["action"], sl["action"], tp["quantity"], sl["quantity"]) == ("SELL", "SELL", 2, 2)
    con_id = entry["conId"]
    assert _option_positions(sim) == {con_id: 2}

    # a partial sell with optionType call meets the calls held: the exits shrink with the position
    part = _filled(ctx, add_alert(ctx, {**CALLS, "action": "sell", "quantity": 1}))
    assert _legs(sim, part["id"])["close"]["conId"] == con_id
    assert _option_positions(sim) == {con_id: 1}
    wait_until(lambda: _working_exits(sim, con_id) == {"tp": 1, "sl": 1}, timeout=10)

    # exit closes the option held and its exits go
    closed = _filled(ctx, add_alert(ctx, {**CALLS, "action": "exit"}))
    assert closed["plan"]["option"]["held"]["conId"] == con_id
    assert _option_positions(sim) == {}
    wait_until(lambda: _working_exits(sim, con_id) == {}, timeout=10)


def test_buy_with_put_sells_puts_and_sell_closes_them(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    puts = {
        "ticker": "AAPL",
        "optionType": "put",
        "expiration": "+14 days",
        "intrinsicValue": "otm",
        "strikesAway": 1,
    }
    opened = _filled(ctx, add_alert(ctx, {**puts, "action": "buy", "quantity": 1}))
    entry = _legs(sim, opened["id"])["entry"]
    # bullish on a put strategy: SELL a put below the money (187.50), priced at least at the bid
    assert (entry["action"], entry["right"], entry["strike"], entry["orderType"]) == (
        "SELL",
        "P",
        187.5,
        "LMT",
    )
    assert opened["plan"]["option"]["choice"]["side"] == "SELL"
    assert opened["plan"]["margin"] is not None  # a short option went through IB's what-if
    assert _option_positions(sim) == {entry["conId"]: -1}
    closed = _filled(ctx, add_alert(ctx, {**puts, "action": "sell"}))
    close = _legs(sim, closed["id"])["close"]
    assert (close["action"], close["conId"]) == ("BUY", entry["conId"])
    assert _option_positions(sim) == {}


def test_a_delta_target_picks_the_strike_by_ibs_model_greeks(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    alert = {"ticker": "AAPL", "optionType": "call", "delta": 0.3, "dteMin": 20, "dteMax": 60,
             "action": "buy", "quantity": 1}  # fmt: skip
    choice = _filled(ctx, add_alert(ctx, alert))["plan"]["option"]["choice"]
    assert choice["rule"] == "delta" and Decimal(choice["strike"]) > 190
    assert abs(Decimal(choice["delta"]) - Decimal("0.3")) < Decimal("0.1")
    assert 20 <= choice["daysToExpiry"] <= 60


def test_an_occ_ticker_trades_exactly_that_contract(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    expiry = _first_friday_on_or_after(datetime.now(UTC).date() + timedelta(days=10))
    ticker = f"AAPL{expiry:%y%m%d}C00195000"
    doc = _filled(ctx, add_alert(ctx, {"ticker": ticker, "action": "buy", "quantity": 3}))
    entry = _legs(sim, doc["id"])["entry"]
    assert (entry["strike"], entry["right"], entry["action"], entry["quantity"], entry["orderType"]) == (
        195, "C", "BUY", 3, "LMT",
    )  # fmt: skip
    assert entry["expiry"] == f"{expiry:%Y%m%d}"


def test_refusals_a_trader_can_act_on(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    nothing = _ended(ctx, add_alert(ctx, {**CALLS, "action": "exit"}))
    assert (nothing["status"], nothing["reason"]) == ("cancelled", "exit: no open option position on AAPL")

    sim.set_options(spread=3.0)  # a quote 3 dollars wide
    wide = _ended(ctx, add_alert(ctx, {**CALLS, "action": "buy", "quantity": 1}))
    assert wide["status"] == "rejected" and "the spread of" in wide["reason"] and "too wide" in wide["reason"]
    sim.set_options(spread=0.04)

    chart = _ended(
        ctx, add_alert(ctx, {**CALLS, "action": "buy", "quantity": 1, "stopLoss": {"stopPrice": 185}})
    )
    assert chart["status"] == "rejected" and "measured on its premium" in chart["reason"]


def test_a_call_to_put_reversal_closes_the_calls_first_and_ends_with_only_puts(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    both = {**CALLS, "optionType": "both", "intrinsicValue": "otm", "strikesAway": 1}
    calls = _filled(ctx, add_alert(ctx, {**both, "action": "buy", "quantity": 2,
                                         "takeProfit": {"percent": 40}, "stopLoss": {"percent": 25}}))  # fmt: skip
    call_id = _legs(sim, calls["id"])["entry"]["conId"]
    assert _option_positions(sim) == {call_id: 2}
    puts = _filled(ctx, add_alert(ctx, {**both, "action": "sell", "quantity": 1}))
    closed = puts["plan"]["option"]["closed_first"]
    child = get_alert(ctx.sessions, closed["alert"])
    # the calls were closed by an exit alert of their own, before the puts were chosen
    assert child["status"] == "filled" and child["parent_id"] == puts["id"]
    assert _legs(sim, child["id"])["exit"]["conId"] == call_id
    entry = _legs(sim, puts["id"])["entry"]
    assert (entry["right"], entry["action"], entry["strike"]) == ("P", "BUY", 187.5)
    assert _option_positions(sim) == {entry["conId"]: 1}  # only puts
    wait_until(lambda: _working_exits(sim, call_id) == {}, timeout=10)  # the calls' exits went with them


def test_sell_with_put_buys_a_put_and_exit_sells_it(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    puts = {
        "ticker": "AAPL",
        "optionType": "put",
        "expiration": "+30 days",
        "intrinsicValue": "otm",
        "strikesAway": 1,
    }
    bought = _filled(ctx, add_alert(ctx, {**puts, "action": "sell", "quantity": 1}))
    entry = _legs(sim, bought["id"])["entry"]
    assert (entry["action"], entry["right"]) == ("BUY", "P")
    assert _option_positions(sim) == {entry["conId"]: 1}
    sold = _filled(ctx, add_alert(ctx, {"ticker": "AAPL", "optionType": "put", "action": "exit"}))
    assert _legs(sim, sold["id"])["exit"]["action"] == "SELL"
    assert _option_positions(sim) == {}


def test_traderspost_ticker_form_trades_that_very_contract(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    expiry = _first_friday_on_or_after(datetime.now(UTC).date() + timedelta(days=10))
    doc = _filled(
        ctx, add_alert(ctx, {"ticker": f"AAPL {expiry:%y%m%d}P187.5", "action": "buy", "quantity": 1})
    )
    entry = _legs(sim, doc["id"])["entry"]
    assert (entry["strike"], entry["right"], entry["expiry"]) == (187.5, "P", f"{expiry:%Y%m%d}")


def test_an_entry_rests_at_the_mid_plus_one_tick_until_the_quote_comes_to_it(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", AAPL)
    sim.set_options(spread=0.30)  # 0.30 wide: the mid plus one tick (0.05 above 3.00) is below the ask
    alert_id = add_alert(ctx, {**CALLS, "action": "buy", "quantity": 1, "strikePrice": 190})
    wait_until(lambda: alert_status(ctx, alert_id) == "submitted", timeout=20)
    entry = _legs(sim, alert_id)["entry"]
    why = get_alert(ctx.sessions, alert_id)["plan"]["option"]["entry"]["why"]
    assert "plus 1 tick" in why and entry["orderType"] == "LMT"
    assert _option_positions(sim) == {}
    sim.set_price("AAPL", AAPL - 3)  # the call gets cheaper: its ask comes down to the limit
    wait_until(lambda: alert_status(ctx, alert_id) == "filled", timeout=20)
    assert _option_positions(sim) == {entry["conId"]: 1}
    sim.set_options(spread=0.04)


def test_a_dollar_amount_buys_as_many_contracts_as_the_premium_times_100_allows(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    alert = {**CALLS, "action": "buy", "quantity": 2000, "quantityType": "dollar_amount", "strikePrice": 190}
    doc = _filled(ctx, add_alert(ctx, alert))
    entry = _legs(sim, doc["id"])["entry"]
    premium = Decimal(str(entry["lmtPrice"]))
    # whole contracts of premium x 100 within 2,000 dollars (the option's multiplier, from IB)
    assert entry["quantity"] == int(Decimal(2000) / (premium * 100)) >= 1
    assert "× 100" in doc["plan"]["sizing"]["text"]


def test_a_test_alert_chooses_the_option_and_sends_nothing(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    doc = _ended(
        ctx, add_alert(ctx, {**CALLS, "action": "buy", "quantity": 1, "strikePrice": 195, "test": True})
    )
    assert doc["status"] == "cancelled" and doc["reason"].startswith("test: would send BUY 1 ")
    assert doc["plan"]["option"]["contract"].endswith("call 195")
    assert not _legs(sim, doc["id"]) and _option_positions(sim) == {}


def test_position_size_is_the_strategys_side_and_contracts(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    puts = {"ticker": "AAPL", "optionType": "put", "expiration": "+30 days", "strikePrice": 185}
    # bullish 2 on a put strategy: short 2 puts
    opened = _filled(ctx, add_alert(ctx, {**puts, "action": "buy", "positionSize": 2}))
    con_id = _legs(sim, opened["id"])["entry"]["conId"]
    assert _option_positions(sim) == {con_id: -2}
    # bullish 3: one more put sold, on the same contract
    more = _filled(ctx, add_alert(ctx, {**puts, "action": "buy", "positionSize": 3}))
    assert _legs(sim, more["id"])["entry"]["conId"] == con_id
    assert _option_positions(sim) == {con_id: -3}
    # flat: bought back
    _filled(ctx, add_alert(ctx, {**puts, "action": "sell", "positionSize": 0}))
    assert _option_positions(sim) == {}


def test_an_exit_closes_every_option_held_on_the_underlying(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    expiry = _first_friday_on_or_after(datetime.now(UTC).date() + timedelta(days=10))
    for ticker in (f"AAPL{expiry:%y%m%d}C00195000", f"AAPL{expiry:%y%m%d}P00185000"):
        _filled(ctx, add_alert(ctx, {"ticker": ticker, "action": "buy", "quantity": 1}))
    assert len(_option_positions(sim)) == 2
    doc = _ended(ctx, add_alert(ctx, {"ticker": "AAPL", "optionType": "call", "action": "exit"}))
    assert doc["status"] == "cancelled" and doc["reason"].startswith("exit: closed long 1 AAPL")
    children = doc["children"]
    assert len(children) == 2 and {c["status"] for c in children} == {"filled"}
    assert _option_positions(sim) == {}


def test_an_occ_ticker_with_position_size_goes_to_that_target(sim, eager_worker):
    ctx = eager_worker.ctx
    sim.set_price("AAPL", AAPL)
    expiry = _first_friday_on_or_after(datetime.now(UTC).date() + timedelta(days=10))
    ticker = f"AAPL{expiry:%y%m%d}C00190000"
    opened = _filled(ctx, add_alert(ctx, {"ticker": ticker, "action": "buy", "positionSize": 2}))
    entry = _legs(sim, opened["id"])["entry"]
    assert (entry["action"], entry["quantity"], entry["orderType"]) == ("BUY", 2, "LMT")
    _filled(ctx, add_alert(ctx, {"ticker": ticker, "action": "sell", "positionSize": 0}))
    assert _option_positions(sim) == {}
