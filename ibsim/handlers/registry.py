"""The request handlers of one simulator, gathered into the table the connections dispatch on."""

from __future__ import annotations

from ibsim.engine.core import Engine
from ibsim.handlers.account import AccountRequests
from ibsim.handlers.connection import ConnectionRequests
from ibsim.handlers.contracts import ContractRequests
from ibsim.handlers.dispatch import Handler
from ibsim.handlers.feeds import Feeds
from ibsim.handlers.historical import HistoricalRequests
from ibsim.handlers.market_data import Entitlement, MarketDataRequests
from ibsim.handlers.orders import Apply, OrderRequests
from ibsim.latency import Latency


def request_handlers(
    engine: Engine, answer: Apply, feeds: Feeds, entitlement: Entitlement, latency: Latency
) -> dict[int, Handler]:
    """Message id -> handler, for every request ibsim answers (``latency``: the profile holding
    answers back)."""
    groups = (
        ConnectionRequests(engine),
        OrderRequests(engine, answer),
        AccountRequests(engine, feeds),
        ContractRequests(engine.catalog, latency),
        MarketDataRequests(engine, feeds, entitlement, latency),
        HistoricalRequests(engine),
    )
    table: dict[int, Handler] = {}
    for group in groups:
        table.update(group.table())
    return table
