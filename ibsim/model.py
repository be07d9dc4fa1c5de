"""Plain data records shared by the codecs and the engine: order requests, orders, executions,
positions, options' expirations, accounts, what-if figures, the reqExecutions filter, historical
bars and option greeks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ibsim.catalog.instruments import ContractQuery
from ibsim.framing import UNSET_DOUBLE

#: a JSON object: the control API's bodies and answers, the /state and --state documents
Json = dict[str, Any]

ACTIVE_STATUSES = frozenset({"PendingSubmit", "PreSubmitted", "Submitted", "PendingCancel"})
DONE_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})


def unset_to_none(value: float) -> float | None:
    """UNSET_DOUBLE as None (for JSON and arithmetic)."""
    return None if value is None or value >= UNSET_DOUBLE else value


def camel_view(record: object, names: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The control API's camelCase view of a record: (camelCase key, attribute) pairs, unset
    doubles as None."""
    view: dict[str, Any] = {}
    for key, attr in names:
        value = getattr(record, attr)
        view[key] = unset_to_none(value) if isinstance(value, float) else value
    return view


class Dumpable:
    """A record that --state persistence writes whole."""

    def dump(self) -> dict[str, Any]:
        """Full record for --state persistence."""
        record: Any = self  # every subclass is a dataclass
        return asdict(record)


@dataclass
class OrderRequest:
    """A decoded placeOrder message (only the fields the simulator uses or echoes)."""

    order_id: int
    contract: ContractQuery
    action: str
    total_quantity: float
    order_type: str
    lmt_price: float = UNSET_DOUBLE
    aux_price: float = UNSET_DOUBLE
    tif: str = ""
    oca_group: str = ""
    account: str = ""
    open_close: str = "O"
    origin: int = 0
    order_ref: str = ""
    transmit: bool = True
    parent_id: int = 0
    outside_rth: bool = False
    hidden: bool = False
    good_after_time: str = ""
    good_till_date: str = ""
    oca_type: int = 0
    trail_stop_price: float = UNSET_DOUBLE
    trailing_percent: float = UNSET_DOUBLE
    what_if: bool = False
    cash_qty: float = UNSET_DOUBLE
    sec_type_bag: bool = False
    conditions_count: int = 0


_ORDER_VIEW = (
    ("orderId", "order_id"), ("clientId", "client_id"), ("permId", "perm_id"), ("orderRef", "order_ref"),
    ("conId", "con_id"), ("action", "action"), ("quantity", "total_quantity"), ("orderType", "order_type"),
    ("lmtPrice", "lmt_price"), ("auxPrice", "aux_price"), ("trailStopPrice", "trail_stop_price"),
    ("trailingPercent", "trailing_percent"), ("tif", "tif"), ("parentId", "parent_id"),
    ("ocaGroup", "oca_group"), ("ocaType", "oca_type"), ("account", "account"), ("transmit", "transmit"),
    ("outsideRth", "outside_rth"), ("status", "status"), ("filled", "filled"), ("remaining", "remaining"),
    ("avgFillPrice", "avg_fill_price"), ("lastFillPrice", "last_fill_price"), ("fillLimit", "fill_limit"),
)  # fmt: skip


@dataclass
class Order(Dumpable):
    """An order as the simulated TWS holds it."""

    client_id: int
    order_id: int
    perm_id: int
    con_id: int
    exchange: str  # the order's routing exchange, echoed back
    action: str
    total_quantity: float
    order_type: str
    lmt_price: float = UNSET_DOUBLE
    aux_price: float = UNSET_DOUBLE
    tif: str = "DAY"
    oca_group: str = ""
    oca_type: int = 0
    account: str = ""
    order_ref: str = ""
    transmit: bool = True
    parent_id: int = 0
    outside_rth: bool = False
    good_till_date: str = ""
    trail_stop_price: float = UNSET_DOUBLE
    trailing_percent: float = UNSET_DOUBLE
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    triggered: bool = False  # stop / stop-limit / trail triggered
    created: float = 0.0
    completed_time: str = ""
    completed_status: str = ""
    fill_limit: float | None = None  # max quantity per fill event (partial-fill testing)
    parent_perm_id: int = 0

    @property
    def key(self) -> tuple[int, int]:
        """(clientId, orderId): the identity TWS uses."""
        return (self.client_id, self.order_id)

    @property
    def remaining(self) -> float:
        """Quantity still to fill."""
        return max(0.0, round(self.total_quantity - self.filled, 10))

    @property
    def is_active(self) -> bool:
        """Working (or staged / held) and not finished."""
        return self.status in ACTIVE_STATUSES

    @property
    def is_buy(self) -> bool:
        """Buy side (SSHORT/SELL are sells)."""
        return self.action.upper() == "BUY"

    def to_json(self) -> dict[str, Any]:
        """The /state view of the order (camelCase like the rest of the control API)."""
        return camel_view(self, _ORDER_VIEW)


_EXECUTION_VIEW = (
    ("execId", "exec_id"), ("clientId", "client_id"), ("orderId", "order_id"), ("permId", "perm_id"),
    ("conId", "con_id"), ("account", "account"), ("side", "side"), ("shares", "shares"), ("price", "price"),
    ("cumQty", "cum_qty"), ("avgPrice", "avg_price"), ("orderRef", "order_ref"), ("time", "time"),
    ("exchange", "exchange"), ("commission", "commission"), ("realizedPnL", "realized_pnl"),
)  # fmt: skip


@dataclass(frozen=True)
class Execution(Dumpable):
    """One fill."""

    exec_id: str
    client_id: int
    order_id: int
    perm_id: int
    con_id: int
    account: str
    side: str  # BOT / SLD
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    order_ref: str
    time: float  # unix seconds
    exchange: str  # execution venue
    order_exchange: str  # the contract exchange of the order (e.g. SMART)
    commission: float
    commission_currency: str
    realized_pnl: float | None  # None for opening fills
    liquidity: int = 2

    def to_json(self) -> dict[str, Any]:
        """The /state view of the execution."""
        return camel_view(self, _EXECUTION_VIEW)


@dataclass
class Position(Dumpable):
    """A position per (account, conId); avg_cost follows IB: price × multiplier."""

    account: str
    con_id: int
    quantity: float = 0.0
    avg_cost: float = 0.0
    realized_pnl: float = 0.0


_EXPIRATION_VIEW = (
    ("account", "account"), ("conId", "con_id"), ("symbol", "symbol"), ("localSymbol", "local_symbol"),
    ("right", "right"), ("strike", "strike"), ("expiry", "expiry"), ("position", "position"),
    ("outcome", "outcome"), ("underConId", "under_con_id"), ("underPrice", "under_price"),
    ("shares", "shares"), ("time", "time"),
)  # fmt: skip


@dataclass(frozen=True)
class Expiration(Dumpable):
    """One position in an option ended at its expiry: ``outcome`` is ``exercised`` (long, in the
    money), ``assigned`` (short, in the money) or ``expired`` (worthless); ``shares`` is the signed
    change of the underlying's position, traded at the strike (0 when it expired)."""

    account: str
    con_id: int
    symbol: str
    local_symbol: str
    right: str
    strike: float
    expiry: str  # YYYYMMDD
    position: float  # the option position that ended (signed)
    outcome: str
    under_con_id: int
    under_price: float  # the underlying's ibsim price that decided it
    shares: float
    time: float  # unix seconds, by the engine's clock

    def to_json(self) -> dict[str, Any]:
        """The /state view of the expiration."""
        return camel_view(self, _EXPIRATION_VIEW)


@dataclass
class Account(Dumpable):
    """Cash and realised P&L of one account, in USD."""

    account_id: str
    cash: float = 1_000_000.0
    realized_pnl: float = 0.0
    commissions: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WhatIfState:
    """Margin and commission figures of a whatIf answer (numeric), IB's ``warningText``, and the
    figures sent as text instead (the fault ``broken_what_if``: IB's unset 1.7976931348623157E308
    or ``Infinity``, as erdewit/ib_insync#380 shows)."""

    init_margin_before: float
    maint_margin_before: float
    equity_with_loan_before: float
    init_margin_change: float
    maint_margin_change: float
    equity_with_loan_change: float
    init_margin_after: float
    maint_margin_after: float
    equity_with_loan_after: float
    commission: float
    min_commission: float
    max_commission: float
    commission_currency: str = "USD"
    warning_text: str = ""
    #: figure name -> the text sent in its place
    texts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecFilter:
    """reqExecutions filter; empty fields and clientId 0 are wildcards."""

    client_id: int = 0
    account: str = ""
    time: str = ""
    symbol: str = ""
    sec_type: str = ""
    exchange: str = ""
    side: str = ""


@dataclass(frozen=True)
class Bar:
    """One historical bar; ``date`` is already in wire form (``YYYYMMDD`` or unix seconds)."""

    date: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    average: float
    bar_count: int


@dataclass(frozen=True)
class Greeks:
    """One option computation, as tickOptionComputation carries it (``implied_vol`` None: not
    computed, IB's unset markers go instead)."""

    implied_vol: float | None
    delta: float
    opt_price: float
    gamma: float
    vega: float
    theta: float
    und_price: float
