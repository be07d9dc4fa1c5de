"""What the engine tells the server: events carrying snapshots, and the rejection it raises inside.

Every public engine operation returns a list of events that the server turns into protocol
messages for the owner's connection (order events) or for subscribers (positions, account,
prices). Events carry snapshots, so a later change in the same batch cannot alter an earlier
message.
"""

from __future__ import annotations

from dataclasses import dataclass

from ibsim.model import Execution, Order, WhatIfState


@dataclass(frozen=True)
class OrderEvent:
    """An event about one order, with a snapshot of it."""

    order: Order


class OpenOrderEvent(OrderEvent):
    """openOrder for the owner (a snapshot of the order)."""


class OrderStatusEvent(OrderEvent):
    """orderStatus for the owner."""


@dataclass(frozen=True)
class FillEvent:
    """An event about one execution."""

    execution: Execution


class ExecutionEvent(FillEvent):
    """A live fill (execDetails with reqId -1) for the owner."""


class CommissionEvent(FillEvent):
    """commissionReport for the owner."""


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


def rejected(text: str) -> OrderRejected:
    """Error 201 with IB's prefix: ``Order rejected - reason:<text>``."""
    return OrderRejected(201, f"Order rejected - reason:{text}")
