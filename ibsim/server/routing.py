"""Routing of engine events to connections: order events to their owner, price changes to the
market-data subscribers, position changes to the position, account and P&L subscribers."""

from __future__ import annotations

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
from ibsim.messages.executions import commission_report, exec_details
from ibsim.messages.orders import open_order, order_status
from ibsim.server.connections import Connections
from ibsim.session import Session

ORDER_EVENTS = (OrderEvent, FillEvent, OrderErrorEvent, WhatIfEvent)


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

    def apply(self, events: Sequence[Event]) -> None:
        """Send what a batch of events means to each connection."""
        if not events:
            return
        latency = self.connections.conditions.latency
        changed: dict[tuple[str, int], None] = {}
        prices: dict[int, float] = {}
        for event in events:
            if isinstance(event, ORDER_EVENTS):
                self._send_order_event(event, latency.orders)
            elif isinstance(event, PositionEvent):
                changed[(event.account, event.con_id)] = None
            elif isinstance(event, PriceEvent):
                prices[event.con_id] = event.price
        for con_id in prices:
            for session in list(self.connections.sessions):
                for req_id, cid in session.mkt.items():
                    if cid == con_id:
                        self.feeds.send_ticks(session, req_id, con_id)
        if changed:  # TWS reports positions a moment after the fill (fault position_delay widens it)
            self._send_position_updates(list(changed), latency.orders + latency.positions)
        self.on_change()

    def _owner(self, client_id: int) -> Session | None:
        return self.connections.by_client.get(client_id)

    def _send_order_event(self, event: Event, delay: float) -> None:
        instrument = self.engine.market.instrument
        if isinstance(event, OrderErrorEvent):
            session = self._owner(event.client_id)
            if session is not None:
                session.error(event.order_id, event.code, event.text, delay)
        elif isinstance(event, FillEvent):
            ex = event.execution
            session = self._owner(ex.client_id)
            if session is not None:
                fields = (
                    exec_details(-1, ex, instrument(ex.con_id))
                    if isinstance(event, ExecutionEvent)
                    else commission_report(ex)
                )
                session.send(fields, delay)
        elif isinstance(event, OrderEvent | WhatIfEvent):
            order = event.order
            session = self._owner(order.client_id)
            if session is None:
                return
            if isinstance(event, OpenOrderEvent):
                session.send(open_order(order, instrument(order.con_id)), delay)
            elif isinstance(event, OrderStatusEvent):
                session.send(order_status(order), delay)
            elif isinstance(event, WhatIfEvent):
                session.send(open_order(order, instrument(order.con_id), "PreSubmitted", event.state), delay)

    def _send_position_updates(self, changed: list[tuple[str, int]], delay: float) -> None:
        accounts = {a for a, _ in changed}
        for session in list(self.connections.sessions):
            if session.closed or session.client_id is None:
                continue
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
