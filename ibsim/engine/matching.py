"""When a working order executes, and at what price; the matching passes over the book.

Simulator policies (documented, deliberately simple):

* MKT fills at the current price (an option's: its ask for a buy, its bid for a sell). A marketable LMT fills at the current price on arrival; a
  resting LMT fills at its limit when the price touches it. STP / TRAIL trigger at the stop
  and fill at the current price; STP LMT triggers, then behaves as LMT.
* Each matching pass (placement, every price change, resume) fills at most the fill-size
  limit of the order or its contract, so partial fills come one chunk per price event.
* DAY and GTC both rest until cancelled (no session calendar). IOC fills what it can on
  arrival and cancels the rest; FOK fills completely on arrival or is cancelled.
* MOC / LOC (market / limit on close) rest until the closing auction: MOC fills at the current
  price, LOC when that price is at or better than its limit.
"""

from __future__ import annotations

from ibsim.catalog.ticks import round_to_tick
from ibsim.engine.brackets import held
from ibsim.engine.events import Event
from ibsim.engine.fills import Fills
from ibsim.engine.state import EngineState
from ibsim.model import Order, unset_to_none

ON_CLOSE_TYPES = frozenset({"MOC", "LOC"})  # fill only in the closing auction (end_of_day)


def update_trail(order: Order, price: float, min_tick: float) -> None:
    """Move a trailing stop after the price (only ever towards it)."""
    pct = unset_to_none(order.trailing_percent)
    amount = unset_to_none(order.aux_price)
    offset = price * pct / 100.0 if pct is not None else (amount or 0.0)
    candidate = round_to_tick(price - offset if not order.is_buy else price + offset, min_tick)
    current = unset_to_none(order.trail_stop_price)
    if current is None:
        order.trail_stop_price = candidate
    elif not order.is_buy:
        order.trail_stop_price = max(current, candidate)
    else:
        order.trail_stop_price = min(current, candidate)


def _touched(order: Order, price: float, stop: float) -> bool:
    return price >= stop if order.is_buy else price <= stop


def executable_price(
    order: Order, price: float, min_tick: float, arriving: bool, closing_auction: bool
) -> float | None:
    """The fill price if the order can execute at ``price`` now, else None (stops trigger here)."""
    otype = order.order_type
    if otype in ON_CLOSE_TYPES:
        if not closing_auction:
            return None
        otype, arriving = ("MKT" if otype == "MOC" else "LMT"), True  # the auction's price
    if otype == "TRAIL":
        update_trail(order, price, min_tick)
        if _touched(order, price, order.trail_stop_price):
            order.triggered = True
        return price if order.triggered else None
    if otype in ("STP", "STP LMT") and not order.triggered:
        if not _touched(order, price, order.aux_price):
            return None
        order.triggered = True
    if otype in ("MKT", "STP"):
        return price
    lmt = order.lmt_price
    if order.is_buy and price <= lmt or not order.is_buy and price >= lmt:
        # marketable on arrival: price improvement; resting: filled at the limit when touched
        return price if arriving else lmt
    return None


class Matcher:
    """Matches working orders against the current price and hands executable ones to the fills."""

    def __init__(self, state: EngineState, fills: Fills) -> None:
        self.state = state
        self.fills = fills
        self.closing_auction = False  # True while the closing auction fills MOC / LOC orders

    def match(self, order: Order, arriving: bool = False) -> list[Event]:
        """Fill what the order can take now (at most its fill-size limit); IOC / FOK cancel the rest."""
        state = self.state
        if not order.is_active or not order.transmit or held(order, state.book) or state.faults.fills_paused:
            return []
        tif = order.tif
        inst = state.market.instrument(order.con_id)
        fill_price = executable_price(
            order, state.market.trade_price(order.con_id, order.is_buy), inst.min_tick, arriving,
            self.closing_auction,
        )  # fmt: skip
        limit = state.faults.fill_limit(order)
        if fill_price is None:
            if arriving and tif in ("IOC", "FOK"):
                return self.fills.cancel(order)
            return []
        qty = order.remaining if limit is None else min(order.remaining, limit)
        if tif == "FOK" and qty < order.remaining:
            return self.fills.cancel(order)
        events = self.fill(order, qty, fill_price)
        if tif == "IOC" and order.is_active:
            events += self.fills.cancel(order)
        return events

    def fill(self, order: Order, qty: float, price: float) -> list[Event]:
        """Fill, then match the bracket children the fill released (they arrive now)."""
        events, released = self.fills.fill(order, qty, price)
        for child in released:
            events += self.match(child, arriving=True)
        return events

    def match_all(self, orders: list[Order], arriving: bool = False) -> list[Event]:
        """Match each active order in turn."""
        events: list[Event] = []
        for order in orders:
            if order.is_active:
                events += self.match(order, arriving)
        return events

    def rematch_all(self) -> list[Event]:
        """Match every working order (after resume_fills or a fill-limit change)."""
        return self.match_all(self.state.book.by_placement())

    def closing_auction_fills(self) -> list[Event]:
        """The closing auction: MOC / LOC orders fill at the current price (LOC within its limit)."""
        self.closing_auction = True
        try:
            on_close = [o for o in self.state.book.orders.values() if o.order_type in ON_CLOSE_TYPES]
            return self.match_all(on_close)
        finally:
            self.closing_auction = False
