"""End to end with ib_insync 0.9.86 (stricter than ib_async: exact execDetails, startup executions)."""

from __future__ import annotations

import ib_insync
import pytest
from ib_insync import IB, Crypto, Forex, Future, LimitOrder, MarketOrder, Stock
from ibsim_helpers import reconnected_after_a_fill, wait_for

from ibsim.testing import SimThread

pytestmark = pytest.mark.e2e


def test_connect_and_qualify(fresh: SimThread, client_id: int, caplog: pytest.LogCaptureFixture) -> None:
    ib = IB()
    ib.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=5)
    try:
        assert not [r for r in caplog.records if "timed out" in r.getMessage()]  # every startup End arrived
        assert ib.client.serverVersion() == 157
        month = min(
            d.contract.lastTradeDateOrContractMonth
            for d in ib.reqContractDetails(Future("NQ", exchange="CME"))
        )
        qualified = ib.qualifyContracts(
            Stock("TSLA", "SMART", "USD"),
            Future("NQ", month[:6], "CME"),
            Forex("GBPUSD"),
            Crypto("ETH", "PAXOS", "USD"),
        )
        assert [c.conId for c in qualified][0] == 76792991 and len(qualified) == 4
        assert qualified[1].multiplier == "20"
    finally:
        ib.disconnect()


def test_bracket_partial_full_and_oca(ib: IB, fresh: SimThread) -> None:
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    bracket = ib.bracketOrder("BUY", 100, 189.0, 195.0, 185.0)
    for leg, order in zip(("entry", "tp", "sl"), bracket, strict=True):
        order.orderRef = f"tv2ib:77:{leg}"
    trades = [ib.placeOrder(contract, o) for o in bracket]
    wait_for(
        ib, lambda: [t.orderStatus.status for t in trades] == ["Submitted", "PreSubmitted", "PreSubmitted"]
    )
    fresh.set_fill_limit(40, symbol="AAPL")
    fresh.set_price("AAPL", 188.5)
    wait_for(ib, lambda: trades[0].orderStatus.filled == 40)
    assert len(trades[0].fills) == 1  # the 31-field execDetails is accepted by the strict decoder
    fresh.set_fill_limit(None, symbol="AAPL")
    wait_for(ib, lambda: trades[0].orderStatus.status == "Filled")
    assert [f.commissionReport.commission for f in trades[0].fills] == [1.0, 1.0]
    wait_for(ib, lambda: trades[1].orderStatus.status == "Submitted")
    fresh.set_price("AAPL", 196.0)
    wait_for(
        ib, lambda: trades[1].orderStatus.status == "Filled" and trades[2].orderStatus.status == "Cancelled"
    )
    assert trades[1].fills[0].commissionReport.realizedPNL > 0


def test_modify_cancel_global_cancel_and_what_if(ib: IB, fresh: SimThread) -> None:
    (contract,) = ib.qualifyContracts(Stock("MSFT", "SMART", "USD"))
    order = LimitOrder("BUY", 10, 400.0)
    trade = ib.placeOrder(contract, order)
    wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
    order.lmtPrice = 401.0
    ib.placeOrder(contract, order)
    wait_for(ib, lambda: fresh.state()["orders"][0]["lmtPrice"] == 401.0)
    ib.cancelOrder(order)
    wait_for(ib, lambda: trade.orderStatus.status == "Cancelled")
    others = [ib.placeOrder(contract, LimitOrder("BUY", 1, p)) for p in (300.0, 301.0)]
    wait_for(ib, lambda: all(t.orderStatus.status == "Submitted" for t in others))
    ib.reqGlobalCancel()
    wait_for(ib, lambda: all(t.orderStatus.status == "Cancelled" for t in others))
    state = ib.whatIfOrder(contract, MarketOrder("BUY", 10))
    assert float(state.initMarginChange) == pytest.approx(10 * 420 * 0.25)


def test_reconnect_rebuilds(fresh: SimThread, client_id: int) -> None:
    def amd(ib: IB) -> Stock:
        (contract,) = ib.qualifyContracts(Stock("AMD", "SMART", "USD"))
        return contract

    ib = reconnected_after_a_fill(ib_insync, fresh.port, client_id, amd, "tv2ib:3", 200.0)
    try:
        assert [t.order.orderRef for t in ib.openTrades()] == ["tv2ib:3:tp"]
        assert [f.execution.orderRef for f in ib.fills()] == ["tv2ib:3:entry"]
        assert {t.order.orderRef for t in ib.trades()} == {"tv2ib:3:entry", "tv2ib:3:tp"}
    finally:
        ib.disconnect()


def test_faults_reach_ib_insync(ib: IB, fresh: SimThread) -> None:
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, *a: codes.append(code)
    fresh.fault("connectivity", code=1101, seconds=0.1)
    wait_for(ib, lambda: 1100 in codes and 1101 in codes)
    fresh.fault("drop")
    wait_for(ib, lambda: not ib.isConnected())
