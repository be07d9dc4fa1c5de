"""The matching engine: orders, fills, positions and accounts. Pure: no I/O, no clock of its own.

Every public operation returns a list of events that the server turns into protocol messages
for the owner's connection (order events) or for subscribers (positions, account, prices).
Events carry snapshots, so a later change in the same batch cannot alter an earlier message.

Simulator policies (documented, deliberately simple):

* Working orders are ``Submitted``; bracket children wait as ``PreSubmitted`` until the parent
  is completely filled, then become ``Submitted`` and are matched at once.
* MKT fills at the current price. A marketable LMT fills at the current price on arrival; a
  resting LMT fills at its limit when the price touches it. STP / TRAIL trigger at the stop
  and fill at the current price; STP LMT triggers, then behaves as LMT.
* Each matching pass (placement, every price change, resume) fills at most the fill-size
  limit of the order or its contract, so partial fills come one chunk per price event.
* DAY and GTC both rest until cancelled (no session calendar). IOC fills what it can on
  arrival and cancels the rest; FOK fills completely on arrival or is cancelled.
* MOC / LOC (market / limit on close) rest until :meth:`Engine.end_of_day`, the closing auction:
  MOC fills at the current price, LOC when that price is at or better than its limit; an
  unfilled LOC then expires with the other DAY orders.
* Bracket children (same parentId) act as one OCA group: a partial fill of one reduces the
  others, a complete fill cancels them. Explicit OCA groups follow ocaType: 1 cancels the
  siblings on any fill, 2 and 3 reduce them by the filled quantity.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
from collections.abc import Callable, Iterable
from copy import copy
from dataclasses import dataclass
from typing import Any

from ibsim.catalog import Catalog, ContractQuery, Instrument, on_tick, round_to_tick
from ibsim.framing import UNSET_DOUBLE, parse_time_field
from ibsim.model import (
    Account,
    ExecFilter,
    Execution,
    Order,
    OrderRequest,
    Position,
    WhatIfState,
    unset_to_none,
)

log = logging.getLogger(__name__)

SUPPORTED_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT", "TRAIL", "MOC", "LOC"})
ON_CLOSE_TYPES = frozenset({"MOC", "LOC"})  # fill only in the closing auction (end_of_day)
SUPPORTED_TIFS = frozenset({"", "DAY", "GTC", "IOC", "FOK", "GTD", "OPG"})
DEFAULT_ACCOUNT = "DU1234567"
INITIAL_CASH = 1_000_000.0
VENUES = {"STK": "ISLAND", "FUT": "CME", "CASH": "IDEALPRO", "CRYPTO": "PAXOS"}
# initial margin as a share of notional, by secType, in a margin account (maintenance is 80% of
# it). Crypto is not marginable at IB (paid in full); a cash account pays everything in full.
MARGIN_RATE = {"STK": 0.25, "FUT": 0.06, "CASH": 0.03, "CRYPTO": 1.0}


# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class OpenOrderEvent:
    """openOrder for the owner (a snapshot of the order)."""

    order: Order


@dataclass(frozen=True)
class OrderStatusEvent:
    """orderStatus for the owner."""

    order: Order


@dataclass(frozen=True)
class ExecutionEvent:
    """A live fill (execDetails with reqId -1) for the owner."""

    execution: Execution


@dataclass(frozen=True)
class CommissionEvent:
    """commissionReport for the owner."""

    execution: Execution


@dataclass(frozen=True)
class OrderErrorEvent:
    """error(orderId, code, text) for the owner."""

    client_id: int
    order_id: int
    code: int
    text: str


@dataclass(frozen=True)
class WhatIfEvent:
    """A whatIf answer: openOrder with margin figures, nothing stored."""

    order: Order
    state: WhatIfState


@dataclass(frozen=True)
class PositionEvent:
    """A position changed: position, portfolio and account values to subscribers."""

    account: str
    con_id: int


@dataclass(frozen=True)
class PriceEvent:
    """The price of a contract changed: ticks to market-data subscribers."""

    con_id: int
    price: float


Event = (
    OpenOrderEvent
    | OrderStatusEvent
    | ExecutionEvent
    | CommissionEvent
    | OrderErrorEvent
    | WhatIfEvent
    | PositionEvent
    | PriceEvent
)


class OrderRejected(Exception):
    """A placeOrder or modify that TWS would refuse; carries the error code."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


# ------------------------------------------------------------------ commissions


def commission_for(inst: Instrument, quantity: float, price: float, fx: float) -> float:
    """Commission in USD for one fill, on a simple IBKR-Pro-like schedule."""
    value = abs(quantity * price * inst.mult * fx)
    if inst.sec_type == "STK":
        fee = max(1.0, 0.005 * quantity)
        fee = min(fee, max(0.01 * value, 0.35)) if value else fee
    elif inst.sec_type == "FUT":
        fee = (0.25 if inst.mult < 10 else 0.85) * quantity
    elif inst.sec_type == "CASH":
        fee = max(2.0, 0.00002 * value)
    elif inst.sec_type == "CRYPTO":
        fee = max(1.75, 0.0018 * value)
    else:
        fee = 1.0
    return round(fee, 4)


# ------------------------------------------------------------------ engine


class Engine:
    """Orders, fills, positions and accounts of one simulated TWS (all clients, all accounts)."""

    def __init__(
        self,
        catalog: Catalog,
        accounts: Iterable[str] = (DEFAULT_ACCOUNT,),
        clock: Callable[[], float] | None = None,
        initial_cash: float = INITIAL_CASH,
        margin_check: bool = False,
    ) -> None:
        import time

        self.catalog = catalog
        self.account_ids = list(accounts) or [DEFAULT_ACCOUNT]
        self.clock = clock or time.time
        self.initial_cash = initial_cash
        #: refuse new orders whose initial margin would exceed the equity with loan (as IB does)
        self.margin_check = margin_check
        self.reset()

    # ---------------------------------------------------------------- state

    def reset(self, keep_ids: bool = True) -> None:
        """Forget every order, fill and position; prices back to defaults; faults cleared.

        Order ids, permIds and execIds stay unique for the life of the process (``keep_ids``), so
        a client still holding trades from before the reset never sees an id twice.
        """
        kept = None
        if keep_ids and hasattr(self, "next_perm_id"):
            kept = (dict(self.max_order_id), self.next_perm_id, self._exec_count)
        self.prices: dict[int, float] = {i.con_id: i.default_price for i in self.catalog}
        self.orders: dict[tuple[int, int], Order] = {}
        # indexes that keep placement O(1) with many orders in the book
        self._children_of: dict[tuple[int, int], list[Order]] = {}
        self._by_oca: dict[tuple[str, str], list[Order]] = {}
        self._working_by_con: dict[int, dict[tuple[int, int], Order]] = {}
        self.executions: list[Execution] = []
        self.positions: dict[tuple[str, int], Position] = {}
        self.accounts: dict[str, Account] = {a: Account(a, cash=self.initial_cash) for a in self.account_ids}
        self.max_order_id: dict[int, int] = {}
        self.next_perm_id = 900_000_001
        self.exec_seq = itertools.count(1)
        self._exec_count = 0
        self.fills_paused = False
        self._closing_auction = False  # True while end_of_day fills MOC / LOC orders
        self.reject_queue: list[tuple[int, str]] = []
        self.contract_fill_limits: dict[int, float] = {}
        #: cash accounts: a SELL that would take the position below zero is refused (no shorting)
        self.cash_accounts: set[str] = set()
        #: halted contracts: every new order on them is refused
        self.halted: set[int] = set()
        self.daily_start_netliq: dict[str, float] = {a: self.initial_cash for a in self.account_ids}
        if kept is not None:
            self.max_order_id, self.next_perm_id, self._exec_count = kept
            self.exec_seq = itertools.count(self._exec_count + 1)

    @property
    def default_account(self) -> str:
        """The first managed account (orders with an empty account go there)."""
        return self.account_ids[0]

    def price(self, con_id: int) -> float:
        """Current price of a contract (its default when never set)."""
        if con_id in self.prices:
            return self.prices[con_id]
        inst = self.catalog.get(con_id)
        return inst.default_price if inst else 0.0

    def fx_to_usd(self, currency: str) -> float:
        """Conversion rate of a currency to USD, from the catalog's forex prices."""
        if currency in ("", "USD"):
            return 1.0
        for inst in self.catalog:
            if inst.sec_type != "CASH":
                continue
            if inst.symbol == currency and inst.currency == "USD":
                return self.price(inst.con_id)
            if inst.symbol == "USD" and inst.currency == currency:
                p = self.price(inst.con_id)
                return 1.0 / p if p else 1.0
        return 1.0

    def next_valid_id(self, client_id: int) -> int:
        """One more than the highest order id this client ever used (at least 1)."""
        return max(1, self.max_order_id.get(client_id, 0) + 1)

    def instrument(self, con_id: int) -> Instrument:
        """The catalog instrument of an order/position (must exist)."""
        inst = self.catalog.get(con_id)
        if inst is None:
            raise KeyError(con_id)
        return inst

    # ---------------------------------------------------------------- placing

    def place(self, client_id: int, req: OrderRequest) -> list[Event]:
        """Handle placeOrder: new order, modify, whatIf or rejection."""
        events: list[Event] = []
        oid = req.order_id
        prev_max = self.max_order_id.get(client_id, 0)
        self.max_order_id[client_id] = max(prev_max, oid)
        existing = self.orders.get((client_id, oid))
        try:
            if self.reject_queue and not req.what_if:
                code, reason = self.reject_queue.pop(0)
                raise OrderRejected(code, reason)
            if existing is not None:
                return self._modify(existing, req)
            if oid <= 0 or (oid <= prev_max and not req.what_if):
                # TWS never reuses an order id: one at or below the client's highest is a duplicate
                raise OrderRejected(103, "Duplicate order id")
            inst, account = self._validate(req)
            order = self._new_order(client_id, req, inst, account)
            if req.what_if:
                return [WhatIfEvent(order, self._what_if_state(order, inst))]
            self._check_restrictions(order, inst)
            if self.margin_check:
                self._check_margin(order, inst)
            if req.parent_id:
                parent = self.orders.get((client_id, req.parent_id))
                if parent is None or not (parent.is_active or parent.status == "Filled"):
                    raise OrderRejected(201, "Order rejected - reason:Parent order is not active")
                order.parent_perm_id = parent.perm_id
            self._register(order)
            self.next_perm_id += 1
            if req.transmit:
                events += self._transmit(order)
        except OrderRejected as rej:
            events.append(OrderErrorEvent(client_id, oid, rej.code, rej.text))
            if existing is not None and existing.is_active and existing.transmit:
                # a refused modification leaves the order working: restate it, since clients
                # mark the trade Cancelled on the error
                events.append(OrderStatusEvent(copy(existing)))
        return events

    def _validate(self, req: OrderRequest) -> tuple[Instrument, str]:
        if req.sec_type_bag:
            raise OrderRejected(201, "Order rejected - reason:Combination orders are not supported")
        matches = self.catalog.match(req.contract)
        if len(matches) != 1:
            raise OrderRejected(200, "No security definition has been found for the request")
        inst = matches[0]
        self._validate_fields(req, inst)
        account = req.account or self.default_account
        if account not in self.accounts:
            raise OrderRejected(201, f"Order rejected - reason:Account {account} is not a managed account")
        return inst, account

    def _validate_fields(self, req: OrderRequest, inst: Instrument) -> None:
        otype = req.order_type
        if otype not in SUPPORTED_TYPES:
            raise OrderRejected(201, f"Order rejected - reason:Unsupported order type {otype or '(empty)'}")
        if req.conditions_count:
            raise OrderRejected(201, "Order rejected - reason:Conditional orders are not supported")
        if req.action not in ("BUY", "SELL", "SSHORT"):
            raise OrderRejected(201, f"Order rejected - reason:Invalid action {req.action!r}")
        if req.tif not in SUPPORTED_TIFS:
            raise OrderRejected(201, f"Order rejected - reason:Unsupported time in force {req.tif}")
        qty = req.total_quantity
        if not (qty > 0) or qty >= UNSET_DOUBLE or math.isinf(qty):
            raise OrderRejected(201, "Order rejected - reason:The order quantity must be positive")
        if inst.sec_type in ("STK", "FUT") and not float(qty).is_integer():
            raise OrderRejected(
                201, "Order rejected - reason:Fractional-sized orders are not supported via API"
            )
        if qty < inst.min_size:
            raise OrderRejected(
                201, f"Order rejected - reason:Order size is below the minimum of {inst.min_size}"
            )
        lmt, aux = unset_to_none(req.lmt_price), unset_to_none(req.aux_price)
        if otype in ("LMT", "STP LMT", "LOC") and lmt is None:
            raise OrderRejected(201, "Order rejected - reason:A limit price is required")
        if otype in ("STP", "STP LMT") and aux is None:
            raise OrderRejected(201, "Order rejected - reason:A stop price is required")
        pct = unset_to_none(req.trailing_percent)
        if otype == "TRAIL" and aux is None and pct is None:
            raise OrderRejected(201, "Order rejected - reason:A trailing amount or percent is required")
        if otype == "TRAIL" and pct is not None and not 0 < pct < 100:
            raise OrderRejected(201, "Order rejected - reason:The trailing percent must be between 0 and 100")
        for value in (
            lmt if otype in ("LMT", "STP LMT", "LOC") else None,
            aux if otype not in ("MKT", "MOC", "LOC") else None,
        ):
            if value is None:
                continue
            if value <= 0 or math.isinf(value):
                raise OrderRejected(201, "Order rejected - reason:The price must be positive")
            # the price band's increment at this price (IB's market rule), not minTick alone; a
            # trailing amount is an offset: on the increment at the contract's current price
            at = self.price(inst.con_id) if otype == "TRAIL" else value
            if not on_tick(value, self.catalog.increment_at(inst, at)):
                raise OrderRejected(
                    110,
                    "The price does not conform to the minimum price variation for this contract.",
                )

    def _new_order(self, client_id: int, req: OrderRequest, inst: Instrument, account: str) -> Order:
        return Order(
            client_id=client_id,
            order_id=req.order_id,
            perm_id=self.next_perm_id,
            con_id=inst.con_id,
            exchange=req.contract.exchange or inst.exchange,
            action=req.action,
            total_quantity=float(req.total_quantity),
            order_type=req.order_type,
            lmt_price=req.lmt_price,
            aux_price=req.aux_price,
            tif=req.tif or "DAY",
            oca_group=req.oca_group,
            oca_type=req.oca_type,
            account=account,
            order_ref=req.order_ref,
            transmit=req.transmit,
            parent_id=req.parent_id,
            outside_rth=req.outside_rth,
            good_till_date=req.good_till_date,
            trail_stop_price=req.trail_stop_price,
            trailing_percent=req.trailing_percent,
            status="PendingSubmit",
            created=self.clock(),
        )

    def _held(self, order: Order) -> bool:
        """A bracket child waiting for its parent's complete fill."""
        if not order.parent_id:
            return False
        parent = self.orders.get((order.client_id, order.parent_id))
        return parent is not None and parent.status != "Filled"

    def _transmit(self, order: Order) -> list[Event]:
        """Send a transmitting leg together with its staged parent and siblings."""
        batch: list[Order] = []
        root = order
        if order.parent_id:
            parent = self.orders.get((order.client_id, order.parent_id))
            if parent is not None and parent.status == "PendingSubmit" and not parent.transmit:
                batch.append(parent)
                root = parent
        staged_children = [
            o
            for o in self._children(root)
            if o is not order and not o.transmit and o.status == "PendingSubmit"
        ]
        batch += staged_children
        batch.append(order)
        events: list[Event] = []
        for o in batch:
            o.transmit = True
            o.status = "PreSubmitted" if self._held(o) else "Submitted"
            if o.order_type == "TRAIL":
                self._update_trail(o, self.price(o.con_id))
            events += [OpenOrderEvent(copy(o)), OrderStatusEvent(copy(o))]
        for o in batch:
            events += self._match(o, arriving=True)
        return events

    # ---------------------------------------------------------------- modify / cancel

    def _modify(self, order: Order, req: OrderRequest) -> list[Event]:
        if not order.is_active:
            raise OrderRejected(
                104,
                "Can't modify a filled order"
                if order.status == "Filled"
                else f"Order modify rejected - reason:order is {order.status}",
            )
        inst = self.instrument(order.con_id)
        if req.contract.con_id and req.contract.con_id != order.con_id:
            raise OrderRejected(201, "Order rejected - reason:The contract of an order cannot be changed")
        self._validate_fields(req, inst)
        if req.total_quantity < order.filled:
            raise OrderRejected(201, "Order rejected - reason:Quantity is below the filled quantity")
        if req.action != order.action:
            raise OrderRejected(201, "Order rejected - reason:The side of an order cannot be changed")
        order.total_quantity = float(req.total_quantity)
        order.order_type = req.order_type
        order.lmt_price = req.lmt_price
        order.aux_price = req.aux_price
        order.tif = req.tif or order.tif
        order.order_ref = req.order_ref
        order.outside_rth = req.outside_rth
        order.good_till_date = req.good_till_date
        order.trailing_percent = req.trailing_percent
        if unset_to_none(req.trail_stop_price) is not None:
            order.trail_stop_price = req.trail_stop_price
        if req.oca_group:
            if req.oca_group != order.oca_group:
                self._by_oca.setdefault((order.account, req.oca_group), []).append(order)
            order.oca_group, order.oca_type = req.oca_group, req.oca_type
        events: list[Event] = []
        if not order.transmit:
            if req.transmit:
                return self._transmit(order)
            return events
        if order.remaining <= 0:
            return self._complete_fill_status(order)
        events += [OpenOrderEvent(copy(order)), OrderStatusEvent(copy(order))]
        events += self._match(order, arriving=True)
        return events

    def _complete_fill_status(self, order: Order) -> list[Event]:
        order.status = "Filled"
        order.completed_time = self._time_text()
        order.completed_status = "Filled"
        return [OpenOrderEvent(copy(order)), OrderStatusEvent(copy(order))]

    def cancel(self, client_id: int, order_id: int, reason: str = "") -> list[Event]:
        """Handle cancelOrder from its owner."""
        order = self.orders.get((client_id, order_id))
        if order is None:
            return [
                OrderErrorEvent(
                    client_id, order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found."
                )
            ]
        if not order.is_active:
            return [
                OrderErrorEvent(
                    client_id,
                    order_id,
                    10148,
                    f"OrderId {order_id} that needs to be cancelled cannot be cancelled, "
                    f"state: {order.status}.",
                )
            ]
        return self._cancel(order, reason)

    def _cancel(self, order: Order, reason: str = "") -> list[Event]:
        events: list[Event] = []
        order.status = "Cancelled"
        order.completed_time = self._time_text()
        order.completed_status = reason or "Cancelled by Trader"
        events.append(OrderStatusEvent(copy(order)))
        events.append(
            OrderErrorEvent(order.client_id, order.order_id, 202, f"Order Canceled - reason:{reason}")
        )
        # cancelling a parent takes its working children with it
        for child in self._children(order):
            if child.is_active:
                events += self._cancel(child, reason)
        return events

    def global_cancel(self) -> list[Event]:
        """reqGlobalCancel: cancel every active order of every client."""
        events: list[Event] = []
        for order in list(self.orders.values()):
            if order.is_active:
                events += self._cancel(order)
        return events

    def end_of_day(self) -> list[Event]:
        """Session close: the closing auction fills MOC / LOC orders, then DAY (and OPG) orders
        expire as Cancelled; GTC/GTD orders keep working."""
        events: list[Event] = []
        self._closing_auction = True
        try:
            for order in list(self.orders.values()):
                if order.is_active and order.order_type in ON_CLOSE_TYPES:
                    events += self._match(order)
        finally:
            self._closing_auction = False
        for order in list(self.orders.values()):
            if order.is_active and order.tif in ("DAY", "OPG", ""):
                events += self._cancel(order, "Expired")
        return events

    def _register(self, order: Order) -> None:
        """Store an order and index it by parent, OCA group and contract."""
        self.orders[order.key] = order
        if order.parent_id:
            self._children_of.setdefault((order.client_id, order.parent_id), []).append(order)
        if order.oca_group:
            self._by_oca.setdefault((order.account, order.oca_group), []).append(order)
        if order.is_active:
            self._working_by_con.setdefault(order.con_id, {})[order.key] = order

    def _children(self, order: Order) -> list[Order]:
        return sorted(self._children_of.get((order.client_id, order.order_id), ()), key=lambda o: o.order_id)

    def _working_on(self, con_id: int) -> list[Order]:
        """Active orders on a contract in placement order (finished ones are pruned lazily)."""
        book = self._working_by_con.get(con_id)
        if not book:
            return []
        for key in [k for k, o in book.items() if not o.is_active]:
            del book[key]
        return sorted(book.values(), key=lambda o: o.perm_id)

    # ---------------------------------------------------------------- prices and matching

    def set_price(self, con_id: int, price: float) -> list[Event]:
        """New current price: tick event, then every working order on the contract is re-matched."""
        if not (price > 0) or math.isinf(price):
            raise ValueError(f"price must be positive, got {price!r}")
        self.prices[con_id] = float(price)
        events: list[Event] = [PriceEvent(con_id, float(price))]
        for order in self._working_on(con_id):
            if order.is_active:
                events += self._match(order)
        if any(isinstance(e, ExecutionEvent) for e in events):
            return events
        # positions are marked to the new price even without fills
        for (account, cid), pos in self.positions.items():
            if cid == con_id and pos.quantity:
                events.append(PositionEvent(account, con_id))
        return events

    def rematch_all(self) -> list[Event]:
        """Match every working order (after resume_fills or a fill-limit change)."""
        events: list[Event] = []
        for order in sorted(self.orders.values(), key=lambda o: o.perm_id):
            if order.is_active:
                events += self._match(order)
        return events

    def pause_fills(self) -> None:
        """Stop matching until resume_fills."""
        self.fills_paused = True

    def resume_fills(self) -> list[Event]:
        """Resume matching and match everything that became marketable meanwhile."""
        self.fills_paused = False
        return self.rematch_all()

    def set_fill_limit(
        self,
        quantity: float | None,
        con_id: int | None = None,
        client_id: int | None = None,
        order_id: int | None = None,
    ) -> None:
        """Limit the quantity per fill event for one order or one contract (None removes the limit)."""
        if quantity is not None and not quantity > 0:
            raise ValueError("fill limit must be positive")
        if order_id is not None:
            order = self.orders.get((client_id or 0, order_id))
            if order is None:
                raise KeyError(f"no order {order_id} of client {client_id}")
            order.fill_limit = quantity
        elif con_id is not None:
            if quantity is None:
                self.contract_fill_limits.pop(con_id, None)
            else:
                self.contract_fill_limits[con_id] = quantity
        else:
            raise ValueError("give an order (clientId, orderId) or a contract")

    def _update_trail(self, order: Order, price: float) -> None:
        inst = self.instrument(order.con_id)
        pct = unset_to_none(order.trailing_percent)
        amount = unset_to_none(order.aux_price)
        offset = price * pct / 100.0 if pct is not None else (amount or 0.0)
        candidate = round_to_tick(price - offset if not order.is_buy else price + offset, inst.min_tick)
        current = unset_to_none(order.trail_stop_price)
        if current is None:
            order.trail_stop_price = candidate
        elif not order.is_buy:
            order.trail_stop_price = max(current, candidate)
        else:
            order.trail_stop_price = min(current, candidate)

    def _executable_price(self, order: Order, arriving: bool) -> float | None:
        """The fill price if the order can execute now, else None."""
        price = self.price(order.con_id)
        buy = order.is_buy
        otype = order.order_type
        if otype in ON_CLOSE_TYPES:
            if not self._closing_auction:
                return None
            otype, arriving = ("MKT" if otype == "MOC" else "LMT"), True  # the auction's price
        if otype == "TRAIL":
            self._update_trail(order, price)
            stop = order.trail_stop_price
            if buy and price >= stop or not buy and price <= stop:
                order.triggered = True
            return price if order.triggered else None
        if otype in ("STP", "STP LMT") and not order.triggered:
            stop = order.aux_price
            if buy and price >= stop or not buy and price <= stop:
                order.triggered = True
            else:
                return None
        if otype in ("MKT", "STP"):
            return price
        lmt = order.lmt_price
        if buy and price <= lmt or not buy and price >= lmt:
            # marketable on arrival: price improvement; resting: filled at the limit when touched
            return price if arriving else lmt
        return None

    def _match(self, order: Order, arriving: bool = False) -> list[Event]:
        if not order.is_active or not order.transmit or self._held(order):
            return []
        if self.fills_paused:
            return []
        tif = order.tif
        fill_price = self._executable_price(order, arriving)
        limit = order.fill_limit or self.contract_fill_limits.get(order.con_id)
        if fill_price is None:
            if arriving and tif in ("IOC", "FOK"):
                return self._cancel(order)
            return []
        qty = order.remaining
        if limit is not None:
            qty = min(qty, limit)
        if tif == "FOK" and qty < order.remaining:
            return self._cancel(order)
        events = self._fill(order, qty, fill_price)
        if tif == "IOC" and order.is_active:
            events += self._cancel(order)
        return events

    def manual_fill(
        self, client_id: int, order_id: int, quantity: float | None = None, price: float | None = None
    ) -> list[Event]:
        """Force a fill of an active order (control API), ignoring prices and pauses."""
        order = self.orders.get((client_id, order_id))
        if order is None or not order.is_active or not order.transmit:
            raise KeyError(f"no working order {order_id} of client {client_id}")
        qty = min(order.remaining, quantity if quantity is not None else order.remaining)
        if not qty > 0:
            raise ValueError("quantity must be positive")
        return self._fill(order, qty, price if price is not None else self.price(order.con_id))

    # ---------------------------------------------------------------- fills

    def _fill(self, order: Order, qty: float, price: float) -> list[Event]:
        inst = self.instrument(order.con_id)
        price = round_to_tick(price, inst.min_tick) if on_tick(price, inst.min_tick) else price
        fx = self.fx_to_usd(inst.currency)
        commission = commission_for(inst, qty, price, fx)
        realized = self._book(order.account, inst, order.is_buy, qty, price, commission, fx)
        prev_value = order.avg_fill_price * order.filled
        order.filled = round(order.filled + qty, 10)
        order.avg_fill_price = (prev_value + qty * price) / order.filled
        order.last_fill_price = price
        self._exec_count += 1
        seq = next(self.exec_seq)
        execution = Execution(
            exec_id=f"0000e0d5.{order.perm_id:08x}.{seq:02d}.01",
            client_id=order.client_id,
            order_id=order.order_id,
            perm_id=order.perm_id,
            con_id=order.con_id,
            account=order.account,
            side="BOT" if order.is_buy else "SLD",
            shares=qty,
            price=price,
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            order_ref=order.order_ref,
            time=self.clock(),
            exchange=VENUES.get(inst.sec_type, inst.exchange) if inst.sec_type != "FUT" else inst.exchange,
            order_exchange=order.exchange,
            commission=commission,
            commission_currency="USD",
            realized_pnl=None if realized is None else round(realized - commission, 6),
        )
        self.executions.append(execution)
        done = order.remaining <= 1e-12
        events: list[Event] = [ExecutionEvent(execution)]
        if done:
            order.status = "Filled"
            order.completed_time = self._time_text()
            order.completed_status = "Filled"
            events.append(OrderStatusEvent(copy(order)))
            events.append(OpenOrderEvent(copy(order)))
        else:
            order.status = "Submitted"
            events.append(OrderStatusEvent(copy(order)))
        events.append(CommissionEvent(execution))
        events.append(PositionEvent(order.account, order.con_id))
        events += self._after_fill(order, qty, done)
        return events

    def _after_fill(self, order: Order, qty: float, done: bool) -> list[Event]:
        events: list[Event] = []
        # OCA siblings
        if order.oca_group:
            siblings = [
                o
                for o in self._by_oca.get((order.account, order.oca_group), ())
                if o is not order and o.is_active
            ]
            for sib in siblings:
                if order.oca_type in (2, 3):
                    events += self._reduce(sib, qty)
                else:
                    events += self._cancel(sib)
        elif order.parent_id:
            siblings = [o for o in self._siblings(order) if o.is_active and not o.oca_group]
            for sib in siblings:
                events += self._cancel(sib) if done else self._reduce(sib, qty)
        # a completely filled parent releases its children
        if done:
            children = [c for c in self._children(order) if c.is_active and c.transmit]
            for child in children:
                child.status = "Submitted"
                events += [OpenOrderEvent(copy(child)), OrderStatusEvent(copy(child))]
            for child in children:
                events += self._match(child, arriving=True)
        return events

    def _siblings(self, order: Order) -> list[Order]:
        return [o for o in self._children_of.get((order.client_id, order.parent_id), ()) if o is not order]

    def _reduce(self, order: Order, qty: float) -> list[Event]:
        order.total_quantity = max(order.filled, round(order.total_quantity - qty, 10))
        if order.remaining <= 1e-12:
            if order.filled > 0:
                return self._complete_fill_status(order)
            return self._cancel(order)
        return [OpenOrderEvent(copy(order)), OrderStatusEvent(copy(order))]

    def _book(
        self,
        account_id: str,
        inst: Instrument,
        buy: bool,
        qty: float,
        price: float,
        commission: float,
        fx: float,
    ) -> float | None:
        """Update the position and cash; return realised P&L (instrument currency) or None if opening."""
        account = self.accounts[account_id]
        pos = self.positions.get((account_id, inst.con_id))
        if pos is None:
            pos = self.positions[(account_id, inst.con_id)] = Position(account_id, inst.con_id)
        mult = inst.mult
        sign = 1.0 if buy else -1.0
        unit_cost = price * mult
        realized: float | None = None
        old = pos.quantity
        if old == 0 or (old > 0) == buy:
            total = abs(old) + qty
            pos.avg_cost = (abs(old) * pos.avg_cost + qty * unit_cost) / total
            pos.quantity = round(old + sign * qty, 10)
        else:
            closed = min(qty, abs(old))
            realized = (unit_cost - pos.avg_cost) * closed * (1.0 if old > 0 else -1.0)
            pos.quantity = round(old + sign * qty, 10)
            if pos.quantity == 0:
                pos.avg_cost = 0.0
            elif (pos.quantity > 0) != (old > 0):
                pos.avg_cost = unit_cost  # flipped through zero: the rest opens at this price
            pos.realized_pnl += realized
            account.realized_pnl += realized * fx
        if inst.sec_type == "FUT":
            if realized is not None:
                account.cash += realized * fx
        else:
            account.cash -= sign * qty * unit_cost * fx
        account.cash -= commission
        account.commissions += commission
        return realized

    def _check_restrictions(self, order: Order, inst: Instrument) -> None:
        """Halts and cash accounts (simulator policy: the position alone decides what is a short
        sale; other working SELL orders are not counted)."""
        if inst.con_id in self.halted:
            raise OrderRejected(201, f"Order rejected - reason:Trading in {inst.symbol} is halted")
        if order.account in self.cash_accounts and not order.is_buy:
            pos = self.positions.get((order.account, inst.con_id))
            held = pos.quantity if pos else 0.0
            if order.total_quantity > held + 1e-12:
                raise OrderRejected(
                    201,
                    "Order rejected - reason:Short sales are not permitted in a cash account "
                    f"(position {held:g}, order SELL {order.total_quantity:g})",
                )

    def external_trade(
        self, account_id: str, con_id: int, quantity: float, price: float | None
    ) -> list[Event]:
        """A trade made outside the API (by hand in TWS, another platform): the position and cash
        change and position subscribers hear of it; no API client gets an execution."""
        if account_id not in self.accounts:
            raise KeyError(f"account {account_id} is not managed here")
        if not quantity or math.isinf(quantity) or math.isnan(quantity):
            raise ValueError("quantity must be a non-zero number (positive buys, negative sells)")
        inst = self.instrument(con_id)
        fill_price = self.price(con_id) if price is None else float(price)
        self._book(
            account_id, inst, quantity > 0, abs(quantity), fill_price, 0.0, self.fx_to_usd(inst.currency)
        )
        return [PositionEvent(account_id, con_id)]

    def _check_margin(self, order: Order, inst: Instrument) -> None:
        state = self._what_if_state(order, inst)
        if state.init_margin_change > 0 and state.init_margin_after > state.equity_with_loan_after:
            raise OrderRejected(
                201,
                "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION "
                f"YOUR EQUITY WITH LOAN VALUE [{state.equity_with_loan_after:.2f} USD] MUST EXCEED THE INITIAL "
                f"MARGIN [{state.init_margin_after:.2f} USD]",
            )

    # ---------------------------------------------------------------- whatIf

    def _what_if_state(self, order: Order, inst: Instrument) -> WhatIfState:
        price = self.price(inst.con_id)
        ref = unset_to_none(order.lmt_price) or price
        fx = self.fx_to_usd(inst.currency)
        rate = self.margin_rate(order.account, inst.sec_type)
        values = self.account_values(order.account)
        init_before = float(values["InitMarginReq"])
        maint_before = float(values["MaintMarginReq"])
        equity = float(values["EquityWithLoanValue"])
        pos = self.positions.get((order.account, inst.con_id))
        current = pos.quantity if pos else 0.0
        signed = order.total_quantity if order.is_buy else -order.total_quantity
        # margin changes with the absolute exposure, so a closing order frees margin
        change = (abs(current + signed) - abs(current)) * ref * inst.mult * fx * rate
        commission = commission_for(inst, order.total_quantity, ref, fx)
        return WhatIfState(
            init_margin_before=round(init_before, 2),
            maint_margin_before=round(maint_before, 2),
            equity_with_loan_before=round(equity, 2),
            init_margin_change=round(change, 2),
            maint_margin_change=round(change * 0.8, 2),
            equity_with_loan_change=round(-commission, 2),
            init_margin_after=round(init_before + change, 2),
            maint_margin_after=round(maint_before + change * 0.8, 2),
            equity_with_loan_after=round(equity - commission, 2),
            commission=commission,
            min_commission=commission,
            max_commission=commission,
        )

    # ---------------------------------------------------------------- account views

    def portfolio(self, account_id: str) -> list[dict[str, Any]]:
        """Portfolio rows (positions marked to the current price), as updatePortfolio carries them."""
        return [
            self.portfolio_row(account_id, con_id) for acct, con_id in self.positions if acct == account_id
        ]

    def portfolio_row(self, account_id: str, con_id: int) -> dict[str, Any]:
        """One portfolio row for a position (quantity 0 rows tell clients to drop the item)."""
        inst = self.instrument(con_id)
        pos = self.positions.get((account_id, con_id)) or Position(account_id, con_id)
        price = self.price(con_id)
        value = pos.quantity * price * inst.mult
        return {
            "account": account_id,
            "conId": con_id,
            "symbol": inst.symbol,
            "secType": inst.sec_type,
            "localSymbol": inst.local_symbol,
            "position": pos.quantity,
            "marketPrice": price,
            "marketValue": round(value, 6),
            "avgCost": round(pos.avg_cost, 8),
            "unrealizedPnL": round(value - pos.quantity * pos.avg_cost, 6),
            "realizedPnL": round(pos.realized_pnl, 6),
        }

    def margin_rate(self, account_id: str, sec_type: str) -> float:
        """Initial margin per unit of notional: the same rate for the account's figures and for a
        whatIf answer, so IB's ``initMarginChange`` and ``AvailableFunds`` always agree."""
        if account_id in self.cash_accounts and sec_type != "FUT":
            return 1.0
        return MARGIN_RATE.get(sec_type, 0.25)

    def account_values(self, account_id: str) -> dict[str, float | str]:
        """Account figures (USD) consistent with cash, positions and current prices."""
        account = self.accounts[account_id]
        stock_value = fut_unrealized = unrealized = gross = init_margin = 0.0
        by_type: dict[str, float] = {}
        for (acct, con_id), pos in self.positions.items():
            if acct != account_id or not pos.quantity:
                continue
            inst = self.instrument(con_id)
            fx = self.fx_to_usd(inst.currency)
            value = pos.quantity * self.price(con_id) * inst.mult * fx
            upnl = value - pos.quantity * pos.avg_cost * fx
            unrealized += upnl
            init_margin += abs(value) * self.margin_rate(account_id, inst.sec_type)
            by_type[inst.sec_type] = by_type.get(inst.sec_type, 0.0) + value
            if inst.sec_type == "FUT":
                fut_unrealized += upnl
            else:
                stock_value += value
                gross += abs(value)
        net_liq = account.cash + stock_value + fut_unrealized
        maint = init_margin * 0.8
        available = net_liq - init_margin
        excess = net_liq - maint
        return {
            "NetLiquidation": round(net_liq, 2),
            "TotalCashValue": round(account.cash, 2),
            "SettledCash": round(account.cash, 2),
            "CashBalance": round(account.cash, 2),
            "EquityWithLoanValue": round(net_liq, 2),
            "GrossPositionValue": round(gross, 2),
            "StockMarketValue": round(by_type.get("STK", 0.0), 2),
            "FuturesPNL": round(fut_unrealized, 2),
            "InitMarginReq": round(init_margin, 2),
            "MaintMarginReq": round(maint, 2),
            "FullInitMarginReq": round(init_margin, 2),
            "FullMaintMarginReq": round(maint, 2),
            "AvailableFunds": round(available, 2),
            "FullAvailableFunds": round(available, 2),
            "ExcessLiquidity": round(excess, 2),
            "FullExcessLiquidity": round(excess, 2),
            "BuyingPower": round(max(available, 0.0) * 4, 2),
            "UnrealizedPnL": round(unrealized, 2),
            "RealizedPnL": round(account.realized_pnl, 2),
            "Cushion": round(excess / net_liq, 6) if net_liq else 0.0,
            "Leverage": round(gross / net_liq, 6) if net_liq else 0.0,
        }

    def daily_pnl(self, account_id: str) -> tuple[float, float, float]:
        """(daily, unrealized, realized) P&L since the start (or the last reset)."""
        values = self.account_values(account_id)
        daily = float(values["NetLiquidation"]) - self.daily_start_netliq.get(account_id, self.initial_cash)
        return round(daily, 2), float(values["UnrealizedPnL"]), float(values["RealizedPnL"])

    # ---------------------------------------------------------------- queries

    def open_orders(self, client_id: int | None = None) -> list[Order]:
        """Active, transmitted orders (of one client, or all)."""
        return [
            o
            for o in self.orders.values()
            if o.is_active and o.transmit and (client_id is None or o.client_id == client_id)
        ]

    def completed_orders(self) -> list[Order]:
        """Finished orders, oldest first."""
        return [o for o in self.orders.values() if not o.is_active]

    def executions_matching(self, flt: ExecFilter) -> list[Execution]:
        """Executions selected by a reqExecutions filter (empty fields and clientId 0 match all)."""
        after = parse_time_field(flt.time, date_only=True)
        out = []
        for ex in self.executions:
            if flt.client_id and ex.client_id != flt.client_id:
                continue
            if flt.account and ex.account != flt.account:
                continue
            if after is not None and ex.time < after:
                continue
            inst = self.catalog.get(ex.con_id)
            if flt.symbol and (inst is None or flt.symbol.upper() not in (inst.symbol, inst.local_symbol)):
                continue
            if flt.sec_type and (inst is None or flt.sec_type.upper() != inst.sec_type):
                continue
            if flt.exchange and flt.exchange.upper() not in (ex.exchange, ex.order_exchange):
                continue
            side = flt.side.upper()
            if side and {"BUY": "BOT", "SELL": "SLD", "SSHORT": "SLD"}.get(side, side) != ex.side:
                continue
            out.append(ex)
        return out

    def find_instruments(
        self, symbol: str = "", sec_type: str = "", con_id: int | None = None, **kw: str
    ) -> list[Instrument]:
        """Instruments addressed by the control API (conId, or symbol + optional secType...)."""
        if con_id:
            inst = self.catalog.get(int(con_id))
            return [inst] if inst else []
        found = self.catalog.find(symbol, sec_type, **kw)
        if not found:
            query = ContractQuery(symbol=symbol, sec_type=sec_type)
            found = self.catalog.match(query) if symbol else []
        return found

    def _time_text(self) -> str:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")

    # ---------------------------------------------------------------- views and persistence

    def state(self) -> dict[str, Any]:
        """The GET /state document."""
        orders = []
        for o in self.orders.values():
            inst = self.catalog.get(o.con_id)
            row = o.to_json()
            row["symbol"] = inst.symbol if inst else ""
            row["secType"] = inst.sec_type if inst else ""
            row["localSymbol"] = inst.local_symbol if inst else ""
            orders.append(row)
        positions = []
        for (account, con_id), pos in self.positions.items():
            if not pos.quantity:
                continue
            row = self.portfolio_row(account, con_id)
            positions.append(row)
        return {
            "accounts": list(self.account_ids),
            "orders": orders,
            "executions": [e.to_json() for e in self.executions],
            "positions": positions,
            "accountValues": {a: self.account_values(a) for a in self.account_ids},
            "prices": {str(k): v for k, v in self.prices.items()},
            "fillsPaused": self.fills_paused,
            "fillLimits": {str(k): v for k, v in self.contract_fill_limits.items()},
            "rejectNext": len(self.reject_queue),
        }

    def dump(self) -> dict[str, Any]:
        """Everything a restart must keep (--state)."""
        return {
            "version": 1,
            "orders": [o.dump() for o in self.orders.values()],
            "executions": [e.dump() for e in self.executions],
            "positions": [p.dump() for p in self.positions.values()],
            "accounts": [a.dump() for a in self.accounts.values()],
            "prices": {str(k): v for k, v in self.prices.items()},
            "maxOrderId": {str(k): v for k, v in self.max_order_id.items()},
            "nextPermId": self.next_perm_id,
            "execCount": self._exec_count,
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore a dump() (unknown conIds are skipped: the catalog may have rolled)."""
        self.reset(keep_ids=False)
        for row in data.get("orders", []):
            order = Order(**row)
            # orders of contracts that left the catalog (expired futures) cannot be served
            if self.catalog.get(order.con_id):
                self._register(order)
        known = self.catalog.get
        self.executions = [
            ex for ex in (Execution(**row) for row in data.get("executions", [])) if known(ex.con_id)
        ]
        for row in data.get("positions", []):
            pos = Position(**row)
            if not known(pos.con_id):
                log.warning("dropping position in conId %s: no longer in the catalog", pos.con_id)
                continue
            self.positions[(pos.account, pos.con_id)] = pos
            if pos.account not in self.accounts:
                self.account_ids.append(pos.account)
                self.accounts[pos.account] = Account(pos.account, cash=self.initial_cash)
        for row in data.get("accounts", []):
            account = Account(**row)
            if account.account_id not in self.accounts:
                self.account_ids.append(account.account_id)
            self.accounts[account.account_id] = account
        for key, value in data.get("prices", {}).items():
            if self.catalog.get(int(key)):
                self.prices[int(key)] = float(value)
        self.max_order_id = {int(k): int(v) for k, v in data.get("maxOrderId", {}).items()}
        self.next_perm_id = int(data.get("nextPermId", self.next_perm_id))
        self._exec_count = int(data.get("execCount", len(self.executions)))
        self.exec_seq = itertools.count(self._exec_count + 1)
