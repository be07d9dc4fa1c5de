"""Slippage and latency of an alert's fills (core/slippage.py, pure), as tables: the sign for buys
and sells filled above and below the reference, basis points, the multiplier, partial fills, the
reference's source in TradersPost's order, options on the underlying, the exits' own prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from core.slippage import (
    NO_ALERT_REFERENCE,
    NO_OPTION_REFERENCE,
    TRAILING,
    AlertRecord,
    FillLine,
    OrderLine,
    Reference,
    alert_reference,
    execution,
    fill_cost,
    multiplier_of,
    order_reference,
    percentile,
)

D = Decimal
T0 = datetime(2026, 11, 22, 14, 30, 0, tzinfo=UTC)


def fill(side: str, price: str, qty: str = "1", leg: str = "entry", after: float = 1.0) -> FillLine:
    return FillLine(leg, side, D(price), D(qty), T0 + timedelta(seconds=after))


@pytest.mark.parametrize(
    ("side", "price", "reference", "per_unit", "bps"),
    [
        # a buy filled above its reference cost money; below, it saved money
        ("BOT", "190.50", "190", 0.5, 26.3158),
        ("BOT", "189.50", "190", -0.5, -26.3158),
        # a sell filled below its reference cost money; above, it saved money
        ("SLD", "189.62", "190", 0.38, 20.0),
        ("SLD", "190.38", "190", -0.38, -20.0),
        # at the reference: nothing
        ("BOT", "190", "190", 0.0, 0.0),
        ("SLD", "190", "190", 0.0, 0.0),
        # IB's side names and the order's alike
        ("BUY", "101", "100", 1.0, 100.0),
        ("SELL", "99", "100", 1.0, 100.0),
    ],
)
def test_the_sign_is_positive_for_a_cost(
    side: str, price: str, reference: str, per_unit: float, bps: float
) -> None:
    cost = fill_cost([fill(side, price, "10")], Reference(D(reference), "price"))
    assert cost is not None
    assert cost["slippage_per_unit"] == pytest.approx(per_unit)
    assert cost["slippage"] == pytest.approx(per_unit * 10)
    assert cost["slippage_bps"] == pytest.approx(bps, abs=1e-4)
    assert cost["reference_source"] == "price" and cost["note"] is None


@pytest.mark.parametrize(
    ("multiplier", "plan", "amount"),
    [
        ("", {"contract": {"multiplier": ""}}, 2 * 0.25),  # a stock: 1
        ("50", {"contract": {"multiplier": "50"}}, 2 * 0.25 * 50),  # ES
        ("100", {"contract": {"multiplier": "100"}}, 2 * 0.25 * 100),  # an option
        ("none", None, 2 * 0.25),  # no plan: 1
        ("junk", {"contract": {"multiplier": "x"}}, 2 * 0.25),
    ],
)
def test_the_multiplier_counts_for_the_money_not_for_the_bps(
    multiplier: str, plan: Any, amount: float
) -> None:
    cost = fill_cost([fill("BOT", "5000.25", "2")], Reference(D(5000), "price"), multiplier_of(plan))
    assert cost is not None
    assert cost["slippage"] == pytest.approx(amount)
    assert cost["slippage_per_unit"] == pytest.approx(0.25)
    assert cost["slippage_bps"] == pytest.approx(0.5)


def test_partial_fills_are_volume_weighted() -> None:
    # 100 @ 10.00 and 300 @ 10.04: average 10.03, 3 cents a share over 400 shares
    fills = [fill("BOT", "10.00", "100"), fill("BOT", "10.04", "300", after=2)]
    cost = fill_cost(fills, Reference(D(10), "price"))
    assert cost is not None
    assert cost["avg_price"] == pytest.approx(10.03)
    assert cost["quantity"] == 400 and cost["fills"] == 2
    assert cost["slippage_per_unit"] == pytest.approx(0.03)
    assert cost["slippage"] == pytest.approx(12.0)
    assert cost["slippage_bps"] == pytest.approx(30.0)


def test_no_fill_no_cost_and_no_reference_keeps_the_average() -> None:
    assert fill_cost([], Reference(D(1), "price")) is None
    cost = fill_cost([fill("BOT", "190.5")], Reference(None, note=NO_ALERT_REFERENCE))
    assert cost is not None and cost["avg_price"] == 190.5
    assert cost["slippage"] is None and cost["slippage_bps"] is None and cost["note"] == NO_ALERT_REFERENCE


@pytest.mark.parametrize(
    ("payload", "plan", "price", "source", "note"),
    [
        ({"price": 190, "limitPrice": 189, "stopPrice": 191}, None, "190", "price", None),
        ({"price": None, "limitPrice": 189, "stopPrice": 191}, None, "189", "limitPrice", None),
        ({"price": None, "limitPrice": None, "stopPrice": 191.5}, None, "191.5", "stopPrice", None),
        ({"price": None, "limitPrice": None, "stopPrice": None}, None, None, None, NO_ALERT_REFERENCE),
        (None, None, None, None, NO_ALERT_REFERENCE),
        # an option chosen from the underlying's alert: the underlying's price is no reference
        ({"price": 190, "optionType": "call"}, {"option": {"rule": "x"}}, None, None, NO_OPTION_REFERENCE),
        # ... the option's mid when the worker chose it is
        (
            {"price": 190, "optionType": "call"},
            {"option": {"entry": {"limit": "4.05", "mid": "4.00", "why": "mid + 1 tick"}}},
            "4.00",
            "option mid when chosen",
            None,
        ),
        # an option's own ticker: its price is the option's
        ({"ticker": "AAPL250117C00150000", "price": 4.1}, None, "4.1", "price", None),
    ],
)
def test_the_alerts_reference_in_traderposts_order(
    payload: Any, plan: Any, price: str | None, source: str | None, note: str | None
) -> None:
    reference = alert_reference(payload, plan)
    assert reference == Reference(None if price is None else D(price), source, note)


@pytest.mark.parametrize(
    ("order", "price", "source"),
    [
        (OrderLine("tp", "LMT", limit_price=D("192")), "192", "limit price"),
        (OrderLine("sl", "STP", stop_price=D("188")), "188", "stop price"),
        (OrderLine("sl", "STP LMT", D("187.5"), D("188")), "188", "stop price"),
        (OrderLine("sl", "TRAIL", stop_price=D("188")), None, None),
        (OrderLine("tp", "MKT"), None, None),
        (None, None, None),
    ],
)
def test_an_exits_reference_is_its_own_price(
    order: OrderLine | None, price: str | None, source: str | None
) -> None:
    reference = order_reference(order)
    assert reference.price == (None if price is None else D(price)) and reference.source == source
    if order is not None and order.order_type == "TRAIL":
        assert reference.note == TRAILING


def _record(**changes: Any) -> AlertRecord:
    base: dict[str, Any] = {
        "payload": {"price": 190, "action": "buy", "time": "2026-11-22T14:30:00Z"},
        "plan": {"contract": {"currency": "USD", "multiplier": ""}},
        "orders": [
            OrderLine("entry", "MKT"),
            OrderLine("tp", "LMT", limit_price=D(192)),
            OrderLine("sl", "STP", stop_price=D(189)),
        ],
        "fills": [fill("BOT", "190.40", "2", after=1.5)],
        "signal_time": None,
        "received_at": T0 + timedelta(seconds=0.5),
    }
    base.update(changes)
    return AlertRecord(**base)


def test_an_alert_with_its_entry_and_a_stop_loss_filled() -> None:
    record = _record(
        fills=[
            fill("BOT", "190.40", "1", after=1.5),
            fill("BOT", "190.60", "1", after=2.0),
            fill("SLD", "188.90", "2", leg="sl", after=60),
        ]
    )
    doc = execution(record)
    assert doc is not None and doc["currency"] == "USD" and doc["multiplier"] == 1
    own = doc["alert"]
    assert own is not None and own["legs"] == ["entry"] and own["side"] == "BUY"
    assert own["avg_price"] == pytest.approx(190.5) and own["slippage"] == pytest.approx(1.0)
    # the stop sold 10 cents below its trigger: a cost, against the stop's own price
    [stop] = doc["exits"]
    assert (
        stop["legs"] == ["sl"] and stop["reference_price"] == 189 and stop["reference_source"] == "stop price"
    )
    assert stop["slippage_per_unit"] == pytest.approx(0.1) and stop["slippage"] == pytest.approx(0.2)
    # latency from the payload's time (a fan-out child stores none in its column) to the first fill
    latency = doc["latency"]
    assert latency["signal_to_fill_seconds"] == 1.5 and latency["arrival_to_fill_seconds"] == 1.0
    assert latency["signal_to_arrival_seconds"] == 0.5 and latency["signal_to_last_fill_seconds"] == 2.0


def test_a_reversal_counts_its_close_and_its_open_and_the_stored_signal_time_wins() -> None:
    record = _record(
        payload={"price": 100, "action": "sell", "time": "2026-11-22T00:00:00Z"},
        fills=[fill("SLD", "99.90", "10", leg="close"), fill("SLD", "99.80", "10", leg="entry", after=3)],
        signal_time=T0,
    )
    doc = execution(record)
    assert doc is not None and doc["alert"] is not None
    assert doc["alert"]["legs"] == ["close", "entry"] and doc["alert"]["side"] == "SELL"
    assert doc["alert"]["slippage"] == pytest.approx(3.0)  # 10 x 0.10 + 10 x 0.20
    assert doc["latency"]["signal_to_fill_seconds"] == 1.0


def test_only_exits_filled_and_nothing_filled() -> None:
    assert execution(_record(fills=[])) is None
    doc = execution(_record(fills=[fill("SLD", "192.05", "2", leg="tp")]))
    assert doc is not None and doc["alert"] is None
    [tp] = doc["exits"]
    assert tp["slippage_per_unit"] == pytest.approx(-0.05)  # sold above the limit: no cost
    assert doc["latency"]["signal_to_fill_seconds"] is None  # the alert's own orders never filled


def test_percentiles() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.9) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([float(n) for n in range(1, 11)], 0.9) == pytest.approx(9.1)


@pytest.mark.parametrize(
    ("recorded_after", "expected_after"),
    [
        (0.35, 0.35),  # reported live: IB's whole second refined by the recording's milliseconds
        (1.9, 1.9),
        (4.0, 0.0),  # recorded later (found after a reconnect): IB's time
        (-0.1, 0.0),  # IB's clock ahead of ours: IB's time
        (None, 0.0),
    ],
)
def test_a_fills_time_is_refined_when_it_was_reported_live(
    recorded_after: float | None, expected_after: float
) -> None:
    recorded = None if recorded_after is None else T0 + timedelta(seconds=recorded_after)
    line = FillLine("entry", "BOT", D(1), D(1), T0, recorded)
    assert line.at == T0 + timedelta(seconds=expected_after)
