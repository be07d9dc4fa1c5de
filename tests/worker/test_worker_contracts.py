"""Contracts qualified through IB (ibsim over TCP): stocks, forex, futures (front and explicit), crypto."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from worker.contracts.tickers import resolve_ticker
from worker.ib import ContractNotFound


@pytest.mark.parametrize(
    ("ticker", "sec_type", "tick", "local_prefix"),
    [
        ("NASDAQ:AAPL", "STK", "0.01", "AAPL"),
        ("EURUSD", "CASH", "0.00005", "EUR.USD"),
        ("USDJPY", "CASH", "0.005", "USD.JPY"),
        ("ES1!", "FUT", "0.25", "ES"),
        ("CL1!", "FUT", "0.01", "CL"),
        ("GC1!", "FUT", "0.1", "GC"),
        ("BTCUSD", "CRYPTO", "0.25", "BTC"),
    ],
)
def test_qualified_through_ib(session, ticker, sec_type, tick, local_prefix):
    contract, inst = session.call(session.instrument(resolve_ticker(ticker)))
    assert inst.sec_type == sec_type and inst.min_tick == Decimal(tick)
    assert inst.local_symbol.startswith(local_prefix) and inst.con_id == contract.conId > 0
    # cached: the same object without asking IB again
    again, _ = session.call(session.instrument(resolve_ticker(ticker)))
    assert again is contract


def test_front_month_then_next_and_explicit_month(session):
    front, first = session.call(session.instrument(resolve_ticker("MES1!")))
    _, second = session.call(session.instrument(resolve_ticker("MES2!")))
    assert front.lastTradeDateOrContractMonth >= date.today().strftime("%Y%m%d")
    assert second.con_id != first.con_id
    month = front.lastTradeDateOrContractMonth[:6]
    code = "FGHJKMNQUVXZ"[int(month[4:]) - 1]
    explicit, inst = session.call(session.instrument(resolve_ticker(f"MES{code}{month[:4]}")))
    assert inst.con_id == first.con_id


def test_unknown_symbol_carries_ibs_reason(session):
    with pytest.raises(ContractNotFound, match="No security definition"):
        session.call(session.instrument(resolve_ticker("ZZZZQ")))
