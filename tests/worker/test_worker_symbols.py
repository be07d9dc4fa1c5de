"""TradingView ticker → IB contract description (pure logic)."""

import pytest

from worker.contracts.tickers import ContractSpec, UnknownSymbol, resolve_ticker


@pytest.mark.parametrize(
    ("ticker", "exchange", "expected"),
    [
        ("AAPL", None, ContractSpec("STK", "AAPL", "SMART", "USD")),
        ("NASDAQ:AAPL", None, ContractSpec("STK", "AAPL", "SMART", "USD", primary_exchange="NASDAQ")),
        ("BRK.B", "NYSE", ContractSpec("STK", "BRK B", "SMART", "USD", primary_exchange="NYSE")),
        ("EURUSD", None, ContractSpec("CASH", "EUR", "IDEALPRO", "USD")),
        ("FX:EUR.USD", None, ContractSpec("CASH", "EUR", "IDEALPRO", "USD")),
        ("USDJPY", None, ContractSpec("CASH", "USD", "IDEALPRO", "JPY")),
        ("BTCUSD", None, ContractSpec("CRYPTO", "BTC", "PAXOS", "USD")),
        ("COINBASE:ETHUSD", None, ContractSpec("CRYPTO", "ETH", "PAXOS", "USD")),
        ("ES1!", None, ContractSpec("FUT", "ES", "CME", front_index=1)),
        ("CME_MINI:MNQ2!", None, ContractSpec("FUT", "MNQ", "CME", front_index=2)),
        ("CL1!", None, ContractSpec("FUT", "CL", "NYMEX", front_index=1)),
        ("GC1!", None, ContractSpec("FUT", "GC", "COMEX", front_index=1)),
        ("MESZ2026", None, ContractSpec("FUT", "MES", "CME", contract_month="202612")),
        ("ESH27", None, ContractSpec("FUT", "ES", "CME", contract_month="202703")),
    ],
)
def test_resolve(ticker, exchange, expected):
    assert resolve_ticker(ticker, exchange, today_year=2026) == expected


def test_single_digit_year_is_the_next_one():
    assert resolve_ticker("ESZ6", today_year=2026).contract_month == "202612"
    assert resolve_ticker("ESH5", today_year=2026).contract_month == "203503"


@pytest.mark.parametrize("ticker", ["", "XX1!", "DOGEUSD:?", "FX:ABCDEF", "COINBASE:DOGEUSD"])
def test_unknown(ticker):
    with pytest.raises(UnknownSymbol):
        resolve_ticker(ticker)


def test_overrides_win():
    spec = ContractSpec("STK", "SPY", "ARCA")
    assert resolve_ticker("SPX500", overrides={"SPX500": spec}) == spec
