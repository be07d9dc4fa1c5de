"""End to end: the real ib_async client against ibsim over TCP."""

from __future__ import annotations

import ib_async
import pytest
from ib_async import (
    IB,
    Contract,
    Crypto,
    ExecutionFilter,
    Forex,
    Future,
    LimitOrder,
    MarketOrder,
    Order,
    Stock,
    StopOrder,
)
from ibsim_helpers import reconnected_after_a_fill, wait_for

from ibsim.testing import SimThread

pytestmark = pytest.mark.e2e


def aapl(ib: IB) -> Contract:
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    return contract


def test_connect_is_complete(fresh: SimThread, client_id: int, caplog: pytest.LogCaptureFixture) -> None:
    ib = IB()
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: errors.append(code)
    # raiseSyncErrors: a startup request left without its End message fails the connect
    ib.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=5, raiseSyncErrors=True)
    try:
        assert not [r for r in caplog.records if "timed out" in r.getMessage()]
        assert ib.client.serverVersion() == 157
        assert ib.managedAccounts() == ["DU1234567"]
        assert ib.reqCurrentTime().year >= 2024
        assert ib.client.getReqId() >= 1
        assert {2104, 2106, 2158} <= set(errors)
    finally:
        ib.disconnect()


def test_qualify_every_asset_class(ib: IB) -> None:
    front_es = next(i for i in ib.reqContractDetails(Future("ES", exchange="CME")))
    month = front_es.contract.lastTradeDateOrContractMonth[:6]
    contracts = [
        Stock("AAPL", "SMART", "USD"),
        Stock("MSFT", "SMART", "USD"),
        Stock("SPY", "SMART", "USD"),
        Stock("QQQ", "SMART", "USD"),
        Stock("TSLA", "SMART", "USD"),
        Stock("AMD", "SMART", "USD"),
        Stock("INTC", "SMART", "USD"),
        Future("ES", month, "CME"),
        Future("MNQ", month, "CME"),
        Forex("EURUSD"),
        Forex("USDJPY"),
        Crypto("BTC", "PAXOS", "USD"),
        Crypto("ETH", "PAXOS", "USD"),
    ]
    qualified = ib.qualifyContracts(*contracts)
    assert all(c is not None and c.conId for c in qualified)
    by_symbol = {c.localSymbol: c for c in qualified}
    assert by_symbol["AAPL"].conId == 265598 and by_symbol["AAPL"].primaryExchange == "NASDAQ"
    assert by_symbol["EUR.USD"].conId == 12087792
    es = qualified[7]
    assert (
        es.multiplier == "50"
        and es.localSymbol.startswith("ES")
        and len(es.lastTradeDateOrContractMonth) == 8
    )
    assert qualified[8].multiplier == "2"
    details = ib.reqContractDetails(Forex("USDJPY"))
    assert details[0].minTick == 0.005
    gc = ib.reqContractDetails(Future("GC", exchange="COMEX"))
    assert {d.contract.localSymbol[2] for d in gc} <= set("GJMQVZ") and gc[0].minTick == pytest.approx(0.1)
    cl = ib.reqContractDetails(Future("CL", exchange="NYMEX"))
    assert len(cl) == 6 and cl[0].contract.multiplier == "1000"
    assert ib.qualifyContracts(Stock("NOPE", "SMART", "USD")) == [None]


def test_bracket_partial_then_full_fill_then_stop_cancels_target(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    parent, tp, sl = ib.bracketOrder("BUY", 100, 189.0, 195.0, 185.0)
    for leg, order in zip(("entry", "tp", "sl"), (parent, tp, sl), strict=True):
        order.orderRef = f"tv2ib:42:{leg}"
    trades = [ib.placeOrder(contract, o) for o in (parent, tp, sl)]
    wait_for(ib, lambda: trades[2].orderStatus.status == "PreSubmitted")
    assert [t.orderStatus.status for t in trades] == ["Submitted", "PreSubmitted", "PreSubmitted"]
    assert all(t.order.permId for t in trades)

    fresh.set_fill_limit(40, symbol="AAPL", sec_type="STK")
    fresh.set_price("AAPL", 188.5)
    wait_for(ib, lambda: trades[0].orderStatus.filled == 40)
    assert trades[0].orderStatus.status == "Submitted" and trades[0].orderStatus.remaining == 60
    fresh.set_fill_limit(None, symbol="AAPL", sec_type="STK")
    wait_for(ib, lambda: trades[0].orderStatus.status == "Filled")
    assert len(trades[0].fills) == 2
    assert all(f.commissionReport.commission > 0 for f in trades[0].fills)
    assert all(f.execution.orderRef == "tv2ib:42:entry" for f in trades[0].fills)
    wait_for(
        ib,
        lambda: trades[1].orderStatus.status == "Submitted" and trades[2].orderStatus.status == "Submitted",
    )
    wait_for(ib, lambda: any(p.position == 100 for p in ib.positions()))

    fresh.set_price("AAPL", 184.0)
    wait_for(
        ib, lambda: trades[2].orderStatus.status == "Filled" and trades[1].orderStatus.status == "Cancelled"
    )
    wait_for(ib, lambda: not [p for p in ib.positions() if p.position])
    sl_fill = trades[2].fills[0]
    assert sl_fill.execution.price == 184.0
    assert sl_fill.commissionReport.realizedPNL < 0
    state = fresh.state()
    assert {o["orderRef"]: o["status"] for o in state["orders"]} == {
        "tv2ib:42:entry": "Filled",
        "tv2ib:42:tp": "Cancelled",
        "tv2ib:42:sl": "Filled",
    }


def test_take_profit_fills_and_cancels_stop(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    trades = [ib.placeOrder(contract, o) for o in ib.bracketOrder("BUY", 10, 190.0, 192.0, 188.0)]
    wait_for(ib, lambda: trades[0].orderStatus.status == "Filled")  # marketable at 190 on arrival
    fresh.set_price("AAPL", 192.5)
    wait_for(
        ib, lambda: trades[1].orderStatus.status == "Filled" and trades[2].orderStatus.status == "Cancelled"
    )
    assert trades[1].fills[0].execution.price == 192.0  # resting limit fills at its limit


def test_oca_group_cancels_siblings(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    orders = [LimitOrder("BUY", 5, 185.0), LimitOrder("BUY", 5, 186.0)]
    ib.oneCancelsAll(orders, "oca-test-1", 1)
    trades = [ib.placeOrder(contract, o) for o in orders]
    wait_for(ib, lambda: all(t.orderStatus.status == "Submitted" for t in trades))
    fresh.set_price("AAPL", 185.9)
    wait_for(
        ib, lambda: trades[1].orderStatus.status == "Filled" and trades[0].orderStatus.status == "Cancelled"
    )


def test_modify_and_cancel(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    order = LimitOrder("BUY", 10, 180.0, orderRef="tv2ib:7:entry")
    trade = ib.placeOrder(contract, order)
    wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
    order.lmtPrice = 181.0
    order.totalQuantity = 20
    ib.placeOrder(contract, order)
    wait_for(ib, lambda: fresh.state()["orders"][0]["lmtPrice"] == 181.0)
    row = fresh.state()["orders"][0]
    assert row["quantity"] == 20 and row["orderRef"] == "tv2ib:7:entry"
    ib.cancelOrder(order)
    wait_for(ib, lambda: trade.orderStatus.status == "Cancelled")
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: codes.append(code)
    ib.client.placeOrder(order.orderId, contract, order)  # IB.placeOrder refuses done orders itself
    wait_for(ib, lambda: 104 in codes)


def test_global_cancel(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    trades = [ib.placeOrder(contract, LimitOrder("BUY", 1, p)) for p in (150.0, 151.0, 152.0)]
    wait_for(ib, lambda: all(t.orderStatus.status == "Submitted" for t in trades))
    ib.reqGlobalCancel()
    wait_for(ib, lambda: all(t.orderStatus.status == "Cancelled" for t in trades))
    assert not ib.openTrades()


def test_rejections(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    off_tick = ib.placeOrder(contract, LimitOrder("BUY", 1, 190.003))
    wait_for(ib, lambda: off_tick.orderStatus.status == "Cancelled")
    assert off_tick.log[-1].errorCode == 110
    unsupported = ib.placeOrder(contract, Order(action="BUY", totalQuantity=1, orderType="PEG MID"))
    wait_for(ib, lambda: unsupported.orderStatus.status == "Cancelled")
    assert unsupported.log[-1].errorCode == 201
    zero = ib.placeOrder(contract, MarketOrder("BUY", 0))
    wait_for(ib, lambda: zero.orderStatus.status == "Cancelled")
    fresh.fault("reject_next", reason="Insufficient margin")
    rejected = ib.placeOrder(contract, MarketOrder("BUY", 1))
    wait_for(ib, lambda: rejected.orderStatus.status == "Cancelled")
    assert "Insufficient margin" in rejected.log[-1].message
    assert not fresh.state()["orders"]


def test_stop_trail_and_tifs(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    ib.placeOrder(contract, MarketOrder("BUY", 10))
    wait_for(ib, lambda: any(p.position == 10 for p in ib.positions()))
    trail = Order(action="SELL", totalQuantity=10, orderType="TRAIL", auxPrice=2.0)
    trail_trade = ib.placeOrder(contract, trail)
    wait_for(ib, lambda: trail_trade.orderStatus.status == "Submitted")
    fresh.set_price("AAPL", 195.0)  # stop ratchets to 193
    fresh.set_price("AAPL", 193.5)
    assert trail_trade.orderStatus.status == "Submitted"
    fresh.set_price("AAPL", 192.9)
    wait_for(ib, lambda: trail_trade.orderStatus.status == "Filled")
    ioc = ib.placeOrder(contract, LimitOrder("BUY", 5, 150.0, tif="IOC"))
    wait_for(ib, lambda: ioc.orderStatus.status == "Cancelled")
    fresh.set_fill_limit(2, symbol="AAPL", sec_type="STK")
    fok = ib.placeOrder(contract, MarketOrder("BUY", 5, tif="FOK"))
    wait_for(ib, lambda: fok.orderStatus.status == "Cancelled")
    stop = ib.placeOrder(contract, StopOrder("BUY", 1, 200.0))
    wait_for(ib, lambda: stop.orderStatus.status == "Submitted")


def test_what_if(ib: IB) -> None:
    state = ib.whatIfOrder(aapl(ib), MarketOrder("BUY", 100))
    assert float(state.initMarginChange) > 0
    assert state.commission >= 1.0


def test_reconnect_rebuilds_orders_and_fills(fresh: SimThread, client_id: int) -> None:
    ib2 = reconnected_after_a_fill(ib_async, fresh.port, client_id, aapl, "tv2ib:9", 250.0)
    try:
        assert [t.order.orderRef for t in ib2.openTrades()] == ["tv2ib:9:tp"]
        assert [f.execution.orderRef for f in ib2.fills()] == ["tv2ib:9:entry"]
        assert ib2.fills()[0].commissionReport.commission > 0
        assert any(
            t.order.orderRef == "tv2ib:9:entry" and t.orderStatus.status == "Filled" for t in ib2.trades()
        )
        assert ib2.client.getReqId() > max(t.order.orderId for t in ib2.openTrades())
        other = ib2.reqExecutions(ExecutionFilter(clientId=client_id + 5000))
        assert other == []
        mine = ib2.reqExecutions(ExecutionFilter(clientId=client_id, side="BUY"))
        assert len(mine) == 1
    finally:
        ib2.disconnect()


def test_duplicate_client_id_refused(ib: IB, fresh: SimThread) -> None:
    second = IB()
    with pytest.raises((TimeoutError, ConnectionError)):
        second.connect("127.0.0.1", fresh.port, clientId=ib.client.clientId, timeout=1)
    second.disconnect()
    assert ib.isConnected()


def test_account_values_portfolio_and_pnl(ib: IB, fresh: SimThread) -> None:
    es = ib.qualifyContracts(Future("ES", exchange="CME", lastTradeDateOrContractMonth=_front("ES", ib)))[0]
    ib.placeOrder(es, MarketOrder("BUY", 1))
    wait_for(ib, lambda: any(p.position == 1 for p in ib.portfolio()))
    fresh.set_price("ES", 5010.0, sec_type="FUT")
    wait_for(ib, lambda: any(p.unrealizedPNL == 500.0 for p in ib.portfolio()))
    values = {(v.tag, v.currency): v.value for v in ib.accountValues()}
    assert float(values[("UnrealizedPnL", "USD")]) == 500.0
    assert float(values[("NetLiquidation", "USD")]) == pytest.approx(1_000_000 + 500 - 0.85)
    summary = {v.tag: v.value for v in ib.accountSummary()}
    assert float(summary["BuyingPower"]) > 0 and float(summary["AvailableFunds"]) > 0
    pnl = ib.reqPnL("DU1234567")
    ib.sleep(0.1)
    assert pnl.unrealizedPnL == 500.0


def _front(symbol: str, ib: IB) -> str:
    details = ib.reqContractDetails(Future(symbol, exchange="CME"))
    return min(d.contract.lastTradeDateOrContractMonth for d in details)[:6]


def test_market_data_snapshot_and_stream(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    (ticker,) = ib.reqTickers(contract)
    assert ticker.last == 190.0 and ticker.bid < ticker.ask
    stream = ib.reqMktData(contract)
    wait_for(ib, lambda: stream.last == 190.0)
    fresh.set_price("AAPL", 191.25)
    wait_for(ib, lambda: stream.last == 191.25)
    ib.cancelMktData(contract)
    symbols = ib.reqMatchingSymbols("AA")
    assert symbols and symbols[0].contract.symbol == "AAPL"


def test_refused_modification_keeps_the_order_working(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    order = LimitOrder("BUY", 10, 180.0)
    trade = ib.placeOrder(contract, order)
    wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
    order.orderType = "PEG MID"  # unsupported: the modification is refused, the order stays as it was
    ib.placeOrder(contract, order)
    wait_for(ib, lambda: any(e.errorCode == 201 for e in trade.log))
    wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
    assert fresh.state()["orders"][0]["orderType"] == "LMT"
    fresh.set_price("AAPL", 179.0)
    wait_for(ib, lambda: trade.orderStatus.status == "Filled")


def test_misc_requests_answer_promptly(ib: IB, fresh: SimThread) -> None:
    contract = aapl(ib)
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: codes.append(code)
    ib.RequestTimeout = 0  # wait for the answer itself: a request left unanswered would hang (pytest-timeout)
    bad = ib.reqHistoricalData(contract, "", "1 D", "7 parsecs", "TRADES", True)
    assert len(bad) == 0 and 162 in codes
    bars = ib.reqHistoricalData(contract, "", "2 D", "1 hour", "TRADES", True)
    assert len(bars) == 48 and bars[-1].close == 190.0
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    assert list(ib.reqHistoricalData(contract, "", "2 D", "1 hour", "TRADES", True)) == list(
        bars
    )  # reproducible
    daily = ib.reqHistoricalData(contract, "", "1 M", "1 day", "MIDPOINT", True)
    assert len(daily) == 30 and daily[-1].date.year >= 2025
    assert ib.reqHeadTimeStamp(contract, "TRADES", True).year >= 2024
    # US stocks' price bands: 0.0001 below 1.00, 0.01 from 1.00
    assert [(b.lowEdge, b.increment) for b in ib.reqMarketRule(26)] == [(0.0, 0.0001), (1.0, 0.01)]
    ib.placeOrder(contract, MarketOrder("BUY", 10))
    wait_for(ib, lambda: len(ib.fills()) == 1)
    single = ib.reqPnLSingle("DU1234567", "", contract.conId)
    fresh.set_price("AAPL", 191.0)
    wait_for(ib, lambda: single.unrealizedPnL == 10.0)
    assert single.position == 10
    ib.cancelPnLSingle("DU1234567", "", contract.conId)
    ib.client.reqIds(1)
    ib.sleep(0.05)
    assert ib.client._reqIdSeq >= 2
    assert ib.reqCurrentTime().year >= 2025
