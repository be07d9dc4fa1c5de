"""An option chosen from an alert on the underlying: the direction table (pure, typed).

The alert's option fields (``optionType``, ``expiration``, ``intrinsicValue``, ...) are parsed and
checked in core/option_fields.py, shared with the webhook, which validates them at intake; this
module re-exports its names (:class:`OptionRequest`, :func:`parse_option_request`, ...) so the
worker's modules keep importing them from here. The direction table (:data:`DIRECTIONS`) says which
right a signal trades and on which side; worker/decision/option_choice.py picks the contract from
IB's chain and worker/decision/option_prices.py prices it (docs/contracts.md, "Options from the
underlying's alert").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from core.option_fields import (
    FIELDS,
    MAX_DTE,
    MAX_RELATIVE,
    MAX_STRIKES,
    Expiration,
    Intrinsic,
    OptionFieldError,
    OptionRequest,
    OptionType,
    Unit,
    field_errors,
    parse_option_field,
    parse_option_request,
)

#: US equity options: the exchange's date and clock (expiries, the last entry time, the expiry alarm)
NEW_YORK = ZoneInfo("America/New_York")

__all__ = [
    "DIRECTIONS",
    "FIELDS",
    "MAX_DTE",
    "MAX_RELATIVE",
    "MAX_STRIKES",
    "NEW_YORK",
    "Direction",
    "Expiration",
    "Intrinsic",
    "OptionFieldError",
    "OptionRequest",
    "OptionType",
    "Right",
    "Side",
    "Signal",
    "Unit",
    "direction",
    "direction_table",
    "field_errors",
    "parse_option_field",
    "parse_option_request",
]

Right = Literal["C", "P"]
Side = Literal["BUY", "SELL"]
# The underlying's signal that opens an option position: ``buy`` is bullish, ``sell`` bearish.
Signal = Literal["buy", "sell"]


@dataclass(frozen=True)
class Direction:
    """Which right a signal trades, and the order that opens it."""

    right: Right
    side: Side
    rule: str  # the table row as a sentence


# TradersPost's direction, one row per (optionType, signal). With ``put`` the action is inverted
# (its webhook description: a strategy on the underlying's chart trading puts): a bullish ``buy``
# sells puts to open, a bearish ``sell`` buys puts to open. With ``both`` every signal buys: calls
# when bullish, puts when bearish. With ``call`` the action is the order, as for shares.
DIRECTIONS: dict[tuple[OptionType, Signal], Direction] = {
    ("call", "buy"): Direction("C", "BUY", "buy with optionType call: buy calls to open"),
    ("call", "sell"): Direction("C", "SELL", "sell with optionType call: sell calls to open"),
    ("put", "buy"): Direction("P", "SELL", "buy with optionType put (inverted): sell puts to open"),
    ("put", "sell"): Direction("P", "BUY", "sell with optionType put (inverted): buy puts to open"),
    ("both", "buy"): Direction("C", "BUY", "buy (bullish) with optionType both: buy calls to open"),
    ("both", "sell"): Direction("P", "BUY", "sell (bearish) with optionType both: buy puts to open"),
}


def direction(option_type: OptionType, signal: Signal) -> Direction:
    """The table's row for this option type and signal."""
    return DIRECTIONS[(option_type, signal)]


def direction_table() -> str:
    """The direction table as Markdown (docs/contracts.md holds this very text; a test checks it)."""
    rows = ["| `optionType` | alert `action` | option traded | order that opens it |", "|---|---|---|---|"]
    for (option_type, signal), row in DIRECTIONS.items():
        right = "call" if row.right == "C" else "put"
        mood = "bullish" if signal == "buy" else "bearish"
        held = "long" if row.side == "BUY" else "short"
        rows.append(
            f"| `{option_type}` | `{signal}` ({mood}) | {right} | {row.side} to open ({held} {right}s) |"
        )
    return "\n".join(rows)
