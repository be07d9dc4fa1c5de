"""Prices on IB's market rules (price bands): pure rounding rules, and one price through the worker."""

from __future__ import annotations

from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import wait_until
from worker_helpers import add_alert, alert_status

from core.services import get_alert
from worker.decision.rounding import PriceGrid
from worker.ib.market_rules import bands_of, rule_id_for

# US stocks (IB rule 26): 0.0001 below 1.00, 0.01 from 1.00
US_STOCKS = PriceGrid(D("0.01"), ((D(0), D("0.0001")), (D(1), D("0.01"))))
# an edge that is not on the upper band's grid (1.005 with 0.01 above it)
ODD_EDGE = PriceGrid(D("0.01"), ((D(0), D("0.0001")), (D("1.005"), D("0.01"))))


@pytest.mark.parametrize(
    ("grid", "price", "direction", "expected"),
    [
        (US_STOCKS, "0.51237", "down", "0.5123"),  # minTick alone would give 0.51
        (US_STOCKS, "0.51237", "up", "0.5124"),
        (US_STOCKS, "0.99996", "up", "1.00"),  # lands in the upper band: its grid
        (US_STOCKS, "0.99996", "down", "0.9999"),
        (US_STOCKS, "1.00", "down", "1.00"),  # the edge belongs to the upper band
        (US_STOCKS, "1.00005", "down", "1.00"),
        (US_STOCKS, "1.00005", "up", "1.01"),
        (US_STOCKS, "190.004", "up", "190.01"),
        (US_STOCKS, "190.004", "down", "190.00"),
        (ODD_EDGE, "1.007", "down", "1.0049"),  # falls out of its band: the band below's largest
        (ODD_EDGE, "1.0049", "up", "1.0049"),
        (ODD_EDGE, "1.00491", "up", "1.01"),  # the smallest price of the upper band
        (PriceGrid(D("0.25")), "5000.1", "up", "5000.25"),  # no rule: minTick
    ],
)
def test_round_on_bands(grid, price, direction, expected):
    assert grid.round(D(price), direction) == D(expected)


prices = st.decimals(min_value=D("0.0001"), max_value=D("2000"), places=6)


@given(price=prices, direction=st.sampled_from(["up", "down"]))
def test_rounded_prices_are_valid_and_in_the_safe_direction(price, direction):
    for grid in (US_STOCKS, ODD_EDGE):
        rounded = grid.round(price, direction)
        assert grid.on_grid(rounded)
        assert rounded >= price if direction == "up" else rounded <= price
        # the nearest valid price that way: one increment less far is not a valid price on that side
        step = grid.increment_at(rounded)
        closer = rounded - step if direction == "up" else rounded + step
        assert not (grid.on_grid(closer) and (closer >= price if direction == "up" else closer <= price))


def test_increment_at_and_describe():
    assert US_STOCKS.increment_at(D("0.9999")) == D("0.0001") and US_STOCKS.increment_at(D(1)) == D("0.01")
    assert US_STOCKS.describe() == "bands 0.0001 from 0, 0.01 from 1"
    assert PriceGrid(D("0.25")).describe() == "tick 0.25"


@pytest.mark.parametrize(
    ("rules", "exchanges", "exchange", "expected"),
    [
        ("26,26,26", "SMART,NASDAQ,NYSE", "SMART", 26),
        ("26,239,32", "SMART,IDEALPRO,NYMEX", "NYMEX", 32),
        ("67", "CME", "GLOBEX", 67),  # not listed: the first rule
        ("", "SMART", "SMART", None),
    ],
)
def test_rule_id_for_the_orders_exchange(rules, exchanges, exchange, expected):
    detail = SimpleNamespace(marketRuleIds=rules, validExchanges=exchanges)
    assert rule_id_for(detail, exchange) == expected


def test_bands_of_ib_increments_sorted():
    rows = [SimpleNamespace(lowEdge=1.0, increment=0.01), SimpleNamespace(lowEdge=0.0, increment=0.0001)]
    assert bands_of(rows) == ((D("0.0"), D("0.0001")), (D("1.0"), D("0.01")))
    assert bands_of(None) == ()


def test_a_sub_dollar_limit_is_rounded_on_its_price_band(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 0.5)
    alert_id = add_alert(
        ctx,
        {"ticker": "AAPL", "action": "buy", "orderType": "limit", "limitPrice": 0.51237, "quantity": 100,
         "takeProfit": {"limitPrice": 0.61239}},
    )  # fmt: skip
    wait_until(lambda: alert_status(ctx, alert_id) == "filled")
    plan = get_alert(ctx.sessions, alert_id)["plan"]
    assert plan["contract"]["price_bands"] == [["0.0", "0.0001"], ["1.0", "0.01"]]
    assert "entry limit 0.51237 rounded to 0.5123 (tick 0.0001)" in plan["notes"]
    orders = {o["orderRef"].rsplit(":", 1)[1]: o for o in sim.state()["orders"] if alert_id in o["orderRef"]}
    # ibsim checks prices against the band too (error 110 off the grid): both went through
    assert orders["entry"]["lmtPrice"] == 0.5123 and orders["tp"]["lmtPrice"] == 0.6124
