"""Cancelling and closing at IB: cancel and wait for IB's confirmation, close a position at market,
flatten the account (runs on the IB loop)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from ib_async import Contract, MarketOrder, Trade

from core.models import IB_DONE_STATUSES, IB_WORKING_STATUSES
from worker.decision.positions import side_closing
from worker.ib.connection import IBConnection
from worker.ib.orders import OrderBook
from worker.ib.pacing import wait_drained
from worker.ib.translate import order_snapshot
from worker.recording.snapshots import OrderSnapshot


class Canceller:
    """Cancels for one connection; closes positions at market."""

    def __init__(self, conn: IBConnection, orders: OrderBook) -> None:
        self.conn = conn
        self.ib = conn.ib
        self.orders = orders

    async def cancel_working(self, con_id: int | None, wait: float = 5.0) -> list[OrderSnapshot]:
        """Cancel our working orders (for ``con_id``, or all) and wait until IB confirms."""
        self.conn.require_connected()
        targets = [
            t
            for t in self.conn.trade_index.working()
            if (con_id is None or t.contract.conId == con_id)
            and t.order.clientId == self.conn.client_id
            and self.orders.on_account(t)
            and (t.order.orderRef or "").startswith("tv2ib")
            and t.orderStatus.status in IB_WORKING_STATUSES
        ]
        for trade in targets:
            if trade.orderStatus.status != "PendingCancel":
                await self.conn.pacer.acquire(1)
                self.ib.cancelOrder(trade.order)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(
            t.orderStatus.status not in IB_DONE_STATUSES for t in targets
        ):
            await asyncio.sleep(0.02)
        return [order_snapshot(t) for t in targets]

    async def cancel_trades(self, trades: Sequence[Trade], wait: float = 5.0) -> list[OrderSnapshot]:
        """Cancel ``trades`` and wait (bounded) until IB confirms each is done (cancelled, or filled
        meanwhile). Raises :class:`TemporaryError` when IB has not confirmed them all in time."""
        self.conn.require_connected()
        for trade in trades:
            if (
                trade.orderStatus.status not in IB_DONE_STATUSES
                and trade.orderStatus.status != "PendingCancel"
            ):
                await self.conn.pacer.acquire(1)
                self.ib.cancelOrder(trade.order)
        await self.orders.until(lambda: all(t.orderStatus.status in IB_DONE_STATUSES for t in trades), wait,
                                f"IB did not confirm cancelling {[t.order.orderRef for t in trades]}")  # fmt: skip
        return [order_snapshot(t) for t in trades]

    async def close_at_market(self, contract: Contract, position: Decimal, ref: str, tif: str = "") -> None:
        """Close ``position`` with a market order under ``ref``."""
        order = MarketOrder(side_closing(position), float(abs(position)))
        order.orderRef = ref
        order.account = self.conn.account or ""
        if tif:
            order.tif = tif
        await self.conn.pacer.acquire(1)
        self.conn.require_connected()
        self.ib.placeOrder(contract, order)

    async def close_all(
        self, positions: dict[int, Decimal], contract_for: Callable[[int], Contract]
    ) -> list[str]:
        """Close every position at market (the flatten, once our orders are cancelled); returns
        ``AAPL 10`` per position, once the orders are on the wire."""
        closing = []
        stamp = int(time.time())
        for con_id, qty in positions.items():
            contract = contract_for(con_id)
            order = MarketOrder("SELL" if qty > 0 else "BUY", float(abs(qty)))
            order.orderRef = f"tv2ib-flatten:{stamp}:{con_id}"
            order.account = self.conn.account or ""
            await self.conn.pacer.acquire(1)
            self.ib.placeOrder(contract, order)
            closing.append(f"{contract.localSymbol or contract.symbol} {format(qty.normalize(), 'f')}")
        await wait_drained(self.ib.client)
        return closing
