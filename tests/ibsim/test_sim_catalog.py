"""The catalog: futures expiries on each product's real cycle, TWS-like matching, extension files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ibsim.catalog import (
    FUTURE_PRODUCTS,
    ContractQuery,
    build_catalog,
    future_expiries,
    instrument_from_dict,
    load_extension,
    on_tick,
    round_to_tick,
)

PRODUCTS = {p.symbol: p for p in FUTURE_PRODUCTS}


def test_equity_index_futures_are_quarterly_third_fridays() -> None:
    expiries = future_expiries(PRODUCTS["ES"], dt.date(2025, 3, 22))
    assert [(y, m, d.isoformat()) for y, m, d in expiries] == [
        (2025, 6, "2025-06-20"),
        (2025, 9, "2025-09-19"),
        (2025, 12, "2025-12-19"),
        (2026, 3, "2026-03-20"),
    ]
    # on expiry day the expiring contract is still listed
    assert future_expiries(PRODUCTS["MNQ"], dt.date(2025, 3, 21))[0][2] == dt.date(2025, 3, 21)


def test_crude_is_monthly_and_expires_the_month_before() -> None:
    expiries = future_expiries(PRODUCTS["CL"], dt.date(2025, 1, 2))
    assert [m for _, m, _ in expiries] == [2, 3, 4, 5, 6, 7]
    # CLG5 (Feb 2025): 25 Jan 2025 is a Saturday -> back to Fri 24th, then 3 business days -> Tue 21st
    assert expiries[0][2] == dt.date(2025, 1, 21)


def test_gold_follows_g_j_m_q_v_z() -> None:
    expiries = future_expiries(PRODUCTS["GC"], dt.date(2025, 1, 2))
    assert [m for _, m, _ in expiries] == [2, 4, 6, 8]
    assert expiries[0][2] == dt.date(2025, 2, 26)  # third-last business day of February 2025 (28, 27, 26)


def test_catalog_contents_and_specs() -> None:
    catalog = build_catalog(today=dt.date(2026, 11, 22))
    specs = {(i.symbol, i.sec_type): i for i in catalog}
    for symbol in ("AAPL", "MSFT", "SPY", "QQQ", "TSLA", "AMD", "INTC"):
        assert specs[(symbol, "STK")].min_tick == 0.01
    assert specs[("AAPL", "STK")].con_id == 265598
    for symbol, mult, tick in (
        ("ES", "50", 0.25),
        ("MES", "5", 0.25),
        ("NQ", "20", 0.25),
        ("MNQ", "2", 0.25),
        ("CL", "1000", 0.01),
        ("GC", "100", 0.1),
    ):
        inst = specs[(symbol, "FUT")]
        assert (inst.multiplier, inst.min_tick) == (mult, tick)
    es = sorted((i for i in catalog if i.symbol == "ES"), key=lambda i: i.last_trade_date)
    assert [i.local_symbol for i in es] == ["ESZ6", "ESH7", "ESM7", "ESU7"]
    assert es[0].last_trade_date == "20261218" and es[0].contract_month == "202612"
    assert specs[("USD", "CASH")].min_tick == 0.005 and specs[("EUR", "CASH")].min_tick == 0.00005
    assert specs[("BTC", "CRYPTO")].exchange == "PAXOS"
    assert len({i.con_id for i in catalog}) == len(catalog)
    assert all(i.default_price > 0 and on_tick(i.default_price, i.min_tick) for i in catalog)


@pytest.mark.parametrize(
    ("query", "local_symbols"),
    [
        (ContractQuery(symbol="AAPL", sec_type="STK", exchange="SMART", currency="USD"), ["AAPL"]),
        (ContractQuery(symbol="aapl"), ["AAPL"]),
        (ContractQuery(con_id=265598), ["AAPL"]),
        (ContractQuery(con_id=265598, symbol="MSFT"), []),
        (ContractQuery(symbol="AAPL", exchange="NASDAQ"), ["AAPL"]),
        (ContractQuery(symbol="AAPL", exchange="CME"), []),
        (ContractQuery(symbol="AAPL", primary_exchange="NASDAQ"), ["AAPL"]),
        (ContractQuery(symbol="ES", sec_type="FUT", last_trade_date_or_contract_month="202612"), ["ESZ6"]),
        (ContractQuery(symbol="ES", sec_type="FUT", last_trade_date_or_contract_month="20261218"), ["ESZ6"]),
        (ContractQuery(sec_type="FUT", local_symbol="MESH7"), ["MESH7"]),
        (
            ContractQuery(symbol="ES", sec_type="FUT", multiplier="50", exchange="CME", trading_class="ES"),
            ["ESZ6", "ESH7", "ESM7", "ESU7"],
        ),
        (ContractQuery(symbol="ES", sec_type="CONTFUT"), ["ESZ6"]),
        (ContractQuery(symbol="EUR", sec_type="CASH", currency="USD", exchange="IDEALPRO"), ["EUR.USD"]),
        (ContractQuery(symbol="EUR", sec_type="CASH", currency="JPY"), []),
        (ContractQuery(symbol="BTC", sec_type="CRYPTO", exchange="PAXOS"), ["BTC.USD"]),
        (ContractQuery(symbol="ZZZZ"), []),
    ],
)
def test_matching_like_tws(query: ContractQuery, local_symbols: list[str]) -> None:
    catalog = build_catalog(today=dt.date(2026, 11, 22))
    assert sorted(i.local_symbol for i in catalog.match(query)) == sorted(local_symbols)


def test_operator_lookup() -> None:
    catalog = build_catalog(today=dt.date(2026, 11, 22))
    assert [i.con_id for i in catalog.find("EURUSD")] == [12087792]
    assert [i.con_id for i in catalog.find("EUR.USD", "CASH")] == [12087792]
    assert len(catalog.find("ES", "FUT")) == 4
    assert [i.local_symbol for i in catalog.find("ESZ6")] == ["ESZ6"]
    assert catalog.find("AAPL", "FUT") == []


def test_extension_file_json_and_yaml(tmp_path: Path) -> None:
    entries = [
        {"conId": 1, "symbol": "NVDA", "secType": "STK", "primaryExchange": "NASDAQ", "price": 900.0},
        {"con_id": 265598, "symbol": "AAPL", "sec_type": "STK", "default_price": 5.0},
    ]
    as_json = tmp_path / "extra.json"
    as_json.write_text(json.dumps({"instruments": entries}))
    as_yaml = tmp_path / "extra.yaml"
    as_yaml.write_text(
        "- conId: 1\n  symbol: NVDA\n  secType: STK\n  primaryExchange: NASDAQ\n  price: 900.0\n"
        "- {con_id: 265598, symbol: AAPL, sec_type: STK, default_price: 5.0}\n"
    )
    for path in (as_json, as_yaml):
        assert [i.symbol for i in load_extension(path)] == ["NVDA", "AAPL"]
        catalog = build_catalog(today=dt.date(2026, 11, 22), extension=path)
        assert catalog.get(1).default_price == 900.0 and catalog.get(265598).default_price == 5.0
    with pytest.raises(ValueError):
        instrument_from_dict({"symbol": "X"})
    with pytest.raises(ValueError):
        instrument_from_dict({"conId": 2, "symbol": "X", "secType": "STK", "colour": "red"})


def test_tick_helpers() -> None:
    assert on_tick(1.08005, 0.00005) and not on_tick(1.08003, 0.00005)
    assert on_tick(4999.25, 0.25) and not on_tick(4999.3, 0.25)
    assert round_to_tick(190.004, 0.01) == 190.0 and round_to_tick(149.9975, 0.005) == 150.0
    assert round_to_tick(2300.05, 0.1) in (2300.0, 2300.1)
