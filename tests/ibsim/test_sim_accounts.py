"""Account realities the position logic must meet: trades made by hand outside the API, cash
accounts that cannot sell short, halted contracts. Real ib_async client over TCP, control over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from ib_async import IB, MarketOrder, Stock
from ibsim_helpers import wait_for

from ibsim.testing import SimThread

pytestmark = pytest.mark.e2e


@pytest.fixture
def http(fresh: SimThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{fresh.control_port}", timeout=5) as client:
        yield client


def _aapl_position(ib: IB) -> float:
    return sum(p.position for p in ib.positions() if p.contract.symbol == "AAPL")


def test_a_manual_trade_shows_as_a_position_only(ib: IB, http: httpx.Client) -> None:
    answer = http.post("/trade", json={"symbol": "AAPL", "secType": "STK", "quantity": 7, "price": 190})
    assert answer.status_code == 200 and answer.json()["position"] == 7
    wait_for(ib, lambda: _aapl_position(ib) == 7)
    assert ib.fills() == []  # made outside the API: no execution reaches this client
    assert (
        http.post("/trade", json={"symbol": "AAPL", "secType": "STK", "quantity": -10}).json()["position"]
        == -3
    )
    wait_for(ib, lambda: _aapl_position(ib) == -3)
    bad = http.post("/trade", json={"symbol": "AAPL", "secType": "STK"})
    assert bad.status_code == 422 and "quantity" in bad.json()["message"]


def test_a_cash_account_refuses_short_sales(fresh: SimThread, ib: IB) -> None:
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    fresh.set_cash_account(True)
    short = ib.placeOrder(contract, MarketOrder("SELL", 5))
    wait_for(ib, lambda: short.orderStatus.status == "Cancelled")
    assert "Short sales are not permitted in a cash account" in short.log[-1].message
    assert short.log[-1].errorCode == 201
    bought = ib.placeOrder(contract, MarketOrder("BUY", 5))
    wait_for(ib, lambda: bought.orderStatus.status == "Filled")
    sold = ib.placeOrder(contract, MarketOrder("SELL", 5))  # selling what is held is fine
    wait_for(ib, lambda: sold.orderStatus.status == "Filled")
    fresh.set_cash_account(False)
    margin_short = ib.placeOrder(contract, MarketOrder("SELL", 1))
    wait_for(ib, lambda: margin_short.orderStatus.status == "Filled")
    wait_for(ib, lambda: _aapl_position(ib) == -1)


def test_a_halted_contract_refuses_new_orders(fresh: SimThread, ib: IB) -> None:
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    assert fresh.halt("AAPL", sec_type="STK") == [contract.conId]
    refused = ib.placeOrder(contract, MarketOrder("BUY", 1))
    wait_for(ib, lambda: refused.orderStatus.status == "Cancelled")
    assert "halted" in refused.log[-1].message
    fresh.halt("AAPL", halted=False, sec_type="STK")
    accepted = ib.placeOrder(contract, MarketOrder("BUY", 1))
    wait_for(ib, lambda: accepted.orderStatus.status == "Filled")


def test_reset_forgets_account_types_and_halts(fresh: SimThread) -> None:
    fresh.set_cash_account(True)
    fresh.halt("AAPL", sec_type="STK")
    fresh.reset()
    assert not fresh.sim.engine.cash_accounts and not fresh.sim.engine.halted
