"""Tick-grid rounding in the safe direction (pure logic)."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.decision.rounding import (
    limit_direction,
    on_grid,
    protective_stop_direction,
    round_to_tick,
    to_decimal,
)


@pytest.mark.parametrize(
    ("price", "tick", "direction", "expected"),
    [
        (D("100.004"), D("0.01"), "up", D("100.01")),
        (D("100.004"), D("0.01"), "down", D("100.00")),
        (D("100.00"), D("0.01"), "up", D("100.00")),
        (D("5000.1"), D("0.25"), "up", D("5000.25")),
        (D("5000.1"), D("0.25"), "down", D("5000.00")),
        (D("1.080012"), D("0.00005"), "up", D("1.08005")),
        (D("1.080012"), D("0.00005"), "down", D("1.08000")),
        (D("150.0031"), D("0.005"), "down", D("150.000")),
        (D("12"), D("5"), "up", D("15")),
    ],
)
def test_round_to_tick(price, tick, direction, expected):
    assert round_to_tick(price, tick, direction) == expected


def test_safe_directions():
    # limits never get a worse price; stop-losses round toward the entry (less risk)
    assert limit_direction("BUY") == "down"
    assert limit_direction("SELL") == "up"
    assert protective_stop_direction("SELL") == "up"  # a long's stop-loss
    assert protective_stop_direction("BUY") == "down"  # a short's stop-loss


def test_to_decimal_keeps_float_digits():
    assert to_decimal(0.1) == D("0.1")
    assert to_decimal("101.25") == D("101.25")
    with pytest.raises(ValueError):
        to_decimal(True)
    with pytest.raises(ValueError):
        to_decimal("nan")


@given(
    st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=6),
    st.sampled_from([D("0.01"), D("0.25"), D("0.00005"), D("0.005"), D("0.1")]),
)
def test_rounding_lands_on_grid_within_one_tick(price, tick):
    up, down = round_to_tick(price, tick, "up"), round_to_tick(price, tick, "down")
    assert on_grid(up, tick) and on_grid(down, tick)
    assert down <= price <= up
    assert up - down in (0, tick)
