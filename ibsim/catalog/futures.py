"""Built-in futures: each product's listing cycle and last-trade rule, so expiries are generated
relative to today and the catalog never goes stale."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from ibsim.catalog.instruments import Instrument

MONTH_CODES = "FGHJKMNQUVXZ"  # F=Jan ... Z=Dec


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
    last_trade: Callable[[int, int], dt.date]  # (year, month) -> last trade date
    last_trade_time: str
    time_zone_id: str
    long_name: str
    under_con_id: int
    under_sec_type: str
    con_id_base: int
    default_price: float
    market_rule_ids: str
    trading_hours_note: str = ""


def _cme_equity_index(
    symbol: str, multiplier: str, long_name: str, under_con_id: int, con_id_base: int, price: float
) -> FutureProduct:
    """A CME quarterly equity-index future: tick 0.25, the third Friday at 08:30 Chicago time."""
    return FutureProduct(
        symbol, "CME", multiplier, 0.25, "HMUZ", 4, _third_friday, "08:30", "US/Central",
        long_name, under_con_id, "IND", con_id_base, price, "67",
    )  # fmt: skip


FUTURE_PRODUCTS: tuple[FutureProduct, ...] = (
    _cme_equity_index("ES", "50", "E-mini S&P 500", 11004968, 637_000_000, 5000.0),
    _cme_equity_index("MES", "5", "Micro E-Mini S&P 500 Stock Price Index", 11004968, 654_000_000, 5000.0),
    _cme_equity_index("NQ", "20", "E-mini NASDAQ 100", 11004958, 637_100_000, 17500.0),
    _cme_equity_index("MNQ", "2", "Micro E-Mini Nasdaq-100 Index", 11004958, 654_100_000, 17500.0),
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
    ),  # fmt: skip
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
    ),  # fmt: skip
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


#: the fields an expiry takes from its product as they are (every product field of the same name)
_FROM_PRODUCT = (
    "symbol", "exchange", "multiplier", "min_tick", "default_price", "last_trade_time", "long_name",
    "time_zone_id", "under_con_id", "under_sec_type", "market_rule_ids",
)  # fmt: skip


def future_instruments(product: FutureProduct, today: dt.date) -> list[Instrument]:
    """The listed expiries of one product on ``today``."""
    spec = {name: getattr(product, name) for name in _FROM_PRODUCT}
    root = product.symbol
    out = []
    for year, month, last in future_expiries(product, today):
        out.append(
            Instrument(
                **spec,
                # deterministic per (product, month), so conIds survive restarts and --state
                con_id=product.con_id_base + (year % 100) * 100 + month,
                sec_type="FUT",
                currency="USD",
                local_symbol=f"{root}{MONTH_CODES[month - 1]}{year % 10}",
                last_trade_date=last.strftime("%Y%m%d"),
                contract_month=f"{year:04d}{month:02d}",
                trading_class=root,
                market_name=root,
                under_symbol=root,
                valid_exchanges=product.exchange,
            )
        )
    return out
