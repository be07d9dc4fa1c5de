"""Break-even: when a position's stop moves to its entry price (pure, typed).

The alert's ``stopLoss.breakEven`` (core/payload.py ``BreakEven``) names a distance in the
position's favour, as a percent of the entry, an amount, or ticks. Once the market has gone that
far from the entry (a long's market at or above ``entry + distance``, a short's at or below
``entry - distance``), the stop moves to the entry plus the offset in favour (``offsetTicks`` /
``offsetPercent`` / ``offsetAmount``; none: the entry itself), on the contract's grid the safe way
(never further from the market than asked: a long's stop rounds up).

Or, with ``afterTakeProfit: n`` (a take-profit in levels), once level ``n``'s take-profit has
filled (the watcher reads it from IB: worker/break_even_watch.py), whatever the distance.

It moves once, and only forward: a stop already at or past the new price (moved by an ``update``,
or the bracket's own stop above the entry) is left where it is and the rule is spent. A new stop
that would be at or through the market (a long's at or above it: it would trigger at once) waits:
the offset is larger than the distance gone, and the market may go further.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.payload import BreakEven
from worker.decision.numbers import price as fmt
from worker.decision.rounding import PriceGrid


@dataclass(frozen=True)
class BreakEvenMove:
    """What to do now: ``stop`` the new stop price (None: nothing to move), ``spent`` whether the
    rule is done (moved, or no longer needed), and the sentence for the notice and the audit trail."""

    stop: Decimal | None
    spent: bool
    why: str


def _distance(rule: BreakEven, entry: Decimal, tick: Decimal) -> Decimal:
    if rule.percent is not None:
        return entry * rule.percent / 100
    if rule.amount is not None:
        return rule.amount
    return (rule.ticks or Decimal(0)) * tick


def _offset(rule: BreakEven, entry: Decimal, tick: Decimal) -> tuple[Decimal, str]:
    if rule.offset_ticks:
        return rule.offset_ticks * tick, f" + {rule.offset_ticks.normalize():f} tick(s)"
    if rule.offset_percent:
        return entry * rule.offset_percent / 100, f" + {rule.offset_percent.normalize():f}%"
    if rule.offset_amount:
        return rule.offset_amount, f" + {fmt(rule.offset_amount)}"
    return Decimal(0), ""


def break_even_move(
    rule: BreakEven,
    position: Decimal,
    entry: Decimal,
    market: Decimal,
    current_stop: Decimal | None,
    grid: PriceGrid,
    level_filled: bool = False,
) -> BreakEvenMove:
    """The move for a position of ``position`` (signed) entered at ``entry``, the market at ``market``.
    ``level_filled``: the take-profit level a rule ``afterTakeProfit`` names has filled."""
    if position == 0:
        return BreakEvenMove(None, False, "flat: nothing to move")
    sign = 1 if position > 0 else -1
    tick = grid.increment_at(entry)
    if rule.after_take_profit is not None:
        level = f"{rule.after_take_profit.normalize():f}"
        if not level_filled:
            return BreakEvenMove(None, False, f"take-profit level {level} has not filled yet")
        reached = f"take-profit level {level} filled (the market at {fmt(market)})"
    else:
        trigger = entry + sign * _distance(rule, entry, tick)
        if (market - trigger) * sign < 0:
            return BreakEvenMove(None, False, f"market {fmt(market)} has not reached {fmt(trigger)} yet")
        reached = f"the market {fmt(market)} reached {fmt(trigger)} (entry {fmt(entry)} {'+' if sign > 0 else '-'} the breakEven distance)"
    offset, how = _offset(rule, entry, tick)
    stop = grid.round(entry + sign * offset, "up" if sign > 0 else "down")
    side = "long" if sign > 0 else "short"
    if current_stop is not None and (current_stop - stop) * sign >= 0:
        return BreakEvenMove(
            None,
            True,
            f"{reached}; the stop {fmt(current_stop)} is already at or past break-even {fmt(stop)}",
        )
    if (market - stop) * sign <= 0:
        return BreakEvenMove(
            None, False, f"{reached}, but break-even {fmt(stop)} is not yet on the safe side of it"
        )
    return BreakEvenMove(
        stop,
        True,
        f"stop moved to break-even {fmt(stop)} (entry {fmt(entry)}{how}) for the {side} position: {reached}",
    )
