"""Prices on the contract's tick grid, rounded in the safe direction.

"Safe" means the order we send is never worse for the trader than the order asked for:

* a **limit** price never pays more or receives less than asked: a BUY limit rounds **down**,
  a SELL limit rounds **up** (entry limits and take-profits alike; a long's take-profit is a
  SELL limit, so it rounds up; a short's is a BUY limit, so it rounds down);
* a **protective stop** (stop-loss) never risks more than asked: it rounds **toward the entry**.
  A long's stop-loss is a SELL stop below the entry, so it rounds **up**; a short's is a BUY stop
  above the entry, so it rounds **down**.
* an **entry stop** (stop or stop-limit entry, a trailing entry's initial trigger) never triggers
  on a price the trader did not ask for: a BUY stop (a breakout above) rounds **up**, a SELL stop
  rounds **down**. The entry may trigger up to a tick later, never earlier.

After rounding, the planner re-checks that the stop and the target are still strictly on their
side of the entry reference (a stop-loss less than a tick away could otherwise land on it).
Market rules with price bands (``marketRuleIds``) are not applied yet: ``minTick`` is used.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

Direction = Literal["up", "down"]


def to_decimal(value: object) -> Decimal:
    """A Decimal from a JSON number or numeric string, via ``str`` so floats keep their digits."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a number: {value!r}")
    result = Decimal(str(value).strip())
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def round_to_tick(price: Decimal, tick: Decimal, direction: Direction) -> Decimal:
    """``price`` moved onto the grid of ``tick`` (> 0), rounding up or down; exact Decimal result."""
    if tick <= 0:
        raise ValueError(f"tick must be positive, got {tick}")
    steps = (price / tick).to_integral_value(rounding=ROUND_CEILING if direction == "up" else ROUND_FLOOR)
    # quantize to the tick's exponent so 1.08005 stays 1.08005 and not 1.0800500000
    return (
        (steps * tick).quantize(tick.normalize())
        if tick.normalize().as_tuple().exponent < 0
        else steps * tick
    )


def limit_direction(action: str) -> Direction:
    """Rounding direction of a limit price: BUY rounds down, SELL rounds up (never a worse price)."""
    return "down" if action.upper() == "BUY" else "up"


def protective_stop_direction(action: str) -> Direction:
    """Rounding direction of a stop-loss: toward the entry (a SELL stop up, a BUY stop down)."""
    return "up" if action.upper() == "SELL" else "down"


def entry_stop_direction(action: str) -> Direction:
    """Rounding direction of an entry's stop (trigger): away from the market (a BUY stop up, a SELL
    stop down), so it never triggers before the price the alert named."""
    return "up" if action.upper() == "BUY" else "down"


def on_grid(price: Decimal, tick: Decimal) -> bool:
    """True when ``price`` is a whole number of ticks."""
    return (price / tick) == (price / tick).to_integral_value()
