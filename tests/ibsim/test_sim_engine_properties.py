"""Property tests: any sequence of orders, prices, cancels and fill limits keeps the books consistent."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibsim.catalog import ContractQuery, build_catalog
from ibsim.engine import Engine, ExecutionEvent, OrderStatusEvent
from ibsim.model import OrderRequest

CATALOG = build_catalog(today=dt.date(2025, 1, 2))
AAPL = ContractQuery(con_id=265598)
TICKS = st.integers(min_value=17_000, max_value=21_000).map(lambda c: c / 100)

place = st.tuples(
    st.just("place"),
    st.sampled_from(["BUY", "SELL"]),
    st.integers(1, 50),
    st.sampled_from(["MKT", "LMT", "STP", "STP LMT", "TRAIL"]),
    TICKS,
    TICKS,
    st.sampled_from(["DAY", "GTC", "IOC", "FOK"]),
    st.booleans(),  # as a bracket child of the previous order
    st.sampled_from(["", "oca1", "oca2"]),
    st.sampled_from([1, 2, 3]),
)
price = st.tuples(st.just("price"), TICKS)
cancel = st.tuples(st.just("cancel"), st.integers(1, 30))
limit = st.tuples(st.just("limit"), st.one_of(st.none(), st.integers(1, 20)))
modify = st.tuples(st.just("modify"), st.integers(1, 30), st.integers(1, 60), TICKS)
step = st.one_of(place, price, price, cancel, limit, modify)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=40))
def test_books_stay_consistent(steps: list[tuple]) -> None:
    engine = Engine(CATALOG, clock=lambda: 1_735_819_200.0)
    next_id = 1
    last_status: dict[int, str] = {}
    for action in steps:
        kind = action[0]
        if kind == "place":
            _, side, qty, otype, lmt, aux, tif, child, oca, oca_type = action
            events = engine.place(
                1,
                OrderRequest(
                    order_id=next_id,
                    contract=AAPL,
                    action=side,
                    total_quantity=qty,
                    order_type=otype,
                    lmt_price=lmt,
                    aux_price=2.0 if otype == "TRAIL" else aux,
                    tif=tif,
                    parent_id=next_id - 1 if child and next_id > 1 else 0,
                    oca_group=oca,
                    oca_type=oca_type,
                ),
            )
            next_id += 1
        elif kind == "price":
            events = engine.set_price(265598, action[1])
        elif kind == "cancel":
            events = engine.cancel(1, action[1])
        elif kind == "limit":
            engine.set_fill_limit(action[1], con_id=265598)
            events = engine.rematch_all() if action[1] is None else []
        else:
            _, oid, qty, lmt = action
            existing = engine.orders.get((1, oid))
            if existing is None:
                continue
            events = engine.place(
                1,
                OrderRequest(
                    order_id=oid,
                    contract=AAPL,
                    action=existing.action,
                    total_quantity=qty,
                    order_type="LMT",
                    lmt_price=lmt,
                ),
            )
        for event in events:
            if isinstance(event, OrderStatusEvent):
                last_status[event.order.order_id] = event.order.status
            if isinstance(event, ExecutionEvent):
                assert event.execution.shares > 0

        # invariants after every step
        for order in engine.orders.values():
            assert 0 <= order.filled <= order.total_quantity + 1e-9
            if order.status == "Filled":
                assert abs(order.remaining) < 1e-9
            if order.filled:
                fills = [e for e in engine.executions if e.order_id == order.order_id]
                assert abs(sum(e.shares for e in fills) - order.filled) < 1e-9
                vwap = sum(e.shares * e.price for e in fills) / order.filled
                assert abs(vwap - order.avg_fill_price) < 1e-6
            if order.parent_id and order.status == "Filled":
                assert engine.orders[(1, order.parent_id)].status == "Filled"  # children never fill first
        signed = sum(e.shares if e.side == "BOT" else -e.shares for e in engine.executions)
        pos = engine.positions.get(("DU1234567", 265598))
        assert abs((pos.quantity if pos else 0.0) - signed) < 1e-9
        cash = 1_000_000.0 - sum(
            (e.shares * e.price if e.side == "BOT" else -e.shares * e.price) + e.commission
            for e in engine.executions
        )
        assert abs(engine.accounts["DU1234567"].cash - cash) < 1e-6
        # what clients saw last matches the book
        for oid, status in last_status.items():
            assert engine.orders[(1, oid)].status == status
