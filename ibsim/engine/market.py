"""The market the engine sees: current prices, currency conversion and trading halts."""

from __future__ import annotations

import math

from ibsim.catalog.instruments import ContractQuery, Instrument
from ibsim.catalog.lookup import Catalog


class Market:
    """Current prices (a contract's default until set), USD conversion and halted contracts."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.reset()

    def reset(self) -> None:
        """Prices back to the catalog's defaults; no halts."""
        self.prices: dict[int, float] = {i.con_id: i.default_price for i in self.catalog}
        #: halted contracts: every new order on them is refused
        self.halted: set[int] = set()

    def price(self, con_id: int) -> float:
        """Current price of a contract (its default when never set)."""
        if con_id in self.prices:
            return self.prices[con_id]
        inst = self.catalog.get(con_id)
        return inst.default_price if inst else 0.0

    def set_price(self, con_id: int, price: float) -> float:
        """A new current price (positive and finite); returns it as a float."""
        if not (price > 0) or math.isinf(price):
            raise ValueError(f"price must be positive, got {price!r}")
        self.prices[con_id] = float(price)
        return float(price)

    def fx_to_usd(self, currency: str) -> float:
        """Conversion rate of a currency to USD, from the catalog's forex prices."""
        if currency in ("", "USD"):
            return 1.0
        for inst in self.catalog:
            if inst.sec_type != "CASH":
                continue
            if inst.symbol == currency and inst.currency == "USD":
                return self.price(inst.con_id)
            if inst.symbol == "USD" and inst.currency == currency:
                p = self.price(inst.con_id)
                return 1.0 / p if p else 1.0
        return 1.0

    def instrument(self, con_id: int) -> Instrument:
        """The catalog instrument of an order/position (must exist)."""
        inst = self.catalog.get(con_id)
        if inst is None:
            raise KeyError(con_id)
        return inst

    def find_instruments(
        self, symbol: str = "", sec_type: str = "", con_id: int | None = None, **kw: str
    ) -> list[Instrument]:
        """Instruments addressed by the control API (conId, or symbol + optional secType...)."""
        if con_id:
            inst = self.catalog.get(int(con_id))
            return [inst] if inst else []
        found = self.catalog.find(symbol, sec_type, **kw)
        if not found:
            query = ContractQuery(symbol=symbol, sec_type=sec_type)
            found = self.catalog.match(query) if symbol else []
        return found

    def lookup(
        self, symbol: str = "", sec_type: str = "", con_id: int | None = None, **kw: str
    ) -> list[Instrument]:
        """:meth:`find_instruments`, raising LookupError when nothing matches."""
        found = self.find_instruments(symbol, sec_type, con_id, **kw)
        if not found:
            raise LookupError(f"no contract matches symbol={symbol!r} secType={sec_type!r} conId={con_id!r}")
        return found
