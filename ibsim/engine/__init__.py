"""The matching engine: orders, fills, positions and accounts, without I/O (see :mod:`.core`).

This package only gathers the names under ``ibsim.engine``; modules inside ibsim import the
module that defines what they need.
"""

from ibsim.engine.core import DEFAULT_ACCOUNT, INITIAL_CASH, Engine
from ibsim.engine.costs import MARGIN_RATE, commission_for
from ibsim.engine.events import (
    CommissionEvent,
    Event,
    ExecutionEvent,
    OpenOrderEvent,
    OrderErrorEvent,
    OrderRejected,
    OrderStatusEvent,
    PositionEvent,
    PriceEvent,
    WhatIfEvent,
)

__all__ = [
    "DEFAULT_ACCOUNT",
    "INITIAL_CASH",
    "MARGIN_RATE",
    "CommissionEvent",
    "Engine",
    "Event",
    "ExecutionEvent",
    "OpenOrderEvent",
    "OrderErrorEvent",
    "OrderRejected",
    "OrderStatusEvent",
    "PositionEvent",
    "PriceEvent",
    "WhatIfEvent",
    "commission_for",
]
