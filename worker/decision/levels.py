"""A take-profit in levels as order legs (pure): one sub-bracket per level under the entry.

Level ``i`` is a take-profit ``tp.<i>`` and a stop-loss ``sl.<i>`` of the level's size, both
children of the entry, in their own OCA group (``tv2ib:<alert>:<i>``, worker/ib/placement.py). A
level's take-profit filling makes IB cancel that level's stop at once, and a stop triggering
cancels its take-profit: the stops always add up to the position, with no race between a fill and
a resize (docs/positions.md, "A take-profit in levels"). What the levels leave of the position
(the last level without a size, or sizes adding up to less than the position) is a slice with a
stop only: ``sl.<n+1>`` (or the last level's own ``sl.<n>`` when it is the rest).

Sizes: ``quantity`` contracts, or ``quantityPercent`` of the position rounded DOWN to the
contract's size increment; together at most the position; a level that comes to 0 is refused.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_FLOOR, Decimal

from core.ids import exit_leg_parts, slice_leg
from core.payload import TakeProfitLevel
from worker.decision.model import Leg, PlanRejected

HUNDRED = Decimal(100)


def level_sizes(levels: tuple[TakeProfitLevel, ...], position: Decimal, increment: Decimal) -> list[Decimal]:
    """The size of each level (the last without a size: the rest), checked against ``position``."""
    sizes: list[Decimal] = []
    for n, level in enumerate(levels, start=1):
        if level.quantity is not None:
            size = level.quantity
        elif level.quantity_percent is not None:
            step = increment if increment > 0 else Decimal(1)
            size = (position * level.quantity_percent / HUNDRED / step).to_integral_value(ROUND_FLOOR) * step
        elif n == len(levels):
            size = position - sum(sizes, Decimal(0))
        else:  # the schema refuses it; a stored payload may still be odd
            raise PlanRejected(f"take-profit level {n} has no size (quantity or quantityPercent)")
        if size <= 0:
            raise PlanRejected(
                f"take-profit level {n} comes to {size} of a position of {position}: nothing to close"
            )
        if increment > 0 and (size / increment) != (size / increment).to_integral_value():
            raise PlanRejected(
                f"take-profit level {n}: {size} is not a multiple of the size increment {increment}"
            )
        sizes.append(size)
    total = sum(sizes, Decimal(0))
    if total > position:
        raise PlanRejected(f"the take-profit levels add up to {total}, more than the position {position}")
    return sizes


def sliced_children(
    targets: list[Leg], stop: Leg | None, sizes: list[Decimal], position: Decimal
) -> list[Leg]:
    """The children of the entry: per level its take-profit (one of ``targets``, priced for the
    level) and a copy of ``stop`` of the level's size; then a stop for the rest of the position."""
    children: list[Leg] = []
    for n, (target, size) in enumerate(zip(targets, sizes, strict=True), start=1):
        children.append(replace(target, leg=slice_leg("tp", n), quantity=size))
        if stop is not None:
            children.append(replace(stop, leg=slice_leg("sl", n), quantity=size))
    rest = position - sum(sizes, Decimal(0))
    if stop is not None and rest > 0:
        children.append(replace(stop, leg=slice_leg("sl", len(sizes) + 1), quantity=rest))
    return children


def sized_legs(legs: list[Leg], quantity: Decimal) -> list[Leg]:
    """A bracket's legs for an entry of ``quantity`` (the position may have moved since the plan):
    the entry and plain exits take ``quantity``; the slices of a take-profit in levels keep their
    sizes while they fit, shrink from the last level when the entry is smaller (a slice left with
    nothing is dropped), and the last stop covers what an entry larger than planned adds. The last
    leg sent still transmits the bracket."""
    if not any((exit_leg_parts(leg.leg) or ("", ""))[1] for leg in legs):
        return [replace(leg, quantity=quantity) for leg in legs]
    budget: dict[str, Decimal] = {}  # level -> what it covers (its stop's size, else its target's)
    left = quantity
    for leg in legs:
        _, level = exit_leg_parts(leg.leg) or ("", "")
        if level and level not in budget:  # a level's tp and sl come in pairs of one size
            budget[level] = min(leg.quantity, left)
            left -= budget[level]
    stops = [level for level in budget if any(leg.leg == slice_leg("sl", level) for leg in legs)]
    if left > 0 and stops:
        budget[stops[-1]] += left
    sized = []
    for leg in legs:
        level = (exit_leg_parts(leg.leg) or ("", ""))[1]
        size = (
            quantity
            if not level
            else min(leg.quantity, budget[level])
            if leg.leg.startswith("tp")
            else budget[level]
        )
        if size > 0:
            sized.append(replace(leg, quantity=size, transmit=False))
    sized[-1] = replace(sized[-1], transmit=True)
    return sized
