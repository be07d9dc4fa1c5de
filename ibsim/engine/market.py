"""The market the engine sees: current prices and quotes (an option's from its model on the
underlying's price), currency conversion and trading halts."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable

from ibsim.catalog.instruments import ContractQuery, Instrument
from ibsim.catalog.lookup import Catalog
from ibsim.catalog.options import NEW_YORK, expiry_close, listing_day
from ibsim.catalog.ticks import round_to_tick
from ibsim.engine.option_model import OptionQuote, OptionSettings, option_quote


class Market:
    """Current prices (a contract's default until set; an option's from its model), quotes, USD
    conversion and halted contracts."""

    def __init__(self, catalog: Catalog, clock: Callable[[], float] = time.time) -> None:
        self.catalog = catalog
        self.clock = clock
        if catalog.options is not None:  # the chains list expiries from the engine's day
            catalog.options.bind(self.listing_day, self.price)
        self.reset()

    def reset(self) -> None:
        """Prices back to the catalog's defaults; no halts; the option model's defaults."""
        self.prices: dict[int, float] = {i.con_id: i.default_price for i in self.catalog}
        #: halted contracts: every new order on them is refused
        self.halted: set[int] = set()
        #: the option model's volatility, rate and quote width (``POST /options``)
        self.options = OptionSettings()

    def today(self) -> dt.date:
        """The engine clock's day in New York (the session ``end_of_day`` closes)."""
        return dt.datetime.fromtimestamp(self.clock(), NEW_YORK).date()

    def listing_day(self) -> dt.date:
        """The day whose option chains are listed now (the next day from the 16:00 close)."""
        return listing_day(self.clock())

    def expired(self, inst: Instrument) -> bool:
        """Whether an option's session end on its expiry day has passed by the engine's clock."""
        return inst.sec_type == "OPT" and expiry_close(inst.last_trade_date) <= self.clock()

    def price(self, con_id: int) -> float:
        """Current price of a contract (its default when never set; an option's model price on its
        tick grid, or the price the operator set for it)."""
        inst = self.catalog.get(con_id)
        if inst is not None and inst.sec_type == "OPT":
            return self.option_quote(inst).price
        if con_id in self.prices:
            return self.prices[con_id]
        return inst.default_price if inst else 0.0

    def option_quote(self, inst: Instrument) -> OptionQuote:
        """An option's quote and greeks now (``self.prices`` holds a model price the operator set)."""
        und = self.price(inst.under_con_id)
        return option_quote(
            inst, und, self.clock(), self.options, lambda p: self.catalog.increment_at(inst, p),
            self.prices.get(inst.con_id),
        )  # fmt: skip

    def quote(self, con_id: int) -> tuple[float, float]:
        """(bid, ask) now: an option's from its model; anything else one increment around its price."""
        inst = self.instrument(con_id)
        if inst.sec_type == "OPT":
            quote = self.option_quote(inst)
            return quote.bid, quote.ask
        price = self.price(con_id)
        tick = self.catalog.increment_at(inst, price)
        return round_to_tick(price - tick, tick), round_to_tick(price + tick, tick)

    def trade_price(self, con_id: int, buy: bool) -> float:
        """The price an order executes against: an option's ask for a buy and bid for a sell (its
        spread is paid); anything else its price (simulator policy for stocks and futures)."""
        inst = self.catalog.get(con_id)
        if inst is not None and inst.sec_type == "OPT":
            bid, ask = self.quote(con_id)
            return ask if buy else bid
        return self.price(con_id)

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
