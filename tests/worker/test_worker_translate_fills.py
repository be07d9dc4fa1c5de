"""An order known only from reqCompletedOrders (the worker restarted after IB filled it) gets its
filled quantity and average price from its executions: ib_async gives such an order a status
("Filled") without quantities."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ib_async import CommissionReport, Execution, Fill, Order, OrderStatus, Stock, Trade

from worker.ib.translate import order_snapshot


def _trade(status: OrderStatus, *executions: tuple[float, float]) -> Trade:
    order = Order(
        orderId=5, permId=77, action="BUY", totalQuantity=10, orderType="MKT", orderRef="tv2ib:A:entry"
    )
    fills = [
        Fill(
            Stock("AAPL", "SMART", "USD", conId=265598),
            Execution(execId=f"e{i}", shares=q, price=p),
            CommissionReport(),
            datetime.now(UTC),
        )
        for i, (q, p) in enumerate(executions)
    ]
    return Trade(Stock("AAPL", "SMART", "USD", conId=265598), order, status, fills, [])


def test_a_completed_order_takes_its_fill_from_the_executions():
    snap = order_snapshot(_trade(OrderStatus(orderId=5, status="Filled"), (4, 190.0), (6, 190.5)))
    assert (snap.status, snap.filled, snap.avg_fill_price) == ("Filled", Decimal(10), Decimal("190.3"))


def test_the_order_status_wins_when_it_reports_a_fill():
    status = OrderStatus(orderId=5, status="Filled", filled=10, remaining=0, avgFillPrice=190.25)
    snap = order_snapshot(_trade(status, (4, 190.0)))
    assert (snap.filled, snap.avg_fill_price) == (Decimal(10), Decimal("190.25"))


def test_nothing_filled_has_no_average_price():
    snap = order_snapshot(_trade(OrderStatus(orderId=5, status="Cancelled")))
    assert (snap.status, snap.filled, snap.avg_fill_price) == ("Cancelled", Decimal(0), None)
