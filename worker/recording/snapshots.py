"""What the IB layer hands the recorder: plain, frozen, thread-safe copies of IB's facts.

ib_async's objects live on the IB loop and change under it; the recorder runs on its own thread.
:mod:`worker.ib.translate` turns IB objects into these records at the moment of the event, so a
later change cannot alter what is written. Quantities and prices are Decimals with the digits IB
sent (``None`` when IB left a value unset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Placed:
    """Whose order, on which contract: what an order and each of its executions both carry."""

    order_ref: str
    ib_order_id: int | None
    perm_id: int | None
    client_id: int | None
    account: str | None
    con_id: int | None
    symbol: str
    local_symbol: str
    sec_type: str


@dataclass(frozen=True)
class OrderSnapshot(Placed):
    """An order's identity, terms and status."""

    parent_ib_order_id: int | None
    action: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    tif: str | None
    oca_group: str | None
    status: str
    filled: Decimal
    remaining: Decimal | None
    avg_fill_price: Decimal | None
    why_held: str | None
    # IB's last log entry: (time ISO, status, message, error code)
    log: tuple[tuple[str, str, str, int], ...] = ()

    @property
    def leg(self) -> str:
        """The leg part of a tv2ib orderRef (``entry``, ``tp``...), else the whole ref."""
        return self.order_ref.rsplit(":", 1)[-1]

    def last_error(self) -> tuple[int, str] | None:
        """The IB error carried by the last log entry (ib_async: "Error 201, reqId 6: text")."""
        for _at, _status, message, code in self.log:
            if code:
                return int(code), (message or "").split(": ", 1)[-1]
        return None


@dataclass(frozen=True)
class OrderState:
    """One of our orders as IB reports it now: what the job follows its closing order by
    (worker/execution/protocol.py). Quantities as IB gave them (None: unset)."""

    order_ref: str
    ib_order_id: int | None
    status: str
    order_type: str
    quantity: Decimal | None
    filled: Decimal | None
    error: str = ""  # IB's refusal from the order's log ("201 Order rejected - ..."), else ""


@dataclass(frozen=True)
class OrderError:
    """IB's error message about one of our orders (a refusal, a cancel confirmation, a warning)."""

    order: OrderSnapshot
    code: int
    text: str


@dataclass(frozen=True)
class FillSnapshot(Placed):
    """One execution, with its commission report when already received."""

    exec_id: str
    side: str  # BOT / SLD
    quantity: Decimal
    price: Decimal
    cum_quantity: Decimal | None
    avg_price: Decimal | None
    order_quantity: Decimal | None
    time: datetime
    commission: Decimal | None
    commission_currency: str | None
    realized_pnl: Decimal | None


@dataclass(frozen=True)
class PositionSnapshot:
    """A position of an account as IB reports it."""

    account: str
    con_id: int
    symbol: str
    sec_type: str
    local_symbol: str
    quantity: Decimal
    avg_cost: Decimal | None


@dataclass(frozen=True)
class Reconciliation:
    """IB's whole view after a (re)connect: what the recorder compares the database with."""

    why: str
    client_id: int
    account: str | None
    orders: list[OrderSnapshot] = field(default_factory=list)
    fills: list[FillSnapshot] = field(default_factory=list)
    positions: list[PositionSnapshot] = field(default_factory=list)


@dataclass(frozen=True)
class AccountFigures:
    """One account's figures (None: IB has not reported that value)."""

    account: str
    currency: str = ""
    net_liquidation: Decimal | None = None
    available_funds: Decimal | None = None
    excess_liquidity: Decimal | None = None
    buying_power: Decimal | None = None
    gross_position_value: Decimal | None = None
    init_margin: Decimal | None = None
    maint_margin: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    realized_pnl: Decimal | None = None
    # IB's ``ExchangeRate`` rows (sizing, issue 11): currency -> the value of one unit of it in the
    # base currency (a EUR account reports USD 0.84). Sizing converts only with these, never guesses.
    exchange_rates: dict[str, Decimal] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            key: (str(value) if isinstance(value, Decimal) else value)
            for key, value in self.__dict__.items()
            if value is not None and key != "exchange_rates"
        }
        if self.exchange_rates:
            doc["exchange_rates"] = {ccy: str(rate) for ccy, rate in self.exchange_rates.items()}
        return doc


IBFact = OrderSnapshot | OrderError | FillSnapshot | PositionSnapshot | Reconciliation


@dataclass(frozen=True)
class Venue:
    """Where a contract trades (its exchange calendar: worker/risk/calendar.py) and its name."""

    con_id: int
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    symbol: str
    local_symbol: str

    @property
    def label(self) -> str:
        """``AAPL``, ``ESZ6``: the contract as a trader names it."""
        return (
            self.local_symbol
            if self.local_symbol and self.sec_type != "STK"
            else self.symbol or self.local_symbol
        )
