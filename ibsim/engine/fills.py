"""Fills and the other ways a working order shrinks or ends: a fill is booked (position, cash,
commission, the executions log) and reported, then its OCA group or bracket reacts (cancel or
reduce the siblings, release the children); cancels cascade to a parent's children.

Each fill sends execDetails → orderStatus → (openOrder when Filled) → commissionReport to the
owner, then position / portfolio / account updates to subscribers.
"""

from __future__ import annotations

import datetime as dt
from copy import copy

from ibsim.catalog.ticks import on_tick, round_to_tick
from ibsim.engine.brackets import CANCEL, released_children, sibling_reactions
from ibsim.engine.costs import commission_for
from ibsim.engine.events import (
    CommissionEvent,
    Event,
    ExecutionEvent,
    OpenOrderEvent,
    OrderErrorEvent,
    OrderStatusEvent,
    PositionEvent,
)
from ibsim.engine.state import EngineState
from ibsim.model import Order


def order_events(order: Order) -> list[Event]:
    """openOrder then orderStatus, each with a snapshot of the order."""
    return [OpenOrderEvent(copy(order)), OrderStatusEvent(copy(order))]


class Fills:
    """Books fills and applies their consequences; cancels and reductions with their events."""

    def __init__(self, state: EngineState) -> None:
        self.state = state

    def time_text(self) -> str:
        """The completion time of an order as completedOrder carries it."""
        return dt.datetime.fromtimestamp(self.state.clock(), dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")

    def fill(self, order: Order, qty: float, price: float) -> tuple[list[Event], list[Order]]:
        """Fill ``qty`` at ``price``: its events, and the bracket children it released (the caller
        matches those, as they arrive now)."""
        state = self.state
        inst = state.market.instrument(order.con_id)
        price = round_to_tick(price, inst.min_tick) if on_tick(price, inst.min_tick) else price
        fx = state.market.fx_to_usd(inst.currency)
        commission = commission_for(inst, qty, price, fx)
        realized = state.ledger.book(order.account, inst, order.is_buy, qty, price, commission, fx)
        prev_value = order.avg_fill_price * order.filled
        order.filled = round(order.filled + qty, 10)
        order.avg_fill_price = (prev_value + qty * price) / order.filled
        order.last_fill_price = price
        execution = state.execution_log.record(order, inst, (qty, price), commission, realized, state.clock())
        done = order.remaining <= 1e-12
        events: list[Event] = [ExecutionEvent(execution)]
        if done:
            self._finish(order, "Filled", "Filled")
            events += [OrderStatusEvent(copy(order)), OpenOrderEvent(copy(order))]
        else:
            order.status = "Submitted"
            events.append(OrderStatusEvent(copy(order)))
        events += [CommissionEvent(execution), PositionEvent(order.account, order.con_id)]
        for sibling, reaction in sibling_reactions(order, done, state.book):
            events += self.cancel(sibling) if reaction == CANCEL else self.reduce(sibling, qty)
        released = released_children(order, state.book) if done else []
        for child in released:
            child.status = "Submitted"
            events += order_events(child)
        return events, released

    def _finish(self, order: Order, status: str, completed_status: str) -> None:
        order.status = status
        order.completed_time = self.time_text()
        order.completed_status = completed_status

    def complete(self, order: Order) -> list[Event]:
        """Mark an order whose quantity is all filled as Filled."""
        self._finish(order, "Filled", "Filled")
        return order_events(order)

    def cancel(self, order: Order, reason: str = "") -> list[Event]:
        """Cancel an order (status Cancelled, error 202) and its working children with it."""
        self._finish(order, "Cancelled", reason or "Cancelled by Trader")
        events: list[Event] = [
            OrderStatusEvent(copy(order)),
            OrderErrorEvent(order.client_id, order.order_id, 202, f"Order Canceled - reason:{reason}"),
        ]
        for child in self.state.book.children(order):
            if child.is_active:
                events += self.cancel(child, reason)
        return events

    def reduce(self, order: Order, qty: float) -> list[Event]:
        """Cut an order back by ``qty`` (an OCA sibling's fill); at nothing left it ends."""
        order.total_quantity = max(order.filled, round(order.total_quantity - qty, 10))
        if order.remaining <= 1e-12:
            if order.filled > 0:
                return self.complete(order)
            return self.cancel(order)
        return order_events(order)
