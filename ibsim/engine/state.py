"""The engine's state: the parts every engine operation reads and changes (the market, the order
book, the ledger, the executions log, the engine faults, the options' expirations) and the clock,
with the reset that keeps ids unique."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from ibsim.catalog.lookup import Catalog
from ibsim.engine.book import OrderBook
from ibsim.engine.executions import ExecutionLog
from ibsim.engine.faults import EngineFaults
from ibsim.engine.ledger import Ledger
from ibsim.engine.market import Market
from ibsim.model import Account, Execution, Expiration, Order, Position

T = TypeVar("T")


class PartAttribute(Generic[T]):
    """A read-only attribute of the state that lives on one of its parts (``engine.orders`` is
    ``engine.book.orders``), current across a reset that replaces the part."""

    def __init__(self, part: str, name: str) -> None:
        self.part, self.name = part, name

    @overload
    def __get__(self, state: None, owner: type) -> PartAttribute[T]: ...
    @overload
    def __get__(self, state: object, owner: type | None = None) -> T: ...
    def __get__(self, state: Any, owner: Any = None) -> Any:
        if state is None:
            return self
        return getattr(getattr(state, self.part), self.name)


class EngineState:
    """One simulated TWS's orders, fills, positions, accounts and prices. The parts that act on
    them (order entry, matching, fills) hold this object, so a reset that replaces a part is seen
    by all of them."""

    #: the managed accounts, the default first
    account_ids: PartAttribute[list[str]] = PartAttribute("ledger", "account_ids")
    #: every order by (clientId, orderId)
    orders: PartAttribute[dict[tuple[int, int], Order]] = PartAttribute("book", "orders")
    #: every fill, oldest first
    executions: PartAttribute[list[Execution]] = PartAttribute("execution_log", "executions")
    #: positions by (account, conId)
    positions: PartAttribute[dict[tuple[str, int], Position]] = PartAttribute("ledger", "positions")
    #: cash and realised P&L by account
    accounts: PartAttribute[dict[str, Account]] = PartAttribute("ledger", "accounts")
    #: accounts that may not sell short
    cash_accounts: PartAttribute[set[str]] = PartAttribute("ledger", "cash_accounts")
    #: conIds on which new orders are refused
    halted: PartAttribute[set[int]] = PartAttribute("market", "halted")
    #: (code, text) errors the next orders get
    reject_queue: PartAttribute[list[tuple[int, str]]] = PartAttribute("faults", "reject_queue")
    #: whether matching is stopped
    fills_paused: PartAttribute[bool] = PartAttribute("faults", "fills_paused")

    def __init__(
        self, catalog: Catalog, account_ids: list[str], clock: Callable[[], float], initial_cash: float
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.market = Market(catalog, clock)
        self.ledger = Ledger(self.market, account_ids, initial_cash)
        self.book = OrderBook()
        self.execution_log = ExecutionLog(catalog)
        self.faults = EngineFaults()
        #: the option positions ended at their expiry, oldest first
        self.expirations: list[Expiration] = []

    def reset(self, keep_ids: bool = True) -> None:
        """Forget every order, fill, position and expiration; prices back to defaults; faults cleared.

        Order ids, permIds and execIds stay unique for the life of the process (``keep_ids``), so
        a client still holding trades from before the reset never sees an id twice.
        """
        self.market.reset()
        self.ledger.reset()
        if keep_ids:
            self.book = OrderBook(self.book.max_order_id, self.book.next_perm_id)
            self.execution_log = ExecutionLog(
                self.catalog, self.execution_log.count, self.execution_log.prefix
            )
        else:
            self.book, self.execution_log = OrderBook(), ExecutionLog(self.catalog)
        self.faults = EngineFaults()
        self.expirations = []
