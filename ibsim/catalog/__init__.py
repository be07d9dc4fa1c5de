"""The simulator's instrument catalog: contracts and their matching, the built-in families
(stocks, futures on their real listing cycles, forex, crypto), market rules and tick grids, and
extension files.

This package only gathers the names under ``ibsim.catalog``; modules inside ibsim import the
module that defines what they need.
"""

from ibsim.catalog.builtin import build_catalog, default_instruments
from ibsim.catalog.files import instrument_from_dict, load_extension
from ibsim.catalog.futures import FUTURE_PRODUCTS, MONTH_CODES, FutureProduct, future_expiries
from ibsim.catalog.instruments import ContractQuery, Instrument
from ibsim.catalog.lookup import Catalog
from ibsim.catalog.ticks import MARKET_RULES, on_tick, round_to_tick

__all__ = [
    "FUTURE_PRODUCTS",
    "MARKET_RULES",
    "MONTH_CODES",
    "Catalog",
    "ContractQuery",
    "FutureProduct",
    "Instrument",
    "build_catalog",
    "default_instruments",
    "future_expiries",
    "instrument_from_dict",
    "load_extension",
    "on_tick",
    "round_to_tick",
]
