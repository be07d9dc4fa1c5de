"""An in-memory ``Trading`` (worker/ib/trading.py's typed interface) for tests of the execution
protocol, the guard and the executor without ibsim.

The test plays IB: orders are plain records; a market order fills at once when ``fill_market`` is
on (else it waits for :meth:`FakeTrading.fill`); a bracket's children stay dormant until their
parent fills; :meth:`FakeTrading.cancel_by_ib` and ``refuse`` stand for IB cancelling or refusing.
Every request is written to :attr:`FakeTrading.calls`, in order, so a test reads what was done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.ids import order_ref as make_order_ref
from core.models import IB_DONE_STATUSES, IB_WORKING_STATUSES
from worker.decision.exits import exit_leg
from worker.decision.ledger import PositionView
from worker.decision.margin import WhatIf
from worker.decision.model import Instrument, Leg
from worker.decision.order_types import ExitOrder
from worker.decision.positions import ExitChange, WorkingExit
from worker.decision.quote import Quote
from worker.ib.orders import exit_role, leg_of
from worker.ib.placement import Placement, WhatIfAnswer
from worker.recording.snapshots import AccountFigures, OrderSnapshot, OrderState

D = Decimal


@dataclass
class FakeOrder:
    """One order as the fake IB holds it."""

    order_id: int
    ref: str
    con_id: int
    action: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: ExitOrder | None = None
    parent_id: int = 0
    oca_group: str = ""
    status: str = "Submitted"
    filled: Decimal = D(0)
    error: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled


@dataclass
class FakeTrading:
    """The typed Trading interface over an in-memory book (see the module docstring)."""

    inst: Instrument
    account: str = "DU1"
    price: Decimal | None = D(190)
    fill_market: bool = True
    ready: bool = True
    positions: dict[int, Decimal] = field(default_factory=dict)
    orders: dict[int, FakeOrder] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    figures: AccountFigures | None = None
    what_if_answer: WhatIf | None = None
    refuse: set[str] = field(default_factory=set)  # legs IB refuses when placed (201)
    _next_id: int = 1

    # ------------------------------------------------------------------ the test plays IB

    def hold(self, position: Decimal, con_id: int | None = None) -> None:
        self.positions[con_id or self.inst.con_id] = position

    def fill(self, ref: str, quantity: Decimal | None = None) -> None:
        """IB fills the order ``ref`` (completely, or ``quantity``): the position moves, a filled
        parent's children become working exits."""
        order = self._by_ref(ref)
        assert order is not None, ref
        qty = order.remaining if quantity is None else quantity
        order.filled += qty
        self.calls.append(f"filled {leg_of(ref)} {qty}")
        sign = 1 if order.action == "BUY" else -1
        self.positions[order.con_id] = self.position_of(order.con_id) + sign * qty
        if order.filled >= order.quantity:
            order.status = "Filled"
            for child in self.orders.values():
                if child.parent_id == order.order_id and child.status == "PreSubmitted":
                    child.status = "Submitted"
            for sibling in self._oca(order):  # one-cancels-all, reduced by the fill (OCA type 2)
                sibling.quantity = max(D(0), sibling.quantity - qty)

    def cancel_by_ib(self, ref: str) -> None:
        """IB cancels the working order ``ref`` on its own (a refused re-attach, an expiry)."""
        order = self._by_ref(ref)
        assert order is not None, ref
        order.status = "Cancelled"

    def exits(self) -> dict[str, tuple[str, Decimal, Decimal | None]]:
        """The working exits by ref: (role, quantity left, price)."""
        return {o.ref: (exit_role(o.ref) or "", o.remaining, o.limit_price if exit_role(o.ref) == "tp" else o.stop_price)
                for o in self._working(self.inst.con_id) if exit_role(o.ref) and not self._dormant(o)}  # fmt: skip

    # ------------------------------------------------------------------ connection

    def require_connected(self) -> None:
        if not self.ready:
            raise ConnectionError("fake IB not connected")

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        asyncio.get_event_loop().call_soon(fn, *args)

    # ------------------------------------------------------------------ the account and contracts

    def account_figures(self) -> AccountFigures:
        return self.figures or AccountFigures(self.account, "USD", net_liquidation=D(1_000_000),
                                              available_funds=D(1_000_000))  # fmt: skip

    def other_exposure(self, con_id: int) -> Decimal | None:
        return D(0)

    def working_order_counts(self) -> tuple[int, int]:
        working = [o for o in self.orders.values() if o.status in IB_WORKING_STATUSES]
        return len(working), len(working)

    async def instrument(self, spec: Any) -> Instrument:
        return self.inst

    def roll_of(self, spec: Any) -> None:
        return None

    async def held_month(self, spec: Any, inst: Instrument) -> tuple[Instrument, None]:
        return inst, None

    def primary_exchange(self, con_id: int) -> str:
        return "NASDAQ"

    async def market_price(self, con_id: int, timeout: float = 3.0) -> Quote:
        self.calls.append("quote")
        return Quote(self.price, "IB last price", "live", "live")

    # ------------------------------------------------------------------ positions

    def position_view(self, con_id: int) -> PositionView:
        return PositionView(self.position_of(con_id))

    def position_of(self, con_id: int) -> Decimal:
        return self.positions.get(con_id, D(0))

    async def settled_view(self, con_id: int, wait: float = 0.0) -> PositionView:
        return self.position_view(con_id)

    async def settled_position(self, con_id: int, wait: float = 0.0) -> Decimal:
        return self.position_of(con_id)

    # ------------------------------------------------------------------ orders by orderRef

    def known_refs(self, refs: Sequence[str]) -> set[str]:
        return {o.ref for o in self.orders.values() if o.ref in set(refs)}

    async def see_other_clients(self, timeout: float = 5.0) -> None:
        """One client in the fake: every order is already in view."""

    def order_state(self, ref: str) -> OrderState | None:
        order = self._by_ref(ref)
        if order is None:
            return None
        return OrderState(order.ref, order.order_id, order.status, order.order_type, order.quantity, order.filled,
                          order.error)  # fmt: skip

    async def place_legs(self, alert_id: str, con_id: int, legs: list[Leg], oca_type: int,
                         on_leg_sent: Callable[[str], None], record: Callable[..., Any]) -> Placement:  # fmt: skip
        refs = [make_order_ref(alert_id, leg.leg) for leg in legs]
        result = Placement()
        if refs[-1] in self.known_refs(refs):  # exactly once: the bracket went out before
            result.adopted = [self._snapshot(o) for o in self.orders.values() if o.ref in refs]
            result.recorded = _done(record([], result.adopted))
            return result
        ids: dict[str, int] = {}
        for leg, ref in zip(legs, refs, strict=True):
            parent = ids.get(leg.parent_leg or "", 0)
            order = self._new(
                ref, con_id, leg, parent_id=parent, oca_group=f"tv2ib:{alert_id}" if parent else ""
            )
            ids[leg.leg] = order.order_id
            self.calls.append(f"placed {leg.leg} {leg.action} {leg.quantity} {leg.order_type}")
            on_leg_sent(leg.leg)
            result.placed.append(self._snapshot(order))
        for order in [self.orders[i] for i in ids.values()]:
            self._acknowledge(order)
        result.recorded = _done(record(result.placed, []))
        return result

    async def what_if(self, con_id: int, leg: Leg, timeout: float) -> WhatIfAnswer:
        self.calls.append(f"what-if {leg.action} {leg.quantity}")
        return WhatIfAnswer(self.what_if_answer, [], self.account_figures())

    def free_ref(self, alert_id: str, leg: str) -> str:
        taken = {o.ref for o in self.orders.values()}
        ref, n = make_order_ref(alert_id, leg), 1
        while ref in taken:
            n += 1
            ref = make_order_ref(alert_id, f"{leg}{n}")
        return ref

    # ------------------------------------------------------------------ a position's exits and entries

    def working_exits(self, con_id: int) -> list[WorkingExit]:
        return [WorkingExit(o.ref, exit_role(o.ref), o.action, o.remaining)  # type: ignore[arg-type]
                for o in self._working(con_id) if exit_role(o.ref) and not self._dormant(o) and o.remaining > 0]  # fmt: skip

    def resting_entries(self, con_id: int | None) -> list[OrderSnapshot]:
        return [
            self._snapshot(o) for o in self._working(con_id) if leg_of(o.ref) == "entry" and o.remaining > 0
        ]

    def has_dormant_bracket(self, con_id: int) -> bool:
        return any(self._dormant(o) for o in self._working(con_id))

    def exit_prices(self, con_id: int) -> dict[str, Decimal]:
        prices: dict[str, Decimal] = {}
        for o in self._working(con_id):
            role = exit_role(o.ref)
            price = o.limit_price if role == "tp" else o.stop_price
            if role and price is not None:
                prices.setdefault(role, price)
        return prices

    def exit_orders(self, con_id: int) -> dict[str, ExitOrder]:
        terms: dict[str, ExitOrder] = {}
        for o in self._working(con_id):
            role = exit_role(o.ref)
            if role:
                terms.setdefault(role, o.trail or ExitOrder(o.order_type))
        return terms

    def exit_oca_group(self, con_id: int, alert_id: str) -> str:
        groups = [o.oca_group for o in self._working(con_id) if exit_role(o.ref) and o.oca_group]
        return groups[0] if groups else f"tv2ib:{alert_id}"

    def exit_con_ids(self) -> set[int]:
        return {o.con_id for o in self._working(None) if exit_role(o.ref)}

    async def apply_exit_changes(self, con_id: int, changes: list[ExitChange], *, alert_id: str,
                                 prices: Mapping[str, Decimal], oca_group: str, wait: float = 5.0,
                                 orders: Mapping[str, ExitOrder] | None = None) -> list[OrderSnapshot]:  # fmt: skip
        touched = []
        for change in changes:
            if change.ref is None:
                price = prices.get(change.role)
                if price is None:
                    continue
                leg = exit_leg(
                    change.role, change.action, change.quantity, price, (orders or {}).get(change.role)
                )
                order = self._new(self.free_ref(alert_id, change.role), con_id, leg, oca_group=oca_group)
                self._acknowledge(order)
                self.calls.append(f"new {leg_of(order.ref)} {change.action} {change.quantity} @ {price}")
                touched.append(self._snapshot(order))
                continue
            order = self._by_ref(change.ref)
            if order is None or order.status not in IB_WORKING_STATUSES:
                continue
            if change.quantity <= 0:
                order.status = "Cancelled"
                self.calls.append(f"cancel {leg_of(order.ref)}")
            else:
                order.quantity = order.filled + change.quantity
                price = prices.get(change.role)
                if price is not None:
                    order.limit_price, order.stop_price = (
                        (price, None) if change.role == "tp" else (None, price)
                    )
                self.calls.append(
                    f"modify {leg_of(order.ref)} {change.quantity}" + (f" @ {price}" if price else "")
                )
            touched.append(self._snapshot(order))
        return touched

    # ------------------------------------------------------------------ cancelling and closing

    async def cancel_working(self, con_id: int | None, wait: float = 5.0) -> list[OrderSnapshot]:
        targets = self._working(con_id)
        for order in targets:
            order.status = "Cancelled"
            self.calls.append(f"cancel {leg_of(order.ref)}")
        return [self._snapshot(o) for o in targets]

    async def cancel_and_wait(self, orders: Sequence[OrderSnapshot | OrderState], wait: float = 5.0) -> list[OrderSnapshot]:  # fmt: skip
        done = []
        for snap in orders:
            order = self.orders[snap.ib_order_id or 0]
            if order.status not in IB_DONE_STATUSES:
                order.status = "Cancelled"
                self.calls.append(f"cancel {leg_of(order.ref)}")
            done.append(self._snapshot(order))
        return done

    async def close_unprotected(self, con_id: int, alert_id: str) -> Decimal:
        for order in self._working(con_id):
            if exit_role(order.ref):
                order.status = "Cancelled"
        position = self.position_of(con_id)
        if position:
            leg = Leg("flatten", "SELL" if position > 0 else "BUY", "MKT", abs(position), tif="DAY")
            order = self._new(self.free_ref(alert_id, "flatten"), con_id, leg)
            self.calls.append(f"flatten {leg.action} {leg.quantity}")
            self._acknowledge(order)
        return position

    # ------------------------------------------------------------------ the book

    def _new(self, ref: str, con_id: int, leg: Leg, *, parent_id: int = 0, oca_group: str = "") -> FakeOrder:
        trail = ExitOrder(leg.order_type, trail_amount=leg.trail_amount, trail_percent=leg.trail_percent) if (
            leg.order_type == "TRAIL") else None  # fmt: skip
        order = FakeOrder(self._next_id, ref, con_id, leg.action, leg.order_type, leg.quantity, leg.limit_price,
                          leg.stop_price if leg.order_type != "TRAIL" else leg.trail_stop_price, trail,
                          parent_id, oca_group, "PreSubmitted" if parent_id else "Submitted")  # fmt: skip
        self.orders[order.order_id] = order
        self._next_id += 1
        return order

    def _acknowledge(self, order: FakeOrder) -> None:
        """IB takes the order: refuses it, fills a market order at once, or lets it work."""
        if leg_of(order.ref) in self.refuse:
            order.status, order.error = "Inactive", "201 Order rejected - reason:refused by the test"
            self.calls.append(f"refused {leg_of(order.ref)}")
        elif self.fill_market and order.order_type == "MKT" and not order.parent_id:
            self.fill(order.ref)

    def _by_ref(self, ref: str) -> FakeOrder | None:
        found = [o for o in self.orders.values() if o.ref == ref]
        live = [o for o in found if o.status not in IB_DONE_STATUSES]
        return (live or found or [None])[-1]

    def _working(self, con_id: int | None) -> list[FakeOrder]:
        return [o for o in self.orders.values()
                if o.status in IB_WORKING_STATUSES and (con_id is None or o.con_id == con_id)]  # fmt: skip

    def _dormant(self, order: FakeOrder) -> bool:
        parent = self.orders.get(order.parent_id)
        return parent is not None and parent.status != "Filled"

    def _oca(self, order: FakeOrder) -> list[FakeOrder]:
        if not order.oca_group or not exit_role(order.ref):
            return []
        return [o for o in self._working(order.con_id) if o.oca_group == order.oca_group and o is not order]

    def _snapshot(self, order: FakeOrder) -> OrderSnapshot:
        inst = self.inst
        return OrderSnapshot(
            order.ref, order.order_id, None, 7, self.account, order.con_id, inst.symbol, inst.local_symbol,
            inst.sec_type, order.parent_id or None, order.action, order.order_type, order.quantity, order.limit_price,
            order.stop_price, "DAY", order.oca_group or None, order.status, order.filled, order.remaining, None, None,
        )  # fmt: skip


def _done(value: Any) -> Future[Any]:
    """The recorder's future for a placement record (already written, or nothing to write)."""
    if isinstance(value, Future):
        return value
    future: Future[Any] = Future()
    future.set_result(value)
    return future
