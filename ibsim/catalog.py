"""The simulator's instrument catalog: built-in contracts, futures expiry generation, matching.

Futures expiries are generated relative to a given date on each product's real listing cycle,
so the catalog never goes stale. Extra instruments can be loaded from a YAML or JSON file
(see :func:`load_extension`).
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MONTH_CODES = "FGHJKMNQUVXZ"  # F=Jan ... Z=Dec


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
    order_types: str = "ACTIVETIM,ADJUST,ALERT,ALLOC,DAY,GTC,IOC,FOK,LMT,MKT,STP,STPLMT,TRAIL,WHATIF"
    min_size: float = 1.0  # smallest quantity accepted (crypto: fractional)
    size_increment: float = 1.0

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


def _matches(inst: Instrument, q: ContractQuery) -> bool:
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
    if q.strike and q.strike != 0.0:
        return False  # no options in the catalog
    return not q.right or q.right in ("0", "?")


class Catalog:
    """A set of instruments with TWS-like lookup."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        self._by_con_id: dict[int, Instrument] = {}
        for inst in instruments:
            self.add(inst)

    def add(self, inst: Instrument) -> None:
        """Add or replace an instrument (keyed by conId)."""
        self._by_con_id[inst.con_id] = inst

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_con_id.values())

    def __len__(self) -> int:
        return len(self._by_con_id)

    def get(self, con_id: int) -> Instrument | None:
        """The instrument with this conId, if any."""
        return self._by_con_id.get(con_id)

    def match(self, query: ContractQuery) -> list[Instrument]:
        """Every instrument matching the query, like reqContractDetails."""
        if query.sec_type.upper() == "CONTFUT":
            futs = self.match(replace(query, sec_type="FUT", last_trade_date_or_contract_month=""))
            futs.sort(key=lambda i: i.last_trade_date)
            # one answer per product: the front month
            front: dict[str, Instrument] = {}
            for inst in futs:
                front.setdefault(inst.trading_class, inst)
            return list(front.values())
        if query.con_id:
            inst = self._by_con_id.get(query.con_id)
            return [inst] if inst and _matches(inst, query) else []
        return [inst for inst in self._by_con_id.values() if _matches(inst, query)]

    def market_rule(self, rule_id: int) -> tuple[tuple[float, float], ...]:
        """The price bands of a market rule (``MARKET_RULES``, else one band of the smallest
        minTick among the instruments carrying the rule, else 0.01)."""
        if rule_id in MARKET_RULES:
            return MARKET_RULES[rule_id]
        ticks = [i.min_tick for i in self if str(rule_id) in i.market_rule_ids.split(",")]
        return ((0.0, min(ticks) if ticks else 0.01),)

    def increment_at(self, inst: Instrument, price: float) -> float:
        """The price increment IB enforces for ``inst`` at ``price``: the band of its first market
        rule that ``price`` falls in (a band starts at its lowEdge), else its minTick."""
        first = next((r for r in inst.market_rule_ids.split(",") if r.strip()), "")
        if not first.strip().isdigit():
            return inst.min_tick
        bands = self.market_rule(int(first))
        increment = bands[0][1]
        for low, inc in bands:
            if abs(price) >= low - 1e-12:
                increment = inc
        return increment

    def find(self, symbol: str, sec_type: str = "", **kw: str) -> list[Instrument]:
        """Operator-friendly lookup by symbol or local symbol (``EUR.USD``, ``EURUSD``, ``ESZ6``)."""
        sym = symbol.upper().strip()
        out = []
        for inst in self._by_con_id.values():
            if sec_type and inst.sec_type != sec_type.upper():
                continue
            names = {
                inst.symbol.upper(),
                inst.local_symbol.upper(),
                inst.local_symbol.upper().replace(".", ""),
            }
            if sym not in names:
                continue
            if kw.get("currency") and kw["currency"].upper() != inst.currency:
                continue
            expiry = kw.get("expiry") or kw.get("last_trade_date_or_contract_month") or ""
            if expiry and not inst.last_trade_date.startswith(expiry):
                continue
            if kw.get("exchange") and kw["exchange"].upper() not in (e.upper() for e in inst.exchanges):
                continue
            out.append(inst)
        if sym and not out and not sec_type:
            return []
        return out


# ---------------------------------------------------------------- futures expiry rules


def _third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (4 - first.weekday()) % 7  # Friday is weekday 4
    return first + dt.timedelta(days=offset + 14)


def _is_business_day(day: dt.date) -> bool:
    return day.weekday() < 5


def _business_days_back(day: dt.date, count: int) -> dt.date:
    while count:
        day -= dt.timedelta(days=1)
        if _is_business_day(day):
            count -= 1
    return day


def _cl_last_trade(year: int, month: int) -> dt.date:
    """NYMEX CL: 3 business days before the 25th of the prior month (or before the business day before it)."""
    prev_year, prev_month = (year - 1, 12) if month == 1 else (year, month - 1)
    day = dt.date(prev_year, prev_month, 25)
    if not _is_business_day(day):
        while not _is_business_day(day):
            day -= dt.timedelta(days=1)
    return _business_days_back(day, 3)


def _gc_last_trade(year: int, month: int) -> dt.date:
    """COMEX GC: the third-last business day of the contract month."""
    day = dt.date(year, month, calendar.monthrange(year, month)[1])
    while not _is_business_day(day):
        day -= dt.timedelta(days=1)
    return _business_days_back(day, 2)


@dataclass(frozen=True)
class FutureProduct:
    """A futures root with its listing cycle and contract specs."""

    symbol: str
    exchange: str
    multiplier: str
    min_tick: float
    months: str  # month codes of the listing cycle
    count: int  # how many upcoming expiries to list
    last_trade: Any  # (year, month) -> date
    last_trade_time: str
    time_zone: str
    long_name: str
    under_con_id: int
    under_sec_type: str
    con_id_base: int
    default_price: float
    market_rule: str
    trading_hours_note: str = ""


FUTURE_PRODUCTS: tuple[FutureProduct, ...] = (
    FutureProduct(
        "ES",
        "CME",
        "50",
        0.25,
        "HMUZ",
        4,
        _third_friday,
        "08:30",
        "US/Central",
        "E-mini S&P 500",
        11004968,
        "IND",
        637_000_000,
        5000.0,
        "67",
    ),
    FutureProduct(
        "MES",
        "CME",
        "5",
        0.25,
        "HMUZ",
        4,
        _third_friday,
        "08:30",
        "US/Central",
        "Micro E-Mini S&P 500 Stock Price Index",
        11004968,
        "IND",
        654_000_000,
        5000.0,
        "67",
    ),
    FutureProduct(
        "NQ",
        "CME",
        "20",
        0.25,
        "HMUZ",
        4,
        _third_friday,
        "08:30",
        "US/Central",
        "E-mini NASDAQ 100",
        11004958,
        "IND",
        637_100_000,
        17500.0,
        "67",
    ),
    FutureProduct(
        "MNQ",
        "CME",
        "2",
        0.25,
        "HMUZ",
        4,
        _third_friday,
        "08:30",
        "US/Central",
        "Micro E-Mini Nasdaq-100 Index",
        11004958,
        "IND",
        654_100_000,
        17500.0,
        "67",
    ),
    FutureProduct(
        "CL",
        "NYMEX",
        "1000",
        0.01,
        "FGHJKMNQUVXZ",
        6,
        _cl_last_trade,
        "13:30",
        "US/Central",
        "Light Sweet Crude Oil",
        17340715,
        "IND",
        212_000_000,
        75.0,
        "32",
    ),
    FutureProduct(
        "GC",
        "COMEX",
        "100",
        0.10,
        "GJMQVZ",
        4,
        _gc_last_trade,
        "12:30",
        "US/Central",
        "Gold",
        0,
        "",
        213_000_000,
        2300.0,
        "94",
    ),
)


def future_expiries(product: FutureProduct, today: dt.date) -> list[tuple[int, int, dt.date]]:
    """The next ``product.count`` (year, month, last trade date) not yet expired on ``today``."""
    months = [MONTH_CODES.index(c) + 1 for c in product.months]
    out: list[tuple[int, int, dt.date]] = []
    year = today.year
    while len(out) < product.count:
        for month in months:
            last = product.last_trade(year, month)
            if last >= today:
                out.append((year, month, last))
                if len(out) == product.count:
                    break
        year += 1
    return out


def _future_instruments(product: FutureProduct, today: dt.date) -> list[Instrument]:
    out = []
    for year, month, last in future_expiries(product, today):
        code = MONTH_CODES[month - 1]
        out.append(
            Instrument(
                # deterministic per (product, month), so conIds survive restarts and --state
                con_id=product.con_id_base + (year % 100) * 100 + month,
                symbol=product.symbol,
                sec_type="FUT",
                currency="USD",
                exchange=product.exchange,
                local_symbol=f"{product.symbol}{code}{year % 10}",
                trading_class=product.symbol,
                min_tick=product.min_tick,
                default_price=product.default_price,
                multiplier=product.multiplier,
                primary_exchange="",
                valid_exchanges=product.exchange,
                last_trade_date=last.strftime("%Y%m%d"),
                last_trade_time=product.last_trade_time,
                contract_month=f"{year:04d}{month:02d}",
                long_name=product.long_name,
                market_name=product.symbol,
                time_zone_id=product.time_zone,
                under_con_id=product.under_con_id,
                under_symbol=product.symbol,
                under_sec_type=product.under_sec_type,
                market_rule_ids=product.market_rule,
            )
        )
    return out


_STOCKS = (
    # symbol, conId, primary exchange, long name, price, industry
    ("AAPL", 265598, "NASDAQ", "APPLE INC", 190.0, "Technology"),
    ("MSFT", 272093, "NASDAQ", "MICROSOFT CORP", 420.0, "Technology"),
    ("SPY", 756733, "ARCA", "SPDR S&P 500 ETF TRUST", 500.0, "Funds"),
    ("QQQ", 320227571, "NASDAQ", "INVESCO QQQ TRUST SERIES 1", 430.0, "Funds"),
    ("TSLA", 76792991, "NASDAQ", "TESLA INC", 180.0, "Consumer, Cyclical"),
    ("AMD", 4391, "NASDAQ", "ADVANCED MICRO DEVICES", 160.0, "Technology"),
    ("INTC", 270639, "NASDAQ", "INTEL CORP", 30.0, "Technology"),
)

_FOREX = (
    # base, quote, conId, minTick, price
    ("EUR", "USD", 12087792, 0.00005, 1.08),
    ("GBP", "USD", 12087797, 0.00005, 1.27),
    ("USD", "JPY", 15016059, 0.005, 150.0),
)

_CRYPTO = (
    # symbol, conId, minTick, price, long name, market rule id
    ("BTC", 479624278, 0.25, 60000.0, "Bitcoin", "1100"),
    ("ETH", 495759171, 0.05, 3000.0, "Ethereum", "1101"),
)

#: reqMarketRule answers: rule id -> price bands (lowEdge, increment), lowest edge first. A rule
#: not listed here answers one band: the smallest minTick of the instruments that carry it.
MARKET_RULES: dict[int, tuple[tuple[float, float], ...]] = {
    26: ((0.0, 0.0001), (1.0, 0.01)),  # US stocks (SMART and the listing exchanges): Rule 612
    67: ((0.0, 0.25),),  # CME equity index futures
    32: ((0.0, 0.01),),  # NYMEX crude
    94: ((0.0, 0.1),),  # COMEX gold
    239: ((0.0, 0.00005),),  # IDEALPRO majors
    240: ((0.0, 0.005),),  # IDEALPRO JPY pairs
    1100: ((0.0, 0.25),),  # PAXOS BTC
    1101: ((0.0, 0.05),),  # PAXOS ETH
}

_STK_HOURS = "{d}:0930-{d}:1600"


def default_instruments(today: dt.date | None = None) -> list[Instrument]:
    """The built-in catalog for ``today`` (stocks, futures, forex, crypto)."""
    today = today or dt.date.today()
    out: list[Instrument] = []
    for symbol, con_id, primary, name, price, industry in _STOCKS:
        exchanges = f"SMART,{primary},NYSE,ARCA,BATS,IEX" if primary != "NYSE" else "SMART,NYSE"
        out.append(
            Instrument(
                con_id=con_id,
                symbol=symbol,
                sec_type="STK",
                currency="USD",
                exchange="SMART",
                local_symbol=symbol,
                trading_class="NMS" if primary == "NASDAQ" else symbol,
                min_tick=0.01,
                default_price=price,
                primary_exchange=primary,
                valid_exchanges=exchanges,
                long_name=name,
                market_name="NMS" if primary == "NASDAQ" else symbol,
                industry=industry,
                stock_type="ETF" if industry == "Funds" else "COMMON",
                # one rule id per valid exchange, as IB lists them (26: US stocks' price bands)
                market_rule_ids=",".join("26" for _ in exchanges.split(",")),
            )
        )
    for product in FUTURE_PRODUCTS:
        out.extend(_future_instruments(product, today))
    for base, quote, con_id, tick, price in _FOREX:
        pair = f"{base}.{quote}"
        out.append(
            Instrument(
                con_id=con_id,
                symbol=base,
                sec_type="CASH",
                currency=quote,
                exchange="IDEALPRO",
                local_symbol=pair,
                trading_class=pair,
                min_tick=tick,
                default_price=price,
                valid_exchanges="IDEALPRO",
                long_name=f"{base} {quote}",
                market_name=pair,
                time_zone_id="US/Eastern",
                market_rule_ids="239" if quote != "JPY" else "240",
                min_size=1.0,
            )
        )
    for symbol, con_id, tick, price, name, rule in _CRYPTO:
        out.append(
            Instrument(
                con_id=con_id,
                symbol=symbol,
                sec_type="CRYPTO",
                currency="USD",
                exchange="PAXOS",
                local_symbol=f"{symbol}.USD",
                trading_class=symbol,
                min_tick=tick,
                default_price=price,
                valid_exchanges="PAXOS",
                long_name=name,
                market_name=symbol,
                market_rule_ids=rule,
                min_size=0.0001,
                size_increment=0.00000001,
                order_types="DAY,GTC,IOC,LMT,MKT,STP,STPLMT,TRAIL,WHATIF",
            )
        )
    return out


_FIELD_NAMES = {f.name for f in fields(Instrument)}
_CAMEL = {
    "conId": "con_id",
    "secType": "sec_type",
    "localSymbol": "local_symbol",
    "tradingClass": "trading_class",
    "minTick": "min_tick",
    "price": "default_price",
    "defaultPrice": "default_price",
    "primaryExchange": "primary_exchange",
    "primaryExch": "primary_exchange",
    "validExchanges": "valid_exchanges",
    "lastTradeDateOrContractMonth": "last_trade_date",
    "lastTradeDate": "last_trade_date",
    "contractMonth": "contract_month",
    "longName": "long_name",
    "timeZoneId": "time_zone_id",
    "underConId": "under_con_id",
    "minSize": "min_size",
    "sizeIncrement": "size_increment",
}


def instrument_from_dict(data: dict[str, Any]) -> Instrument:
    """Build an instrument from a catalog-file entry (snake_case or TWS camelCase keys)."""
    kw: dict[str, Any] = {}
    for key, value in data.items():
        name = _CAMEL.get(key, key)
        if name not in _FIELD_NAMES:
            raise ValueError(f"unknown catalog field {key!r}")
        kw[name] = value
    for required in ("con_id", "symbol", "sec_type"):
        if required not in kw:
            raise ValueError(f"catalog entry needs {required!r}: {data!r}")
    kw["sec_type"] = str(kw["sec_type"]).upper()
    kw.setdefault("currency", "USD")
    kw.setdefault("exchange", "SMART" if kw["sec_type"] == "STK" else "")
    kw.setdefault("local_symbol", kw["symbol"])
    kw.setdefault("trading_class", kw["symbol"])
    kw.setdefault("min_tick", 0.01)
    kw.setdefault("default_price", 100.0)
    kw["multiplier"] = str(kw.get("multiplier", "") or "")
    kw["last_trade_date"] = str(kw.get("last_trade_date", "") or "")
    if kw["last_trade_date"] and not kw.get("contract_month"):
        kw["contract_month"] = kw["last_trade_date"][:6]
    return Instrument(**kw)


def load_extension(path: str | Path) -> list[Instrument]:
    """Load extra instruments from YAML or JSON: a list, or a mapping with key ``instruments``."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("instruments", [])
    if not isinstance(data, list):
        raise ValueError("catalog file must hold a list of instruments (or {instruments: [...]})")
    return [instrument_from_dict(entry) for entry in data]


def build_catalog(today: dt.date | None = None, extension: str | Path | None = None) -> Catalog:
    """The built-in catalog plus an optional extension file (its entries win on equal conId)."""
    catalog = Catalog(default_instruments(today))
    if extension:
        for inst in load_extension(extension):
            catalog.add(inst)
        log.info("catalog extended from %s", extension)
    return catalog


def on_tick(price: float, tick: float) -> bool:
    """Whether ``price`` sits on the tick grid (tolerant of binary float noise)."""
    if tick <= 0:
        return True
    steps = price / tick
    return abs(steps - round(steps)) < 1e-6


def round_to_tick(price: float, tick: float) -> float:
    """Nearest price on the tick grid, free of float noise."""
    if tick <= 0:
        return price
    steps = round(price / tick)
    decimals = max(0, len(f"{tick:.10f}".rstrip("0").split(".")[1]))
    return round(steps * tick, decimals)
