"""Plain data records shared by the codecs and the engine: order requests, orders, executions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ibsim.catalog import ContractQuery
from ibsim.framing import UNSET_DOUBLE

ACTIVE_STATUSES = frozenset({"PendingSubmit", "PreSubmitted", "Submitted", "PendingCancel"})
DONE_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})


def unset_to_none(value: float) -> float | None:
    """UNSET_DOUBLE as None (for JSON and arithmetic)."""
    return None if value is None or value >= UNSET_DOUBLE else value


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


@dataclass
class Order:
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
        return {
            "orderId": self.order_id,
            "clientId": self.client_id,
            "permId": self.perm_id,
            "orderRef": self.order_ref,
            "conId": self.con_id,
            "action": self.action,
            "quantity": self.total_quantity,
            "orderType": self.order_type,
            "lmtPrice": unset_to_none(self.lmt_price),
            "auxPrice": unset_to_none(self.aux_price),
            "trailStopPrice": unset_to_none(self.trail_stop_price),
            "trailingPercent": unset_to_none(self.trailing_percent),
            "tif": self.tif,
            "parentId": self.parent_id,
            "ocaGroup": self.oca_group,
            "ocaType": self.oca_type,
            "account": self.account,
            "transmit": self.transmit,
            "outsideRth": self.outside_rth,
            "status": self.status,
            "filled": self.filled,
            "remaining": self.remaining,
            "avgFillPrice": self.avg_fill_price,
            "lastFillPrice": self.last_fill_price,
            "fillLimit": self.fill_limit,
        }

    def dump(self) -> dict[str, Any]:
        """Full record for --state persistence."""
        return asdict(self)


@dataclass(frozen=True)
class Execution:
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
        return {
            "execId": self.exec_id,
            "clientId": self.client_id,
            "orderId": self.order_id,
            "permId": self.perm_id,
            "conId": self.con_id,
            "account": self.account,
            "side": self.side,
            "shares": self.shares,
            "price": self.price,
            "cumQty": self.cum_qty,
            "avgPrice": self.avg_price,
            "orderRef": self.order_ref,
            "time": self.time,
            "exchange": self.exchange,
            "commission": self.commission,
            "realizedPnL": self.realized_pnl,
        }

    def dump(self) -> dict[str, Any]:
        """Full record for --state persistence."""
        return asdict(self)


@dataclass
class Position:
    """A position per (account, conId); avg_cost follows IB: price × multiplier."""

    account: str
    con_id: int
    quantity: float = 0.0
    avg_cost: float = 0.0
    realized_pnl: float = 0.0

    def dump(self) -> dict[str, Any]:
        """Full record for --state persistence."""
        return asdict(self)


@dataclass
class Account:
    """Cash and realised P&L of one account, in USD."""

    account_id: str
    cash: float = 1_000_000.0
    realized_pnl: float = 0.0
    commissions: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        """Full record for --state persistence."""
        return asdict(self)
