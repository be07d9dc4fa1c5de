"""Contracts: the instrument record contractDetails describes, and the contract fields of a request
with TWS-like matching of one against the other."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

DEFAULT_ORDER_TYPES = "ACTIVETIM,ADJUST,ALERT,ALLOC,DAY,GTC,IOC,FOK,LMT,MKT,STP,STPLMT,TRAIL,WHATIF"


@dataclass(frozen=True)
class Instrument:
    """One tradable contract with every field contractDetails needs."""

    con_id: int
    symbol: str
    sec_type: str
    currency: str
    exchange: str  # default / listing exchange (CME, IDEALPRO, PAXOS; SMART for stocks)
    local_symbol: str
    trading_class: str
    min_tick: float
    default_price: float
    multiplier: str = ""
    primary_exchange: str = ""
    valid_exchanges: str = ""
    last_trade_date: str = ""  # YYYYMMDD for futures
    last_trade_time: str = ""  # e.g. "08:30"
    contract_month: str = ""  # YYYYMM for futures
    long_name: str = ""
    market_name: str = ""
    time_zone_id: str = "US/Eastern"
    trading_hours: str = ""
    liquid_hours: str = ""
    under_con_id: int = 0
    under_symbol: str = ""
    under_sec_type: str = ""
    industry: str = ""
    category: str = ""
    subcategory: str = ""
    stock_type: str = ""
    market_rule_ids: str = ""
    order_types: str = DEFAULT_ORDER_TYPES
    min_size: float = 1.0  # smallest quantity accepted (crypto: fractional)
    size_increment: float = 1.0
    strike: float = 0.0  # options only
    right: str = ""  # options only: C or P

    @property
    def mult(self) -> float:
        """Numeric multiplier (1 when unset)."""
        try:
            return float(self.multiplier) if self.multiplier else 1.0
        except ValueError:
            return 1.0

    @property
    def exchanges(self) -> list[str]:
        """Exchanges the instrument can be routed to."""
        names = [e for e in self.valid_exchanges.split(",") if e]
        return names or [self.exchange]

    @property
    def packed_expiry(self) -> str:
        """lastTradeDateOrContractMonth as contractDetails sends it (date, time, zone)."""
        if not self.last_trade_date:
            return ""
        if self.last_trade_time:
            return f"{self.last_trade_date} {self.last_trade_time} {self.time_zone_id}"
        return self.last_trade_date

    def to_json(self) -> dict[str, Any]:
        """Plain dict (the catalog file format and the /state view)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ContractQuery:
    """The contract fields of a request; empty / zero fields are wildcards."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    last_trade_date_or_contract_month: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""


def matches(inst: Instrument, q: ContractQuery) -> bool:
    if q.con_id and q.con_id != inst.con_id:
        return False
    if q.symbol and q.symbol.upper() != inst.symbol.upper():
        return False
    if q.sec_type and q.sec_type.upper() != inst.sec_type:
        # CONTFUT requests are answered with the front future, handled by Catalog.match
        return False
    if q.currency and q.currency.upper() != inst.currency:
        return False
    if q.local_symbol and q.local_symbol.upper().replace(" ", "") != inst.local_symbol.upper().replace(
        " ", ""
    ):
        return False
    if q.trading_class and q.trading_class.upper() != inst.trading_class.upper():
        return False
    expiry = q.last_trade_date_or_contract_month
    if expiry and not (inst.last_trade_date.startswith(expiry) or inst.contract_month.startswith(expiry)):
        return False
    if q.multiplier and inst.multiplier:
        try:
            if float(q.multiplier) != float(inst.multiplier):
                return False
        except ValueError:
            return False
    if q.exchange and q.exchange.upper() not in (e.upper() for e in inst.exchanges):
        return False
    if q.primary_exchange and q.primary_exchange.upper() not in (
        inst.primary_exchange.upper(),
        inst.exchange.upper(),
    ):
        return False
    if q.strike and abs(q.strike - inst.strike) > 1e-9:
        return False
    return normal_right(q.right) in ("", inst.right)


def normal_right(right: str) -> str:
    """A request's right as contractDetails spells it: ``C``, ``P``, or empty for any
    (``CALL`` / ``PUT`` / lower case accepted; ``0`` and ``?`` are the clients' "unset")."""
    text = right.strip().upper()
    if text in ("", "0", "?"):
        return ""
    return {"CALL": "C", "PUT": "P"}.get(text, text)
