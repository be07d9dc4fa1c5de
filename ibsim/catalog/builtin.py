"""The built-in catalog for a given day (stocks, futures, forex, crypto, and the options on the
stocks, made on demand), plus an optional extension file.

Each family of instruments has its own module and builder; a new family is one more module and one
more line in :func:`default_instruments` (options, too many to list, are the catalog's on-demand
family: :mod:`ibsim.catalog.options`).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from ibsim.catalog.currencies import crypto_instruments, forex_instruments
from ibsim.catalog.files import load_extension
from ibsim.catalog.futures import FUTURE_PRODUCTS, future_instruments
from ibsim.catalog.instruments import Instrument
from ibsim.catalog.lookup import Catalog
from ibsim.catalog.stocks import stock_instruments

log = logging.getLogger("ibsim.catalog")


def default_instruments(today: dt.date | None = None) -> list[Instrument]:
    """The built-in catalog for ``today`` (stocks, futures, forex, crypto)."""
    today = today or dt.date.today()
    futures = [inst for product in FUTURE_PRODUCTS for inst in future_instruments(product, today)]
    return [*stock_instruments(), *futures, *forex_instruments(), *crypto_instruments()]


def build_catalog(today: dt.date | None = None, extension: str | Path | None = None) -> Catalog:
    """The built-in catalog plus an optional extension file (its entries win on equal conId)."""
    catalog = Catalog(default_instruments(today), options=True)
    if extension:
        for inst in load_extension(extension):
            catalog.add(inst)
        log.info("catalog extended from %s", extension)
    return catalog
