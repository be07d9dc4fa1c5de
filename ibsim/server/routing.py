"""Routing of engine events to connections: order events to their owner, price changes to the
market-data subscribers, position changes to the position, account and P&L subscribers; each held
back by the fault delays and the latency profile (:class:`OrderTiming`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from ibsim.engine.core import Engine
from ibsim.engine.events import (
    Event,
    ExecutionEvent,
    FillEvent,
    OpenOrderEvent,
    OrderErrorEvent,
    OrderEvent,
    OrderStatusEvent,
    PositionEvent,
    PriceEvent,
    WhatIfEvent,
)
from ibsim.handlers.feeds import Feeds
from ibsim.latency import Latency
from ibsim.messages.connection import error as error_message
from ibsim.messages.executions import commission_report, exec_details
from ibsim.messages.orders import open_order, order_status
from ibsim.server.connections import Connections
from ibsim.session import Session

ORDER_EVENTS = (OrderEvent, FillEvent, OrderErrorEvent, WhatIfEvent)


class OrderTiming:
    """When the order messages of one batch of events leave: the fault delay; under a latency
    profile also the acknowledgement (when the batch answers a client's order request), the fill
    (from the batch's first fill on) or the what-if answer, each family in its own lane."""

    def __init__(self, latency: Latency, answering: bool) -> None:
        self.latency = latency
        self.answering = answering
        self.filled = False
        #: the latest time (monotonic) an order message of the batch is due
        self.last_due = 0.0
        self._noted: set[tuple[str, int]] = set()

    def _timing(self, event: object) -> tuple[float, str, str]:
        """(delay, lane, kind) of one order event's message."""
        profile, base = self.latency.profile, self.latency.orders
        if not profile.active:
            return base, "", ""
        if isinstance(event, WhatIfEvent):
            return base + profile.what_if, "whatIf", "whatIf"
        if isinstance(event, FillEvent):
            self.filled = True
        delay = base + (profile.ack if self.answering else 0.0) + (profile.fill if self.filled else 0.0)
        return delay, "orders", "fill" if self.filled else "ack"

    def send(self, session: Session, event: object, order_id: int, fields: Sequence[object]) -> None:
        """Send one order message, held as :meth:`_timing` says; the first of each kind and order
        is noted in the latency log."""
        delay, lane, kind = self._timing(event)
        held = None
        if kind and (kind, order_id) not in self._noted:
            self._noted.add((kind, order_id))
            held = self.latency.log.note(kind, session.client_id, order_id, delay)
        self.last_due = max(self.last_due, session.send(fields, delay, lane, held))

    def positions_delay(self) -> float:
        """How long the position / account updates the batch causes are held back: after the
        batch's fill messages, plus the fault's and the profile's position delays."""
        latency = self.latency
        if not latency.profile.active:
            return latency.orders + latency.positions
        after_fill = max(latency.orders, self.last_due - time.monotonic())
        return after_fill + latency.positions + latency.profile.positions


class Router:
    """Turns engine events into messages for owners and subscribers (with the latency of the
    connections' conditions)."""

    def __init__(
        self,
        engine: Engine,
        connections: Connections,
        feeds: Feeds,
        on_change: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.connections = connections
        self.feeds = feeds
        #: called after every batch (the --state file is saved a moment later)
        self.on_change = on_change

    def apply(self, events: Sequence[Event], answering: bool = False) -> None:
        """Send what a batch of events means to each connection; ``answering``: the batch answers a
        client's order request (the latency profile's acknowledgement applies)."""
        if not events:
            return
        timing = OrderTiming(self.connections.conditions.latency, answering)
        changed: dict[tuple[str, int], None] = {}
        prices: dict[int, float] = {}
        for event in events:
            if isinstance(event, ORDER_EVENTS):
                self._send_order_event(event, timing)
            elif isinstance(event, PositionEvent):
                changed[(event.account, event.con_id)] = None
            elif isinstance(event, PriceEvent):
                prices[event.con_id] = event.price
        if prices:  # a stream on an option follows its underlying's price too
            for session in list(self.connections.sessions):
                for req_id, cid in list(session.mkt.items()):
                    if cid in prices or self._underlying(cid) in prices:
                        self.feeds.send_ticks(session, req_id, cid)
        if changed:  # TWS reports positions a moment after the fill (fault position_delay widens it)
            self._send_position_updates(list(changed), timing.positions_delay())
        self.on_change()

    def _underlying(self, con_id: int) -> int:
        """An option's underlying conId (0 for anything else)."""
        inst = self.engine.catalog.get(con_id)
        return inst.under_con_id if inst is not None and inst.sec_type == "OPT" else 0

    def _owner(self, client_id: int) -> Session | None:
        return self.connections.by_client.get(client_id)

    def _send_order_event(self, event: Event, timing: OrderTiming) -> None:
        instrument = self.engine.market.instrument
        if isinstance(event, OrderErrorEvent):
            session = self._owner(event.client_id)
            if session is not None:
                timing.send(
                    session, event, event.order_id, error_message(event.order_id, event.code, event.text)
                )
        elif isinstance(event, FillEvent):
            ex = event.execution
            session = self._owner(ex.client_id)
            if session is not None:
                fields = (
                    exec_details(-1, ex, instrument(ex.con_id))
                    if isinstance(event, ExecutionEvent)
                    else commission_report(ex)
                )
                timing.send(session, event, ex.order_id, fields)
        elif isinstance(event, OrderEvent | WhatIfEvent):
            order = event.order
            session = self._owner(order.client_id)
            if session is None:
                return
            if isinstance(event, OpenOrderEvent):
                fields = open_order(order, instrument(order.con_id))
            elif isinstance(event, OrderStatusEvent):
                fields = order_status(order)
            elif isinstance(event, WhatIfEvent):
                self.connections.stats["what_ifs"] += 1  # what-ifs answered (GET /state "stats")
                fields = open_order(order, instrument(order.con_id), "PreSubmitted", event.state)
            else:
                return
            timing.send(session, event, order.order_id, fields)

    def _holding(self, session: Session, delay: float) -> contextlib.AbstractContextManager[None]:
        """Under a latency profile the updates a fill causes take the account lane."""
        if self.connections.conditions.latency.profile.active:
            return session.holding("account", delay)
        return contextlib.nullcontext()

    def _send_position_updates(self, changed: list[tuple[str, int]], delay: float) -> None:
        accounts = {a for a, _ in changed}
        for session in list(self.connections.sessions):
            if session.closed or session.client_id is None:
                continue
            with self._holding(session, delay):
                self._send_updates_to(session, changed, accounts, delay)

    def _send_updates_to(
        self, session: Session, changed: list[tuple[str, int]], accounts: set[str], delay: float
    ) -> None:
        """One connection's position, account and P&L updates for the changed positions."""
        if session.positions:
            for account, con_id in changed:
                self.feeds.send_position(session, account, con_id, delay)
        subscribed = session.account_updates
        if subscribed is not None and subscribed in accounts:
            self._send_account_update(session, subscribed, changed, delay)
        for req_id, account in session.multi.items():
            if account in accounts:
                self.feeds.send_account_multi(session, req_id, account, delay)
        for req_id, account in session.pnl.items():
            if account in accounts:
                self.feeds.send_pnl(session, req_id, account, delay)
        for req_id, (account, con_id) in session.pnl_single.items():
            if (account, con_id) in changed:
                self.feeds.send_pnl_single(session, req_id, account, con_id)

    def _send_account_update(
        self, session: Session, account: str, changed: list[tuple[str, int]], delay: float
    ) -> None:
        """reqAccountUpdates subscribers: the changed portfolio rows, every value, the time."""
        for acct, con_id in changed:
            if acct == account:
                self.feeds.send_portfolio_row(session, self.engine.ledger.portfolio_row(acct, con_id), delay)
        self.feeds.send_account_values(session, account, delay)
        self.feeds.send_account_time(session, delay)
