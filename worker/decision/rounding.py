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

The grid is IB's **market rule** for the contract when IB gave one (:class:`PriceGrid`): price
bands, each a low edge and the increment from that edge up (US stocks: 0.0001 below 1.00, 0.01
from 1.00), fetched with ``reqMarketRule`` for the rule id of the order's exchange
(worker/ib/market_rules.py). ``minTick`` alone is the grid when there is no rule. At a band
boundary the increment is the one of the band the **rounded** price lands in: 0.99996 rounded up
is 1.00 (the upper band, on its 0.01 grid), never 1.0000 judged by the lower band's 0.0001; and a
price that rounds down out of its band takes the largest price of the band below. Every result is
a valid IB price, and the safe direction is kept across the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
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


Band = tuple[Decimal, Decimal]  # (low edge, increment from that edge up)


@dataclass(frozen=True)
class PriceGrid:
    """The prices IB accepts for a contract: its market rule's bands, else ``minTick`` everywhere."""

    min_tick: Decimal
    bands: tuple[Band, ...] = ()  # sorted by low edge; empty: min_tick only

    def _band_index(self, price: Decimal) -> int:
        index = 0
        for i, (low, _inc) in enumerate(self.bands):
            if price >= low:
                index = i
        return index

    def increment_at(self, price: Decimal) -> Decimal:
        """The increment IB requires at ``price`` (the band ``price`` falls in; a band starts at its
        low edge, inclusive)."""
        if not self.bands:
            return self.min_tick
        return self.bands[self._band_index(price)][1]

    def round(self, price: Decimal, direction: Direction) -> Decimal:
        """``price`` on the grid, up or down (see the module docstring for band boundaries)."""
        if not self.bands:
            return round_to_tick(price, self.min_tick, direction)
        i = self._band_index(price)
        if direction == "up":
            rounded = round_to_tick(price, self.bands[i][1], "up")
            if i + 1 < len(self.bands) and rounded >= self.bands[i + 1][0]:
                # it lands in the next band: the smallest price on that band's grid
                return self.round(self.bands[i + 1][0], "up")
            return rounded
        while True:
            low, inc = self.bands[i]
            rounded = round_to_tick(price, inc, "down")
            if rounded >= low or i == 0:
                return rounded
            # it falls out of its band: the largest price of the band below, strictly under this edge
            i -= 1
            below = round_to_tick(low, self.bands[i][1], "down")
            price = below - self.bands[i][1] if below >= low else below

    def on_grid(self, price: Decimal) -> bool:
        """True when IB accepts ``price`` (a whole number of its band's increments)."""
        return on_grid(price, self.increment_at(price))

    def describe(self) -> str:
        """``tick 0.01`` or ``bands 0.0001 from 0, 0.01 from 1`` (for the plan's notes)."""
        if not self.bands:
            return f"tick {self.min_tick}"
        return "bands " + ", ".join(
            f"{inc.normalize():f} from {low.normalize():f}" for low, inc in self.bands
        )
