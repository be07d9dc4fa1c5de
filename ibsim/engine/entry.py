"""Order entry: a client's placeOrder (new order, modify, whatIf), transmission of staged legs, and
its cancelOrder; each checked as TWS checks it, refusals answered as errors on the order id.

Orders are keyed by (clientId, orderId); ids at or below the client's highest are ``103``
duplicates; re-placing an active id modifies it (a refused modify restates the working order);
modifying a done order is ``104``.
"""

from __future__ import annotations

from copy import copy

from ibsim.catalog.instruments import Instrument
from ibsim.engine.brackets import held, transmit_batch
from ibsim.engine.events import (
    Event,
    OrderErrorEvent,
    OrderRejected,
    OrderStatusEvent,
    WhatIfEvent,
    rejected,
)
from ibsim.engine.fills import Fills, order_events
from ibsim.engine.matching import Matcher, update_trail
from ibsim.engine.state import EngineState
from ibsim.engine.validation import check_fields, check_restrictions, resolve
from ibsim.engine.what_if import check_margin, what_if_state
from ibsim.model import Order, OrderRequest, unset_to_none

#: fields a new order takes from its request as they are
_FROM_REQUEST = (
    "order_id", "action", "order_type", "lmt_price", "aux_price", "oca_group", "oca_type", "order_ref",
    "transmit", "parent_id", "outside_rth", "good_till_date", "trail_stop_price", "trailing_percent",
)  # fmt: skip
#: fields a modify replaces as they are (quantity, tif, trail stop and OCA group have rules of their own)
_MODIFIABLE = (
    "order_type", "lmt_price", "aux_price", "order_ref", "outside_rth", "good_till_date", "trailing_percent",
)  # fmt: skip


class OrderEntry:
    """placeOrder and cancelOrder of one simulated TWS, for every client."""

    def __init__(
        self, state: EngineState, fills: Fills, matcher: Matcher, margin_check: bool = False
    ) -> None:
        self.state = state
        self.fills = fills
        self.matcher = matcher
        #: refuse new orders whose initial margin would exceed the equity with loan (as IB does)
        self.margin_check = margin_check

    def place(self, client_id: int, req: OrderRequest) -> list[Event]:
        """Handle placeOrder: new order, modify, whatIf or rejection."""
        prev_max = self.state.book.note_order_id(client_id, req.order_id)
        existing = self.state.book.get(client_id, req.order_id)
        try:
            rejection = None if req.what_if else self.state.faults.next_rejection()
            if rejection is not None:
                raise OrderRejected(*rejection)
            if existing is not None:
                return self._modify(existing, req)
            return self._new(client_id, req, prev_max)
        except OrderRejected as rej:
            events: list[Event] = [OrderErrorEvent(client_id, req.order_id, rej.code, rej.text)]
            if existing is not None and existing.is_active and existing.transmit:
                # a refused modification leaves the order working: restate it, since clients
                # mark the trade Cancelled on the error
                events.append(OrderStatusEvent(copy(existing)))
            return events

    def _new(self, client_id: int, req: OrderRequest, prev_max: int) -> list[Event]:
        if req.order_id <= 0 or (req.order_id <= prev_max and not req.what_if):
            # TWS never reuses an order id: one at or below the client's highest is a duplicate
            raise OrderRejected(103, "Duplicate order id")
        market, ledger, book = self.state.market, self.state.ledger, self.state.book
        inst, account = resolve(req, market, ledger)
        order = self._order_from(client_id, req, inst, account)
        if req.what_if:
            state = self.state.faults.what_if_answer(what_if_state(order, inst, market, ledger))
            return [WhatIfEvent(order, state)]
        check_restrictions(order, inst, market, ledger)
        if self.margin_check:
            check_margin(order, inst, market, ledger)
        if req.parent_id:
            parent = book.get(client_id, req.parent_id)
            if parent is None or not (parent.is_active or parent.status == "Filled"):
                raise rejected("Parent order is not active")
            order.parent_perm_id = parent.perm_id
        book.register(order)
        book.next_perm_id += 1
        return self.transmit(order) if req.transmit else []

    def _order_from(self, client_id: int, req: OrderRequest, inst: Instrument, account: str) -> Order:
        return Order(
            client_id=client_id,
            perm_id=self.state.book.next_perm_id,
            con_id=inst.con_id,
            exchange=req.contract.exchange or inst.exchange,
            total_quantity=float(req.total_quantity),
            tif=req.tif or "DAY",
            account=account,
            status="PendingSubmit",
            created=self.state.clock(),
            **{name: getattr(req, name) for name in _FROM_REQUEST},
        )

    def transmit(self, order: Order) -> list[Event]:
        """Send a transmitting leg together with its staged parent and siblings, then match them."""
        book, market = self.state.book, self.state.market
        batch = transmit_batch(order, book)
        events: list[Event] = []
        for o in batch:
            o.transmit = True
            o.status = "PreSubmitted" if held(o, book) else "Submitted"
            if o.order_type == "TRAIL":
                update_trail(o, market.price(o.con_id), market.instrument(o.con_id).min_tick)
            events += order_events(o)
        for o in batch:
            events += self.matcher.match(o, arriving=True)
        return events

    def _modify(self, order: Order, req: OrderRequest) -> list[Event]:
        if not order.is_active:
            raise OrderRejected(
                104,
                "Can't modify a filled order"
                if order.status == "Filled"
                else f"Order modify rejected - reason:order is {order.status}",
            )
        self._check_modify(order, req)
        order.total_quantity = float(req.total_quantity)
        for name in _MODIFIABLE:
            setattr(order, name, getattr(req, name))
        order.tif = req.tif or order.tif
        if unset_to_none(req.trail_stop_price) is not None:
            order.trail_stop_price = req.trail_stop_price
        if req.oca_group:
            if req.oca_group != order.oca_group:
                self.state.book.join_oca(order, req.oca_group)
            order.oca_group, order.oca_type = req.oca_group, req.oca_type
        if not order.transmit:
            return self.transmit(order) if req.transmit else []
        if order.remaining <= 0:
            return self.fills.complete(order)
        return order_events(order) + self.matcher.match(order, arriving=True)

    def _check_modify(self, order: Order, req: OrderRequest) -> None:
        inst = self.state.market.instrument(order.con_id)
        if req.contract.con_id and req.contract.con_id != order.con_id:
            raise rejected("The contract of an order cannot be changed")
        check_fields(req, inst, self.state.market)
        if req.total_quantity < order.filled:
            raise rejected("Quantity is below the filled quantity")
        if req.action != order.action:
            raise rejected("The side of an order cannot be changed")

    def cancel(self, client_id: int, order_id: int, reason: str = "") -> list[Event]:
        """Handle cancelOrder from its owner."""
        order = self.state.book.get(client_id, order_id)
        if order is None:
            text = f"OrderId {order_id} that needs to be cancelled is not found."
            return [OrderErrorEvent(client_id, order_id, 10147, text)]
        if not order.is_active:
            text = (
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {order.status}."
            )
            return [OrderErrorEvent(client_id, order_id, 10148, text)]
        return self.fills.cancel(order, reason)
