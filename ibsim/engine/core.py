"""The engine: orders, fills, positions and accounts of one simulated TWS (all clients, all
accounts). Pure: no I/O, no clock of its own.

:class:`Engine` is what the server and the tests hold: its state (:mod:`.state`: the market, the
order book, the ledger, the executions log, the engine faults) and the parts that act on it
(order entry, matching, fills with their OCA / bracket consequences). Every public operation
returns a list of events (:mod:`ibsim.engine.events`).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable

from ibsim.catalog.instruments import Instrument
from ibsim.catalog.lookup import Catalog
from ibsim.engine.entry import OrderEntry
from ibsim.engine.events import Event, ExecutionEvent, PositionEvent, PriceEvent
from ibsim.engine.expiry import OptionExpiry
from ibsim.engine.fills import Fills
from ibsim.engine.matching import Matcher
from ibsim.engine.persistence import dump as dump_state
from ibsim.engine.persistence import restore as restore_state
from ibsim.engine.persistence import state_view
from ibsim.engine.state import EngineState
from ibsim.model import ExecFilter, Execution, Json, Order, OrderRequest

DEFAULT_ACCOUNT = "DU1234567"
INITIAL_CASH = 1_000_000.0


class Engine(EngineState):
    """Orders, fills, positions and accounts of one simulated TWS (all clients, all accounts)."""

    def __init__(
        self,
        catalog: Catalog,
        accounts: Iterable[str] = (DEFAULT_ACCOUNT,),
        clock: Callable[[], float] | None = None,
        initial_cash: float = INITIAL_CASH,
        margin_check: bool = False,
    ) -> None:
        super().__init__(catalog, list(accounts) or [DEFAULT_ACCOUNT], clock or time.time, initial_cash)
        self.fills = Fills(self)
        self.matcher = Matcher(self, self.fills)
        self.entry = OrderEntry(self, self.fills, self.matcher, margin_check)
        self.expiry = OptionExpiry(self, self.fills)

    # ---------------------------------------------------------------- what the server and tests read

    def next_valid_id(self, client_id: int) -> int:
        """One more than the highest order id this client ever used (at least 1)."""
        return self.book.next_valid_id(client_id)

    def account_values(self, account_id: str) -> dict[str, float | str]:
        """Account figures (USD) consistent with cash, positions and current prices."""
        return self.ledger.account_values(account_id)

    def executions_matching(self, flt: ExecFilter) -> list[Execution]:
        """Executions selected by a reqExecutions filter."""
        return self.execution_log.matching(flt)

    def find_instruments(
        self, symbol: str = "", sec_type: str = "", con_id: int | None = None, **kw: str
    ) -> list[Instrument]:
        """Instruments addressed by the control API (conId, or symbol + optional secType...)."""
        return self.market.find_instruments(symbol, sec_type, con_id, **kw)

    # ---------------------------------------------------------------- client requests

    def place(self, client_id: int, req: OrderRequest) -> list[Event]:
        """Handle placeOrder: new order, modify, whatIf or rejection."""
        return self.entry.place(client_id, req)

    def cancel(self, client_id: int, order_id: int, reason: str = "") -> list[Event]:
        """Handle cancelOrder from its owner."""
        return self.entry.cancel(client_id, order_id, reason)

    def _cancel(self, order: Order, reason: str = "") -> list[Event]:
        """Cancel an order from IB's side (an expiry, a cancel by IB): error 202 with ``reason``."""
        return self.fills.cancel(order, reason)

    def global_cancel(self) -> list[Event]:
        """reqGlobalCancel: cancel every active order of every client."""
        events: list[Event] = []
        for order in list(self.book.orders.values()):
            if order.is_active:
                events += self.fills.cancel(order)
        return events

    # ---------------------------------------------------------------- the market and the operator

    def set_price(self, con_id: int, price: float) -> list[Event]:
        """New current price: tick event, then every working order on the contract is re-matched."""
        events: list[Event] = [PriceEvent(con_id, self.market.set_price(con_id, price))]
        events += self.matcher.match_all(self.book.working_on(con_id))
        options = self._options_on(con_id)  # their quotes follow the underlying
        for option in options:
            events += self.matcher.match_all(self.book.working_on(option))
        marks = [
            PositionEvent(account, option) for option in options for account in self.ledger.holders(option)
        ]
        if any(isinstance(e, ExecutionEvent) for e in events):
            return events + marks
        # positions are marked to the new price even without fills
        return events + [PositionEvent(account, con_id) for account in self.ledger.holders(con_id)] + marks

    def _options_on(self, con_id: int) -> list[int]:
        """The options on ``con_id`` with working orders or positions."""
        if self.catalog.options is None:
            return []
        held = {cid for (_, cid), pos in self.positions.items() if pos.quantity}
        out = []
        for cid in sorted(held.union(self.book.working_con_ids())):
            inst = self.catalog.get(cid)
            if inst is not None and inst.sec_type == "OPT" and inst.under_con_id == con_id:
                out.append(cid)
        return out

    def end_of_day(self) -> list[Event]:
        """Session close: the closing auction fills MOC / LOC orders, then DAY (and OPG) orders
        expire as Cancelled; GTC/GTD orders keep working; then the options expiring today (the
        engine clock's day in New York) expire (:meth:`expire_options`)."""
        events = self.matcher.closing_auction_fills()
        for order in list(self.book.orders.values()):
            if order.is_active and order.tif in ("DAY", "OPG", ""):
                events += self.fills.cancel(order, "Expired")
        return events + self.expire_options(self.market.today())

    def expire_options(self, through: dt.date | None = None) -> list[Event]:
        """The options' expiry (:mod:`ibsim.engine.expiry`): every option expiring on or before
        ``through``, or (without it) whose session end has passed by the clock, is settled: its
        working orders cancelled, its positions exercised, assigned or expired worthless."""
        return self.expiry.expire(through)

    def rematch_all(self) -> list[Event]:
        """Match every working order (after resume_fills or a fill-limit change)."""
        return self.matcher.rematch_all()

    def pause_fills(self) -> None:
        """Stop matching until resume_fills."""
        self.faults.fills_paused = True

    def resume_fills(self) -> list[Event]:
        """Resume matching and match everything that became marketable meanwhile."""
        self.faults.fills_paused = False
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
            order = self.book.get(client_id or 0, order_id)
            if order is None:
                raise KeyError(f"no order {order_id} of client {client_id}")
            order.fill_limit = quantity
        elif con_id is not None:
            self.faults.set_contract_limit(con_id, quantity)
        else:
            raise ValueError("give an order (clientId, orderId) or a contract")

    def manual_fill(
        self, client_id: int, order_id: int, quantity: float | None = None, price: float | None = None
    ) -> list[Event]:
        """Force a fill of an active order (control API), ignoring prices and pauses."""
        order = self.book.get(client_id, order_id)
        if order is None or not order.is_active or not order.transmit:
            raise KeyError(f"no working order {order_id} of client {client_id}")
        qty = min(order.remaining, quantity if quantity is not None else order.remaining)
        if not qty > 0:
            raise ValueError("quantity must be positive")
        return self.matcher.fill(order, qty, price if price is not None else self.market.price(order.con_id))

    def external_trade(
        self, account_id: str, con_id: int, quantity: float, price: float | None
    ) -> list[Event]:
        """A trade made outside the API (by hand in TWS, another platform): the position and cash
        change and position subscribers hear of it; no API client gets an execution."""
        if account_id not in self.ledger.accounts:
            raise KeyError(f"account {account_id} is not managed here")
        if not quantity or math.isinf(quantity) or math.isnan(quantity):
            raise ValueError("quantity must be a non-zero number (positive buys, negative sells)")
        inst = self.market.instrument(con_id)
        fill_price = self.market.price(con_id) if price is None else float(price)
        fx = self.market.fx_to_usd(inst.currency)
        self.ledger.book(account_id, inst, quantity > 0, abs(quantity), fill_price, 0.0, fx)
        return [PositionEvent(account_id, con_id)]

    # ---------------------------------------------------------------- views and persistence

    def state(self) -> Json:
        """The GET /state document's engine part."""
        return state_view(self)

    def dump(self) -> Json:
        """Everything a restart must keep (--state)."""
        return dump_state(self)

    def load(self, data: Json) -> None:
        """Restore a dump() (unknown conIds are skipped: the catalog may have rolled)."""
        self.reset(keep_ids=False)
        restore_state(data, self)
