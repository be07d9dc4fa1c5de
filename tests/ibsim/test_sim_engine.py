"""The matching engine without sockets: events, fills, brackets, OCA, TIF, rejections, bookkeeping."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from ibsim_helpers import FakeClock

from ibsim.catalog import ContractQuery, build_catalog
from ibsim.engine import (
    CommissionEvent,
    Engine,
    ExecutionEvent,
    OpenOrderEvent,
    OrderErrorEvent,
    OrderStatusEvent,
    PositionEvent,
    PriceEvent,
    WhatIfEvent,
)
from ibsim.framing import UNSET_DOUBLE
from ibsim.messages import ExecFilter
from ibsim.model import OrderRequest

CATALOG = build_catalog(today=dt.date(2025, 1, 2))
AAPL = ContractQuery(symbol="AAPL", sec_type="STK", exchange="SMART", currency="USD")
ES = ContractQuery(symbol="ES", sec_type="FUT", last_trade_date_or_contract_month="202503", exchange="CME")
EUR = ContractQuery(symbol="EUR", sec_type="CASH", exchange="IDEALPRO", currency="USD")
AAPL_ID = 265598


START = 1_735_819_200.0  # 2025-01-02 12:00 UTC, the catalog's today


@pytest.fixture
def engine() -> Engine:
    return Engine(CATALOG, clock=FakeClock(START))


def req(order_id: int, action: str = "BUY", qty: float = 100, otype: str = "MKT", contract=AAPL, **kw: Any):
    return OrderRequest(
        order_id=order_id, contract=contract, action=action, total_quantity=qty, order_type=otype, **kw
    )


def kinds(events) -> list[str]:
    out = []
    for e in events:
        if isinstance(e, OrderStatusEvent | OpenOrderEvent):
            out.append(f"{type(e).__name__[:-5]}:{e.order.order_id}:{e.order.status}")
        elif isinstance(e, OrderErrorEvent):
            out.append(f"Error:{e.order_id}:{e.code}")
        else:
            out.append(type(e).__name__[:-5])
    return out


def status(engine: Engine, order_id: int, client_id: int = 1) -> str:
    return engine.orders[(client_id, order_id)].status


def test_market_order_fills_in_tws_message_order(engine: Engine) -> None:
    events = engine.place(1, req(1, order_ref="tv2ib:1:entry"))
    assert kinds(events) == [
        "OpenOrder:1:Submitted",
        "OrderStatus:1:Submitted",
        "Execution",
        "OrderStatus:1:Filled",
        "OpenOrder:1:Filled",
        "Commission",
        "Position",
    ]
    ex = next(e.execution for e in events if isinstance(e, ExecutionEvent))
    assert (ex.price, ex.shares, ex.side, ex.order_ref, ex.client_id) == (
        190.0,
        100,
        "BOT",
        "tv2ib:1:entry",
        1,
    )
    assert ex.commission == 1.0 and ex.realized_pnl is None


def test_staged_legs_wait_for_the_transmitting_leg(engine: Engine) -> None:
    assert engine.place(1, req(10, otype="LMT", lmt_price=180.0, transmit=False)) == []
    assert engine.place(1, req(11, "SELL", otype="LMT", lmt_price=200.0, parent_id=10, transmit=False)) == []
    events = engine.place(1, req(12, "SELL", otype="STP", aux_price=170.0, parent_id=10))
    assert kinds(events) == [
        "OpenOrder:10:Submitted",
        "OrderStatus:10:Submitted",
        "OpenOrder:11:PreSubmitted",
        "OrderStatus:11:PreSubmitted",
        "OpenOrder:12:PreSubmitted",
        "OrderStatus:12:PreSubmitted",
    ]
    # the parent fills at its limit when touched, which releases the children
    events = engine.set_price(AAPL_ID, 179.5)
    assert "OrderStatus:10:Filled" in kinds(events)
    assert kinds(events)[-4:] == [
        "OpenOrder:11:Submitted",
        "OrderStatus:11:Submitted",
        "OpenOrder:12:Submitted",
        "OrderStatus:12:Submitted",
    ]
    assert engine.orders[(1, 10)].avg_fill_price == 180.0
    events = engine.set_price(AAPL_ID, 169.0)
    assert status(engine, 12) == "Filled" and status(engine, 11) == "Cancelled"
    assert "Error:11:202" in kinds(events)
    assert engine.executions[-1].price == 169.0  # a stop fills at the market


def test_bracket_child_partial_fill_reduces_sibling(engine: Engine) -> None:
    engine.place(1, req(1, transmit=False))
    engine.place(1, req(2, "SELL", otype="LMT", lmt_price=195.0, parent_id=1, transmit=False))
    engine.place(1, req(3, "SELL", otype="STP", aux_price=185.0, parent_id=1))
    assert status(engine, 1) == "Filled" and status(engine, 2) == "Submitted"
    engine.set_fill_limit(30, con_id=AAPL_ID)
    engine.set_price(AAPL_ID, 196.0)
    assert engine.orders[(1, 2)].filled == 30
    assert engine.orders[(1, 3)].total_quantity == 70
    engine.set_fill_limit(None, con_id=AAPL_ID)
    engine.set_price(AAPL_ID, 196.5)
    assert status(engine, 2) == "Filled" and status(engine, 3) == "Cancelled"
    assert engine.positions[("DU1234567", AAPL_ID)].quantity == 0


def test_explicit_oca_types(engine: Engine) -> None:
    engine.place(1, req(1, otype="LMT", lmt_price=185.0, oca_group="A", oca_type=1))
    engine.place(1, req(2, otype="LMT", lmt_price=186.0, oca_group="A", oca_type=1))
    engine.set_fill_limit(10, con_id=AAPL_ID)
    engine.set_price(AAPL_ID, 185.5)
    assert engine.orders[(1, 2)].filled == 10 and status(engine, 1) == "Cancelled"  # type 1: any fill cancels
    engine.place(1, req(3, otype="LMT", lmt_price=150.0, oca_group="B", oca_type=2))
    engine.place(1, req(4, otype="LMT", lmt_price=151.0, oca_group="B", oca_type=2))
    engine.set_price(AAPL_ID, 150.5)
    assert engine.orders[(1, 4)].filled == 10
    assert engine.orders[(1, 3)].total_quantity == 90 and status(engine, 3) == "Submitted"  # type 2: reduced


def test_limit_prices_on_arrival_and_resting(engine: Engine) -> None:
    engine.place(1, req(1, otype="LMT", lmt_price=191.0))  # marketable: price improvement
    assert engine.executions[-1].price == 190.0
    engine.place(1, req(2, "SELL", otype="LMT", lmt_price=195.0))
    engine.set_price(AAPL_ID, 197.0)  # resting: filled at the limit
    assert engine.executions[-1].price == 195.0


def test_stop_limit_triggers_then_waits_for_limit(engine: Engine) -> None:
    engine.place(1, req(1, otype="STP LMT", aux_price=192.0, lmt_price=192.5))
    engine.set_price(AAPL_ID, 193.0)  # triggered, but above the limit
    assert status(engine, 1) == "Submitted" and engine.orders[(1, 1)].triggered
    engine.set_price(AAPL_ID, 192.4)
    assert status(engine, 1) == "Filled"


@pytest.mark.parametrize(
    ("kw", "stop_after_rise"), [({"aux_price": 2.0}, 198.0), ({"trailing_percent": 1.0}, 198.0)]
)
def test_trailing_stop_ratchets(engine: Engine, kw: dict[str, float], stop_after_rise: float) -> None:
    engine.place(1, req(1, "SELL", otype="TRAIL", **kw))
    engine.set_price(AAPL_ID, 200.0)
    assert engine.orders[(1, 1)].trail_stop_price == stop_after_rise
    engine.set_price(AAPL_ID, 195.0 if "aux_price" not in kw else 199.0)
    expected = "Filled" if "aux_price" not in kw else "Submitted"
    assert status(engine, 1) == expected
    engine.set_price(AAPL_ID, 197.0)
    assert status(engine, 1) == "Filled"


def test_ioc_and_fok(engine: Engine) -> None:
    engine.set_fill_limit(40, con_id=AAPL_ID)
    engine.place(1, req(1, tif="IOC"))
    assert engine.orders[(1, 1)].filled == 40 and status(engine, 1) == "Cancelled"
    engine.place(1, req(2, tif="FOK"))
    assert engine.orders[(1, 2)].filled == 0 and status(engine, 2) == "Cancelled"
    engine.place(1, req(3, otype="LMT", lmt_price=100.0, tif="IOC"))
    assert status(engine, 3) == "Cancelled"


def test_modify_duplicate_and_done(engine: Engine) -> None:
    engine.place(1, req(5, otype="LMT", lmt_price=180.0, order_ref="r"))
    events = engine.place(1, req(5, qty=50, otype="LMT", lmt_price=181.0, order_ref="r"))
    assert kinds(events) == ["OpenOrder:5:Submitted", "OrderStatus:5:Submitted"]
    order = engine.orders[(1, 5)]
    assert (order.total_quantity, order.lmt_price, order.perm_id) == (50, 181.0, 900000001)
    assert kinds(engine.place(1, req(4))) == ["Error:4:103"]
    engine.place(1, req(5, qty=50, otype="LMT", lmt_price=191.0))  # modified into the market: fills
    assert status(engine, 5) == "Filled"
    assert kinds(engine.place(1, req(5, qty=50))) == ["Error:5:104"]
    assert engine.place(2, req(5))  # order ids are per client
    assert status(engine, 5, client_id=2) == "Filled"


def test_cancel_paths(engine: Engine) -> None:
    assert kinds(engine.cancel(1, 99)) == ["Error:99:10147"]
    engine.place(1, req(1, otype="LMT", lmt_price=100.0))
    engine.place(1, req(2, "SELL", otype="LMT", lmt_price=300.0, parent_id=1))
    assert status(engine, 2) == "PreSubmitted"
    events = engine.cancel(1, 1)
    assert kinds(events) == [
        "OrderStatus:1:Cancelled",
        "Error:1:202",
        "OrderStatus:2:Cancelled",
        "Error:2:202",
    ]
    assert kinds(engine.cancel(1, 1)) == ["Error:1:10148"]
    assert engine.cancel(2, 1)[0].code == 10147  # another client's order id


def test_global_cancel_spans_clients(engine: Engine) -> None:
    engine.place(1, req(1, otype="LMT", lmt_price=100.0))
    engine.place(2, req(1, otype="LMT", lmt_price=100.0))
    engine.place(2, req(2, otype="LMT", lmt_price=100.0, transmit=False))
    engine.global_cancel()
    assert {o.status for o in engine.orders.values()} == {"Cancelled"}


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (req(1, otype="LMT", lmt_price=190.003), 110),
        (req(1, "SELL", otype="STP", aux_price=185.001), 110),
        (req(1, otype="PEG MID"), 201),  # an order type ibsim does not simulate
        (req(1, qty=0), 201),
        (req(1, qty=-5), 201),
        (req(1, qty=1.5), 201),
        (req(1, otype="LMT"), 201),
        (req(1, tif="XYZ"), 201),
        (req(1, contract=ContractQuery(symbol="NOPE", sec_type="STK")), 200),
        (req(1, contract=ContractQuery(symbol="ES", sec_type="FUT")), 200),  # ambiguous: several expiries
        (req(1, parent_id=77), 201),
        (req(1, account="U999"), 201),
        (req(1, "SELL", otype="TRAIL", aux_price=0.0), 201),
        (req(1, "SELL", otype="TRAIL", trailing_percent=150.0), 201),
        (req(1, "SELL", otype="TRAIL"), 201),
        (req(1, "SELL", otype="TRAIL", aux_price=0.015), 110),
    ],
)
def test_rejections(engine: Engine, request_: OrderRequest, code: int) -> None:
    events = engine.place(1, request_)
    assert [(type(e), e.code) for e in events] == [(OrderErrorEvent, code)]
    assert not engine.orders


def test_tick_grids_per_asset_class(engine: Engine) -> None:
    assert kinds(engine.place(1, req(1, otype="LMT", lmt_price=4999.30, contract=ES, qty=1))) == [
        "Error:1:110"
    ]
    assert (
        engine.place(1, req(2, otype="LMT", lmt_price=4999.25, contract=ES, qty=1))[0].order.status
        == "Submitted"
    )
    assert kinds(engine.place(1, req(3, otype="LMT", lmt_price=1.08003, contract=EUR, qty=20000))) == [
        "Error:3:110"
    ]
    assert engine.place(1, req(4, otype="LMT", lmt_price=1.08005, contract=EUR, qty=20000))


def test_reject_next_pause_resume_and_manual_fill(engine: Engine) -> None:
    engine.reject_queue.append((201, "Order rejected - reason:test"))
    assert kinds(engine.place(1, req(1))) == ["Error:1:201"]
    engine.pause_fills()
    engine.place(1, req(2))
    assert status(engine, 2) == "Submitted"
    assert "OrderStatus:2:Filled" in kinds(engine.resume_fills())
    engine.place(1, req(3, otype="LMT", lmt_price=100.0))
    engine.manual_fill(1, 3, 25, 99.0)
    order = engine.orders[(1, 3)]
    assert (order.filled, order.avg_fill_price, order.status) == (25, 99.0, "Submitted")


def test_what_if_stores_nothing(engine: Engine) -> None:
    (event,) = engine.place(1, req(1, what_if=True))
    assert isinstance(event, WhatIfEvent)
    assert event.state.init_margin_change == pytest.approx(100 * 190 * 0.25)
    assert event.state.commission == 1.0
    assert not engine.orders and not engine.executions


def test_stock_round_trip_bookkeeping(engine: Engine) -> None:
    engine.place(1, req(1))
    values = engine.account_values("DU1234567")
    assert values["TotalCashValue"] == 1_000_000 - 19_000 - 1
    events = engine.set_price(AAPL_ID, 191.0)
    assert [type(e) for e in events] == [PriceEvent, PositionEvent]
    values = engine.account_values("DU1234567")
    assert values["UnrealizedPnL"] == 100.0 and values["GrossPositionValue"] == 19_100.0
    assert values["NetLiquidation"] == 1_000_000 - 1 + 100
    engine.place(1, req(2, "SELL"))
    ex = engine.executions[-1]
    assert ex.realized_pnl == pytest.approx(100 - 1)
    values = engine.account_values("DU1234567")
    assert values["RealizedPnL"] == 100.0 and values["NetLiquidation"] == 1_000_000 + 100 - 2
    assert engine.positions[("DU1234567", AAPL_ID)].quantity == 0


def test_futures_bookkeeping_and_flip(engine: Engine) -> None:
    engine.place(1, req(1, contract=ES, qty=2))
    es_id = engine.orders[(1, 1)].con_id
    pos = engine.positions[("DU1234567", es_id)]
    assert (pos.quantity, pos.avg_cost) == (2, 250_000.0)
    assert engine.account_values("DU1234567")["TotalCashValue"] == 1_000_000 - 1.70
    engine.set_price(es_id, 4990.0)
    assert engine.account_values("DU1234567")["UnrealizedPnL"] == -1000.0
    engine.place(1, req(2, "SELL", contract=ES, qty=3))  # closes 2, opens 1 short
    assert (pos.quantity, pos.avg_cost) == (-1, 249_500.0)
    assert engine.accounts["DU1234567"].realized_pnl == -1000.0


def test_forex_commission_and_fx(engine: Engine) -> None:
    engine.place(1, req(1, contract=EUR, qty=100_000))
    ex = engine.executions[-1]
    assert ex.commission == pytest.approx(2.16)
    jpy = ContractQuery(symbol="USD", sec_type="CASH", currency="JPY")
    engine.place(1, req(2, contract=jpy, qty=10_000))
    assert engine.account_values("DU1234567")["GrossPositionValue"] == pytest.approx(108_000 + 10_000)


def test_executions_filter(engine: Engine) -> None:
    engine.place(1, req(1))
    engine.place(2, req(1, "SELL", qty=10))
    engine.place(2, req(2, contract=ES, qty=1))
    assert len(engine.executions_matching(ExecFilter())) == 3
    assert len(engine.executions_matching(ExecFilter(client_id=2))) == 2
    assert len(engine.executions_matching(ExecFilter(side="SELL"))) == 1
    assert len(engine.executions_matching(ExecFilter(symbol="AAPL"))) == 2
    assert len(engine.executions_matching(ExecFilter(sec_type="FUT"))) == 1
    assert len(engine.executions_matching(ExecFilter(time="20250102 10:00:00"))) == 3
    assert engine.executions_matching(ExecFilter(time="20250103 00:00:00")) == []
    assert engine.executions_matching(ExecFilter(account="DU999")) == []


def test_dump_and_load_round_trip(engine: Engine) -> None:
    engine.place(1, req(1))
    engine.place(1, req(2, "SELL", otype="LMT", lmt_price=250.0, order_ref="tv2ib:1:tp"))
    engine.set_price(AAPL_ID, 191.0)
    restored = Engine(CATALOG, clock=FakeClock(START))
    restored.load(engine.dump())
    assert restored.state() == engine.state()
    assert restored.next_valid_id(1) == 3
    restored.place(1, req(3))
    assert restored.orders[(1, 3)].perm_id == 900000003
    assert len({e.exec_id for e in restored.executions}) == 2


def test_commission_report_unset_for_opening(engine: Engine) -> None:
    events = engine.place(1, req(1))
    (commission,) = [e for e in events if isinstance(e, CommissionEvent)]
    assert commission.execution.realized_pnl is None
    assert engine.orders[(1, 1)].lmt_price == UNSET_DOUBLE


def test_load_drops_contracts_that_left_the_catalog(engine: Engine) -> None:
    engine.place(1, req(1, contract=ES, qty=1))
    engine.place(1, req(2, otype="LMT", lmt_price=100.0, contract=ES, qty=1))
    engine.place(1, req(3))
    rolled = Engine(build_catalog(today=dt.date(2025, 6, 1)), clock=FakeClock(START))  # ESH5 has expired
    rolled.load(engine.dump())
    assert [o.order_id for o in rolled.orders.values()] == [3]
    assert [e.order_id for e in rolled.executions] == [3]
    assert list(rolled.positions) == [("DU1234567", AAPL_ID)]
    assert rolled.account_values("DU1234567")["GrossPositionValue"] == 19_000.0


def test_margin_check_is_opt_in() -> None:
    lax = Engine(CATALOG, clock=FakeClock(START))
    assert lax.place(1, req(1, contract=ES, qty=100))[0].order.status == "Submitted"  # 1.5 M margin, 1 M cash
    strict = Engine(CATALOG, clock=FakeClock(START), margin_check=True)
    (rejection,) = strict.place(1, req(1, contract=ES, qty=100))
    assert rejection.code == 201 and "MUST EXCEED THE INITIAL MARGIN" in rejection.text
    strict.place(1, req(2, contract=ES, qty=10))  # 150 k margin: fine
    assert strict.orders[(1, 2)].status == "Filled"
    strict.place(1, req(3, "SELL", contract=ES, qty=10))  # closing frees margin: always accepted
    assert strict.orders[(1, 3)].status == "Filled"


def test_on_close_orders_fill_only_in_the_closing_auction(engine: Engine) -> None:
    """MOC / LOC (tv2ib's timeInForce cls) rest through price moves and fill at end_of_day: MOC at
    the closing price, LOC only when that price reaches its limit (else it expires)."""
    engine.place(1, req(1, otype="MOC", tif="DAY"))
    engine.place(1, req(2, "SELL", otype="LOC", lmt_price=195.0, tif="DAY"))
    engine.place(1, req(3, otype="LOC", lmt_price=191.0, tif="DAY"))
    engine.set_price(AAPL_ID, 190.5)
    assert [status(engine, n) for n in (1, 2, 3)] == ["Submitted"] * 3
    events = engine.end_of_day()
    assert (status(engine, 1), engine.orders[(1, 1)].avg_fill_price) == ("Filled", 190.5)
    assert (status(engine, 3), engine.orders[(1, 3)].avg_fill_price) == ("Filled", 190.5)
    assert status(engine, 2) == "Cancelled"  # the close (190.5) never reached its 195 limit
    assert "Error:2:202" in kinds(events)
    assert kinds(engine.place(1, req(4, otype="LOC", tif="DAY"))) == ["Error:4:201"]  # a LOC needs a limit


def test_end_of_day_expires_day_orders_only(engine: Engine) -> None:
    engine.place(1, req(1, otype="LMT", lmt_price=100.0, tif="DAY"))
    engine.place(1, req(2, otype="LMT", lmt_price=100.0, tif="GTC"))
    engine.place(1, req(3, otype="LMT", lmt_price=100.0))  # "" means DAY
    events = engine.end_of_day()
    assert kinds(events) == [
        "OrderStatus:1:Cancelled",
        "Error:1:202",
        "OrderStatus:3:Cancelled",
        "Error:3:202",
    ]
    assert status(engine, 2) == "Submitted"
