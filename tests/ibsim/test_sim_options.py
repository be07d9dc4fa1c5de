"""US equity options on ibsim, end to end with the real ib_async client over TCP: the chain
(reqSecDefOptParams), contract details of a partial option contract, quotes with model greeks,
fills at the quote, positions and what-if margins. The simulator's clock is fixed on a Monday so
the expiries are known."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from statistics import NormalDist
from zoneinfo import ZoneInfo

import httpx
import pytest
from ib_async import IB, LimitOrder, MarketOrder, Option, Stock
from ibsim_helpers import FakeClock, wait_for

from ibsim.testing import SimThread, run_in_thread

pytestmark = pytest.mark.e2e

#: Monday 2 June 2025, 10:00 in New York
MONDAY = dt.datetime(2025, 6, 2, 10, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
WEEKLIES = ["20250606", "20250613", "20250620", "20250627", "20250704", "20250711", "20250718", "20250725"]
MONTHLIES = ["20250620", "20250718", "20250815", "20250919", "20251017", "20251121", "20251219",
             "20260116", "20260220", "20260320", "20260417", "20260515"]  # fmt: skip


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    """This module's simulator: its clock stands still on a Monday morning."""
    with run_in_thread(port=0, control_port=0, clock=FakeClock(MONDAY)) as handle:
        yield handle


def black_scholes_call(und: float, strike: float, years: float, vol: float, rate: float) -> float:
    """The textbook formula, written here again to check ibsim's."""
    n = NormalDist().cdf
    d1 = (math.log(und / strike) + (rate + vol * vol / 2) * years) / (vol * math.sqrt(years))
    return und * n(d1) - strike * math.exp(-rate * years) * n(d1 - vol * math.sqrt(years))


def chain_of(ib: IB, symbol: str) -> list:
    (stock,) = ib.qualifyContracts(Stock(symbol, "SMART", "USD"))
    return ib.reqSecDefOptParams(symbol, "", "STK", stock.conId)


def option(ib: IB, symbol: str, expiry: str, strike: float, right: str) -> Option:
    (contract,) = ib.qualifyContracts(Option(symbol, expiry, strike, right, "SMART"))
    return contract


def test_chain_lists_weeklies_monthlies_and_strikes_around_the_price(ib: IB) -> None:
    chains = chain_of(ib, "SPY")
    assert [c.exchange for c in chains] == ["SMART", "CBOE"]
    smart = chains[0]
    assert (smart.underlyingConId, smart.tradingClass, smart.multiplier) == ("756733", "SPY", "100")
    # every Friday for 8 weeks (no holiday calendar: IB lists Thursday 3 July), 12 monthlies
    assert smart.expirations == sorted(set(WEEKLIES + MONTHLIES))
    # SPY at 500: 1-point strikes within 20 %, 5-point strikes out to 50 %
    strikes = smart.strikes
    assert [s for s in strikes if 400 <= s <= 600] == [float(s) for s in range(400, 601)]
    assert strikes[0] == 250.0 and strikes[-1] == 750.0
    assert [s for s in strikes if s < 400][:3] == [250.0, 255.0, 260.0]


def test_chain_follows_the_underlying_and_other_underlyings(fresh: SimThread, ib: IB) -> None:
    fresh.set_price("AAPL", 100.0)
    strikes = chain_of(ib, "AAPL")[0].strikes
    assert 100.0 in strikes and 97.5 in strikes and 190.0 not in strikes
    assert chain_of(ib, "TSLA")[0].tradingClass == "TSLA"
    assert chain_of(ib, "QQQ")[0].underlyingConId == "320227571"
    # futures and unknown underlyings have no chain here: the end alone
    assert ib.reqSecDefOptParams("NOPE", "", "STK", 0) == []


def test_partial_option_request_answers_every_strike(ib: IB) -> None:
    strikes = chain_of(ib, "AAPL")[0].strikes
    details = ib.reqContractDetails(Option("AAPL", "20250620", right="P", exchange="SMART"))
    assert sorted(d.contract.strike for d in details) == strikes
    one = next(d for d in details if d.contract.strike == 190.0)
    c = one.contract
    assert (c.secType, c.right, c.lastTradeDateOrContractMonth, c.multiplier) == (
        "OPT",
        "P",
        "20250620",
        "100",
    )
    assert (c.localSymbol, c.tradingClass, c.exchange) == ("AAPL  250620P00190000", "AAPL", "SMART")
    assert (one.underConId, one.minTick, one.lastTradeTime) == (265598, 0.01, "16:00")
    assert set(one.marketRuleIds.split(",")) == {"111"}
    (rule,) = {r for r in one.marketRuleIds.split(",")}
    increments = ib.reqMarketRule(int(rule))
    assert [(i.lowEdge, i.increment) for i in increments] == [(0.0, 0.01), (3.0, 0.05)]
    # the same contract by its conId, and by its OCC symbol
    assert option(ib, "AAPL", "20250620", 190.0, "P").conId == c.conId
    by_occ = ib.reqContractDetails(Option(localSymbol="AAPL  250620P00190000", exchange="SMART"))
    assert [d.contract.conId for d in by_occ] == [c.conId]
    # a month answers each of its expiries; a strike off the grid answers nothing
    june_calls = ib.reqContractDetails(Option("AAPL", "202506", 190.0, "C", "SMART"))
    assert sorted(d.contract.lastTradeDateOrContractMonth for d in june_calls) == [
        "20250606", "20250613", "20250620", "20250627",
    ]  # fmt: skip
    assert ib.reqContractDetails(Option("AAPL", "20250620", 191.0, "C", "SMART")) == []


def test_quote_carries_model_greeks_from_black_scholes(fresh: SimThread, ib: IB) -> None:
    call = option(ib, "AAPL", "20250718", 190.0, "C")
    (ticker,) = ib.reqTickers(call)
    model = ticker.modelGreeks
    assert model is not None
    assert model.impliedVol == pytest.approx(0.20) and model.undPrice == 190.0
    assert 0.5 < model.delta < 0.6  # at the money, a month and a half out
    # Black-Scholes at 20 %, 4 %, 46.25 days to the expiry's 16:00
    assert model.optPrice == pytest.approx(
        black_scholes_call(190.0, 190.0, 46.25 / 365, 0.20, 0.04), abs=1e-4
    )
    assert ticker.bid < model.optPrice < ticker.ask
    assert ticker.ask - ticker.bid <= 0.10  # a few cents: 0.5 % of the price, on the 0.05 grid
    assert ticker.bid % 0.05 == pytest.approx(0.0, abs=1e-9) or ticker.bid % 0.05 == pytest.approx(0.05)
    assert ticker.bidGreeks is not None and ticker.bidGreeks.impliedVol < 0.20 < ticker.askGreeks.impliedVol
    put = option(ib, "AAPL", "20250718", 180.0, "P")
    (put_ticker,) = ib.reqTickers(put)
    assert -0.3 < put_ticker.modelGreeks.delta < -0.1  # out of the money
    # a higher volatility for AAPL's options only, then a wider spread for every option
    fresh.set_options(volatility=0.4, symbol="AAPL")
    (again,) = ib.reqTickers(call)
    assert again.modelGreeks.impliedVol == pytest.approx(0.40) and again.modelGreeks.optPrice > 9
    fresh.set_options(spread_pct=10)
    (wide,) = ib.reqTickers(call)
    assert wide.ask - wide.bid >= 0.1 * wide.modelGreeks.optPrice - 0.05


def test_option_stream_follows_the_underlying(fresh: SimThread, ib: IB) -> None:
    call = option(ib, "SPY", "20250620", 500.0, "C")
    ticker = ib.reqMktData(call)
    wait_for(ib, lambda: ticker.modelGreeks is not None)
    before = ticker.modelGreeks.optPrice
    fresh.set_price("SPY", 510.0)
    wait_for(ib, lambda: ticker.modelGreeks.undPrice == 510.0)
    assert ticker.modelGreeks.optPrice > before + 5
    assert ticker.modelGreeks.delta > 0.6
    ib.cancelMktData(call)


def test_option_order_fills_at_the_quote_and_shows_as_an_option_position(fresh: SimThread, ib: IB) -> None:
    call = option(ib, "AAPL", "20250718", 195.0, "C")
    (ticker,) = ib.reqTickers(call)
    trade = ib.placeOrder(call, MarketOrder("BUY", 3, orderRef="opt:entry"))
    wait_for(
        ib,
        lambda: (
            trade.orderStatus.status == "Filled"
            and trade.fills
            and trade.fills[0].commissionReport.commission
        ),
    )
    fill = trade.fills[0]
    assert fill.execution.price == ticker.ask  # a buy pays the ask
    assert fill.commissionReport.commission == pytest.approx(3 * 0.65)
    wait_for(ib, lambda: any(p.contract.conId == call.conId for p in ib.positions()))
    (pos,) = [p for p in ib.positions() if p.contract.conId == call.conId]
    c = pos.contract
    assert (c.secType, c.right, c.strike, c.lastTradeDateOrContractMonth) == ("OPT", "C", 195.0, "20250718")
    assert (c.multiplier, c.localSymbol, pos.position) == ("100", "AAPL  250718C00195000", 3.0)
    assert pos.avgCost == pytest.approx(ticker.ask * 100)
    row = next(p for p in fresh.state()["positions"] if p["conId"] == call.conId)
    assert (row["right"], row["strike"], row["expiry"], row["secType"]) == ("C", 195.0, "20250718", "OPT")
    # a sell above the bid rests; the underlying's rise lifts the bid through it: filled at the limit
    limit = round(ticker.bid + 1.0, 2)
    close = ib.placeOrder(call, LimitOrder("SELL", 3, limit, orderRef="opt:tp"))
    wait_for(ib, lambda: close.orderStatus.status == "Submitted")
    fresh.set_price("AAPL", 195.0)
    wait_for(ib, lambda: close.orderStatus.status == "Filled")
    assert close.fills[0].execution.price == limit
    wait_for(ib, lambda: close.fills[0].commissionReport.realizedPNL)
    expected = (limit - ticker.ask) * 100 * 3 - 3 * 0.65  # less the closing commission (as for stocks)
    assert close.fills[0].commissionReport.realizedPNL == pytest.approx(expected, abs=0.01)


def test_what_if_margin_long_is_the_premium_short_is_reg_t(fresh: SimThread, ib: IB) -> None:
    put = option(ib, "SPY", "20250718", 480.0, "P")
    (ticker,) = ib.reqTickers(put)
    long = ib.whatIfOrder(put, LimitOrder("BUY", 2, ticker.ask))
    assert float(long.initMarginChange) == pytest.approx(ticker.ask * 100 * 2, abs=0.01)
    short = ib.whatIfOrder(put, LimitOrder("SELL", 2, ticker.bid))
    # premium + max(20 % of 500 less 20 out of the money, 10 % of the strike), a contract of 100
    expected = (ticker.bid + max(0.20 * 500 - 20, 0.10 * 480)) * 100 * 2
    assert float(short.initMarginChange) == pytest.approx(expected, abs=0.01)


def test_options_route_validates_and_reset_restores_the_model(fresh: SimThread) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{fresh.control_port}", timeout=5) as http:
        bad = http.post("/options", json={"volatility": 0})
        assert bad.status_code == 422 and "volatility" in bad.json()["message"]
        assert http.post("/options", json={"symbol": "ES", "volatility": 0.3}).status_code == 404
        ok = http.post("/options", json={"volatility": 0.25, "spread": 0.1}).json()
        assert (ok["volatility"], ok["spread"]) == (0.25, 0.1)
        assert http.get("/state").json()["options"]["volatility"] == 0.25
        http.post("/reset")
        assert http.get("/state").json()["options"]["volatility"] == 0.20
