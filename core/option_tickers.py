"""Tickers that name one option contract: the forms tv2ib reads, parsed (pure).

* OCC: the root, YYMMDD, ``C``/``P``, the strike times 1000 in 8 digits: ``AAPL250117C00150000``;
  the root may be padded with spaces to 6 characters (``AAPL  250117C00150000``), as OCC writes it;
* TradersPost: the root, one space, YYMMDD, ``C``/``P``, the strike as a decimal: ``SPY 250624C596``;
* TradingView: the same without the space (``AAPL250117C150.0``; ``OPRA:`` is its exchange prefix).

Eight digits without a point are always OCC's strike × 1000 (``C00150000`` is 150). Letters may be
in any case. The webhook accepts these tickers (app/webhook/fields.py, ``Ticker``) and the worker
reads them with :func:`parse_option_ticker` too.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Literal, NamedTuple

Right = Literal["C", "P"]

OCC_ROOT_WIDTH = 6
# root, the spaces after it, YYMMDD, right, strike: the shape of every form (ASCII only: Python's
# \d would take other scripts' digits). A text of this shape that names no contract is an error.
OPTION_TICKER_RE = re.compile(r"^([A-Z]{1,6})( *)([0-9]{6})([CP])([0-9]+(?:\.[0-9]+)?)\Z")
_OCC_STRIKE_DIGITS = 8


class OptionTickerError(ValueError):
    """A ticker of an option's shape that names no contract (month 13, strike 0, stray spaces)."""


class OptionTicker(NamedTuple):
    """One option contract as its ticker names it."""

    root: str
    expiry: date
    right: Right
    strike: Decimal

    def describe(self) -> str:
        """``AAPL 2025-01-17 call 150``."""
        kind = "call" if self.right == "C" else "put"
        return f"{self.root} {self.expiry.isoformat()} {kind} {self.strike.normalize():f}"


def parse_option_ticker(text: str) -> OptionTicker | None:
    """The contract an option ticker names (``text`` without an ``EXCHANGE:`` prefix, any case),
    or None when ``text`` is not of an option's shape (``AAPL``, ``ES1!``). Raises
    :class:`OptionTickerError` for a text of that shape that names no contract."""
    found = OPTION_TICKER_RE.match(text.upper())
    if found is None:
        return None
    root, spaces, yymmdd, right, strike_text = found.groups()
    if len(spaces) > 1 and len(root) + len(spaces) != OCC_ROOT_WIDTH:
        raise OptionTickerError(
            f"{len(spaces)} spaces after the root {root}: OCC pads the root to {OCC_ROOT_WIDTH} "
            "characters (AAPL  250117C00150000), TradersPost puts one space (SPY 250624C596)"
        )
    try:
        expiry = date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        raise OptionTickerError(f"{yymmdd} is not a calendar date (YYMMDD)") from None
    if len(strike_text) == _OCC_STRIKE_DIGITS and "." not in strike_text:
        strike = Decimal(strike_text) / 1000
    else:
        strike = Decimal(strike_text)
    if strike <= 0:
        raise OptionTickerError(f"the strike {strike_text} is not above 0")
    return OptionTicker(root, expiry, "C" if right == "C" else "P", strike)
