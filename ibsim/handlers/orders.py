"""Order requests: placeOrder, cancelOrder, reqGlobalCancel go to the engine (its events come back
through the router); open orders, completed orders and executions are answered from its book."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ibsim.engine.core import Engine
from ibsim.engine.events import Event
from ibsim.framing import FieldReader
from ibsim.handlers.dispatch import RequestGroup, answers
from ibsim.messages import ids
from ibsim.messages.executions import (
    commission_report,
    exec_details,
    exec_details_end,
    parse_executions_request,
)
from ibsim.messages.orders import (
    completed_order,
    completed_orders_end,
    open_order,
    open_order_end,
    order_status,
)
from ibsim.messages.place_order import parse_place_order
from ibsim.session import Session

#: hands the engine events answering a client's order request to the router (SimServer.answer:
#: the latency profile's acknowledgement applies to them)
Apply = Callable[[Sequence[Event]], None]


class OrderRequests(RequestGroup):
    """The order and execution requests of every client."""

    def __init__(self, engine: Engine, apply: Apply) -> None:
        self.engine = engine
        self.apply = apply

    @answers(ids.PLACE_ORDER)
    def place_order(self, session: Session, fields: list[str]) -> None:
        """placeOrder: a new order, a modify or a whatIf."""
        self.apply(self.engine.place(session.client_id or 0, parse_place_order(fields)))

    @answers(ids.CANCEL_ORDER)
    def cancel_order(self, session: Session, fields: list[str]) -> None:
        """cancelOrder of the client's own order."""
        self.apply(self.engine.cancel(session.client_id or 0, FieldReader(fields, 2).int()))

    @answers(ids.REQ_GLOBAL_CANCEL)
    def global_cancel(self, session: Session, fields: list[str]) -> None:
        """reqGlobalCancel: every active order of every client."""
        self.apply(self.engine.global_cancel())

    @answers(ids.REQ_OPEN_ORDERS, ids.REQ_ALL_OPEN_ORDERS)
    def open_orders(self, session: Session, fields: list[str]) -> None:
        """reqOpenOrders (this client's) / reqAllOpenOrders: openOrder + orderStatus each, then the end."""
        all_clients = int(fields[0]) == ids.REQ_ALL_OPEN_ORDERS
        for order in self.engine.book.open_orders(None if all_clients else session.client_id):
            session.send(open_order(order, self.engine.market.instrument(order.con_id)))
            session.send(order_status(order))
        session.send(open_order_end())

    @answers(ids.REQ_COMPLETED_ORDERS)
    def completed_orders(self, session: Session, fields: list[str]) -> None:
        """reqCompletedOrders: every finished order, then the end."""
        for order in self.engine.book.completed_orders():
            session.send(completed_order(order, self.engine.market.instrument(order.con_id)))
        session.send(completed_orders_end())

    @answers(ids.REQ_EXECUTIONS)
    def executions(self, session: Session, fields: list[str]) -> None:
        """reqExecutions: execDetails + commissionReport per matching fill, then the end."""
        req_id, flt = parse_executions_request(fields)
        for ex in self.engine.executions_matching(flt):
            session.send(exec_details(req_id, ex, self.engine.market.instrument(ex.con_id)))
            session.send(commission_report(ex))
        session.send(exec_details_end(req_id))
