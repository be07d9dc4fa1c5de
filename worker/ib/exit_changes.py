"""Changing a position's exits at IB, one confirmed change at a time (runs on the IB loop).

What to change is decided by the pure :func:`worker.decision.positions.exit_changes`; this module
applies it: cancel, shrink or grow by modification (the order keeps its kind), or place a new exit.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ib_async import Contract, Trade

from core.models import IB_DONE_STATUSES, IB_ENDED_UNFILLED_STATUSES
from worker.decision.exits import exit_leg
from worker.decision.model import OCA_TYPE
from worker.decision.order_types import ExitOrder
from worker.decision.positions import ExitChange, shrank
from worker.errors import TemporaryError
from worker.ib.cancelling import Canceller
from worker.ib.connection import IBConnection
from worker.ib.exit_orders import reprice_exit
from worker.ib.orders import OrderBook, remaining
from worker.ib.placement import order_for
from worker.ib.translate import num, order_snapshot
from worker.recording.snapshots import OrderSnapshot

log = logging.getLogger(__name__)


class ExitDesk:
    """Applies exit changes for one connection."""

    def __init__(self, conn: IBConnection, orders: OrderBook, cancels: Canceller) -> None:
        self.conn = conn
        self.ib = conn.ib
        self.orders = orders
        self.cancels = cancels

    async def apply(self, contract_of: Callable[[], Contract], changes: list[ExitChange], alert_id: str,
                    prices: Mapping[str, Decimal], oca_group: str, wait: float,
                    orders: Mapping[str, ExitOrder] | None,
                    position_of: Callable[[], Decimal] | None = None) -> list[OrderSnapshot]:  # fmt: skip
        """Apply ``changes`` in order, each acknowledged by IB before the next (``Trading.apply_exit_changes``
        says how); ``contract_of`` gives the contract a new exit is placed on.

        ``position_of`` (the position now): when it shrinks while the changes are applied (an exit
        filled meanwhile), the rest is not sent. Those changes were computed for a larger position:
        a modification would restate a quantity IB has just trimmed by OCA (a stop working on a
        flat position). The caller, or the guard on the fill, fits the exits to the new position.
        A position that grew (an add's own entry filling) goes on: exits sized for less than the
        position never exceed it, and the guard grows them."""
        self.conn.require_connected()
        touched: list[OrderSnapshot] = []
        start = position_of() if position_of is not None else None
        for change in changes:
            if position_of is not None and start is not None and shrank(start, now := position_of()):
                log.warning("alert %s: the position went from %s to %s while its exits were changed; "
                            "the remaining changes are not sent", alert_id, start, now)  # fmt: skip
                break
            if change.ref is None:
                trade = await self._place(contract_of, change, alert_id, prices, oca_group, orders)
                if trade is None:
                    log.warning("alert %s: no %s price known; %s exit not placed", alert_id, change.role,
                                change.role)  # fmt: skip
                    continue
                await self.orders.until(lambda t=trade: t.orderStatus.status not in ("PendingSubmit", "ApiPending"),
                                        wait, f"IB did not acknowledge new exit {trade.order.orderRef}")  # fmt: skip
                touched.append(order_snapshot(trade))
                continue
            trade = self.orders.working_by_ref(change.ref)
            if trade is None:  # gone meanwhile (filled or cancelled): nothing left to change
                continue
            if change.quantity <= 0:
                touched += await self.cancels.cancel_trades([trade], wait)
                continue
            shrink = change.quantity < remaining(trade)
            if await self._modify(trade, change, prices, wait, orders) or not shrink:
                touched.append(order_snapshot(trade))
            else:
                log.warning("IB refused shrinking %s; cancelling it instead", change.ref)
                touched += await self.cancels.cancel_trades([trade], wait)
        return touched

    async def _place(
        self,
        contract_of: Callable[[], Contract],
        change: ExitChange,
        alert_id: str,
        prices: Mapping[str, Decimal],
        oca_group: str,
        orders: Mapping[str, ExitOrder] | None = None,
    ) -> Trade | None:
        price = prices.get(change.role)
        if price is None:
            return None
        leg = exit_leg(change.role, change.action, change.quantity, price, (orders or {}).get(change.role))
        await self.conn.pacer.acquire(1)
        self.conn.require_connected()
        contract = contract_of()
        if change.slice:  # a level's stop joins its level's group: its take-profit's fill cancels it
            oca_group = self.orders.exit_oca_group(contract.conId, alert_id, change.slice)
        order = order_for(leg, self.orders.free_ref(alert_id, change.leg), self.conn.account or "")
        order.ocaGroup, order.ocaType = oca_group, OCA_TYPE
        order.orderId = self.ib.client.getReqId()
        return self.ib.placeOrder(contract, order)

    async def _modify(
        self,
        trade: Trade,
        change: ExitChange,
        prices: Mapping[str, Decimal],
        wait: float,
        orders: Mapping[str, ExitOrder] | None = None,
    ) -> bool:
        """Modify ``trade`` to leave ``change.quantity`` to fill, keeping its order type; True when
        IB acknowledged it."""
        await self.conn.pacer.acquire(1)
        self.conn.require_connected()
        order = trade.order
        was = (
            order.totalQuantity,
            order.lmtPrice,
            order.auxPrice,
            order.trailingPercent,
            order.trailStopPrice,
        )
        filled = num(trade.orderStatus.filled) or Decimal(0)
        order.totalQuantity = float(filled + change.quantity)
        reprice_exit(order, change.role, prices.get(change.role), (orders or {}).get(change.role))
        order.transmit = True
        refused = await self._send_modification(trade, wait)
        if refused is not None:
            # ib_async marks the trade Cancelled on the error; IB restates the unchanged order right
            # after (ibsim does): wait for that, bounded, before anyone reads the order's state
            with contextlib.suppress(TemporaryError):
                await self.orders.until(lambda: trade.orderStatus.status not in IB_ENDED_UNFILLED_STATUSES, wait,
                                        "restatement")  # fmt: skip
            # ib_async changed its copy of the order when sending; IB kept the old terms
            (order.totalQuantity, order.lmtPrice, order.auxPrice, order.trailingPercent,
             order.trailStopPrice) = was  # fmt: skip
            log.warning("IB refused modifying %s (error %s)", order.orderRef, refused)
        return refused is None

    async def _send_modification(self, trade: Trade, wait: float) -> int | None:
        """Send the modified order; IB's error code when it refused it, None when it acknowledged."""
        order = trade.order
        acked: list[Trade] = []
        refused: list[int] = []

        def on_order(t: Trade) -> None:
            if t is trade:
                acked.append(t)

        def on_error(req_id: int, code: int, text: str, contract: Any = None) -> None:
            if req_id == order.orderId and code not in (399,) and not 2100 <= code < 2200:
                refused.append(code)

        # IB answers a modification with openOrder + orderStatus (ib_async emits openOrderEvent for
        # both new and known orders), or with an error for the order id
        self.ib.openOrderEvent += on_order
        self.ib.orderStatusEvent += on_order
        self.ib.errorEvent += on_error
        try:
            self.ib.placeOrder(trade.contract, order)
            await self.orders.until(lambda: bool(acked or refused) or trade.orderStatus.status in IB_DONE_STATUSES,
                                    wait, f"IB did not acknowledge modifying {order.orderRef}")  # fmt: skip
        finally:
            self.ib.openOrderEvent -= on_order
            self.ib.orderStatusEvent -= on_order
            self.ib.errorEvent -= on_error
        return refused[0] if refused else None
