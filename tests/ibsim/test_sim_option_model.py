"""The option family's pure rules, as tables: expiries on a day, strike grids, OCC symbols and
conIds, the Black-Scholes model, and the option costs (commission, Reg-T margin)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from ibsim.catalog.options import (
    OPTION_ROOTS,
    OptionChains,
    decode_con_id,
    occ_symbol,
    option_con_id,
    option_expiries,
    parse_occ,
    strike_grid,
)
from ibsim.catalog.stocks import stock_instruments
from ibsim.engine.costs import commission_for, short_option_margin
from ibsim.engine.option_model import black_scholes, implied_vol

ROOTS = {r.symbol: r for r in OPTION_ROOTS}


@pytest.mark.parametrize(
    ("today", "first", "count"),
    [
        (dt.date(2025, 6, 2), dt.date(2025, 6, 6), 8 + 12 - 2),  # Monday: two monthlies are weeklies too
        (dt.date(2025, 6, 6), dt.date(2025, 6, 6), 8 + 12 - 2),  # a Friday lists itself (0 days)
        (dt.date(2025, 6, 7), dt.date(2025, 6, 13), 8 + 12 - 2),  # Saturday: the next Friday
        (dt.date(2025, 6, 21), dt.date(2025, 6, 27), 8 + 12 - 2),  # after June's monthly: July's first
    ],
)
def test_expiries_are_weeklies_and_monthlies(today: dt.date, first: dt.date, count: int) -> None:
    days = option_expiries(today)
    assert days[0] == first and len(days) == count
    assert all(d.weekday() == 4 for d in days)
    monthlies = [d for d in days if 15 <= d.day <= 21]
    assert len(monthlies) == 12


@pytest.mark.parametrize(
    ("symbol", "price", "near", "lowest", "highest"),
    [
        ("SPY", 500.0, [499.0, 500.0, 501.0], 250.0, 750.0),
        ("AAPL", 190.0, [187.5, 190.0, 192.5], 95.0, 285.0),
        ("INTC", 30.0, [29.5, 30.0, 30.5], 15.0, 45.0),
        ("SPY", 500.4, [499.0, 500.0, 501.0], 255.0, 750.0),
    ],
)
def test_strike_grid_around_the_price(
    symbol: str, price: float, near: list[float], lowest: float, highest: float
) -> None:
    grid = strike_grid(ROOTS[symbol], price)
    assert all(s in grid for s in near)
    assert (grid[0], grid[-1]) == (lowest, highest)
    assert grid == sorted(set(grid))


@pytest.mark.parametrize(
    ("symbol", "expiry", "right", "strike", "occ"),
    [
        ("SPY", dt.date(2025, 6, 20), "C", 596.0, "SPY   250620C00596000"),
        ("AAPL", dt.date(2026, 1, 16), "P", 187.5, "AAPL  260116P00187500"),
        ("INTC", dt.date(2025, 7, 3), "C", 30.5, "INTC  250703C00030500"),
    ],
)
def test_occ_symbols_and_con_ids_round_trip(
    symbol: str, expiry: dt.date, right: str, strike: float, occ: str
) -> None:
    assert occ_symbol(symbol, expiry, right, strike) == occ
    assert parse_occ(occ) == (symbol, f"{expiry:%Y%m%d}", right, strike)
    assert parse_occ(occ.replace(" ", "")) == parse_occ(occ)
    root = ROOTS[symbol]
    con_id = option_con_id(root, expiry, right, strike)
    assert con_id is not None and 1_000_000_000 < con_id < 2**31
    assert decode_con_id(con_id) == (root.index, right, expiry, strike)


def test_con_ids_refuse_what_they_cannot_hold() -> None:
    spy = ROOTS["SPY"]
    assert option_con_id(spy, dt.date(2025, 6, 20), "C", 596.25) is None  # off the half-dollar grid
    assert option_con_id(spy, dt.date(2025, 6, 20), "C", 2048.0) is None  # above the encoded range
    assert decode_con_id(265598) is None  # a stock's
    assert parse_occ("AAPL") is None and parse_occ("SPY 250624C596") is None


def test_an_expired_option_stays_known_by_its_con_id() -> None:
    chains = OptionChains(stock_instruments())
    con_id = option_con_id(ROOTS["AAPL"], dt.date(2020, 1, 17), "C", 300.0)
    assert con_id is None  # before the conIds' epoch (2024): never listed by ibsim
    old = option_con_id(ROOTS["AAPL"], dt.date(2024, 3, 15), "P", 170.0)
    inst = chains.get(old or 0)
    assert inst is not None and inst.local_symbol == "AAPL  240315P00170000" and inst.under_con_id == 265598


@pytest.mark.parametrize(
    ("und", "strike", "years", "vol"), [(100, 100, 0.25, 0.2), (190, 170, 0.1, 0.35), (30, 35, 1.0, 0.5)]
)
def test_black_scholes_put_call_parity_and_implied_vol(
    und: float, strike: float, years: float, vol: float
) -> None:
    call = black_scholes("C", und, strike, years, vol, 0.04)
    put = black_scholes("P", und, strike, years, vol, 0.04)
    assert call.opt_price - put.opt_price == pytest.approx(und - strike * math.exp(-0.04 * years), abs=1e-9)
    assert call.delta - put.delta == pytest.approx(1.0)
    assert call.gamma == pytest.approx(put.gamma) and call.vega == pytest.approx(put.vega)
    assert implied_vol("C", call.opt_price, und, strike, years, 0.04) == pytest.approx(vol, abs=1e-6)
    assert implied_vol("C", und + 1.0, und, strike, years, 0.04) is None  # dearer than the stock


@pytest.mark.parametrize(
    ("right", "strike", "und", "premium", "margin"),
    [
        ("P", 480.0, 500.0, 3.0, (3.0 + max(100.0 - 20.0, 48.0)) * 100),  # 20 out of the money
        ("P", 300.0, 500.0, 0.05, (0.05 + 30.0) * 100),  # far out: 10 % of the strike
        ("C", 520.0, 500.0, 4.0, (4.0 + 80.0) * 100),
        ("C", 480.0, 500.0, 25.0, (25.0 + 100.0) * 100),  # in the money: nothing deducted
    ],
)
def test_short_option_margin_is_reg_t(
    right: str, strike: float, und: float, premium: float, margin: float
) -> None:
    chains = OptionChains(stock_instruments())
    inst = chains.get(option_con_id(ROOTS["SPY"], dt.date(2025, 6, 20), right, strike) or 0)
    assert inst is not None
    assert short_option_margin(inst, und, premium) == pytest.approx(margin)


@pytest.mark.parametrize(
    ("quantity", "premium", "fee"), [(1, 5.0, 1.0), (3, 5.0, 1.95), (10, 0.08, 5.0), (10, 0.03, 2.5)]
)
def test_option_commission(quantity: int, premium: float, fee: float) -> None:
    chains = OptionChains(stock_instruments())
    inst = chains.get(option_con_id(ROOTS["SPY"], dt.date(2025, 6, 20), "C", 500.0) or 0)
    assert inst is not None
    assert commission_for(inst, quantity, premium, 1.0) == pytest.approx(fee)
