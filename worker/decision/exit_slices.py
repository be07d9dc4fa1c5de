"""The exits of a take-profit in levels (pure): one slice per level, each a take-profit ``tp.<i>``
and a stop-loss ``sl.<i>`` of the level's size in their own OCA group (docs/positions.md).

IB keeps the slices right by itself while the position only shrinks by their fills: a level's
take-profit fills and IB cancels that level's stop (the OCA group), so the stops always add up to
the position. What IB cannot know is a change of the position from outside the slices (a manual
partial close, an ``exit`` alert, an ``add`` that filled) or a stop IB cancelled. The rule here
makes the stops add up to the position again, level by level:

* levels are read in order (1, 2, 3...; a plain exit, level ``""``, last);
* each level covers what its stop covers (a level whose stop is missing: what its take-profit
  covers, and a new stop for it when the position wants a stop-loss), up to what is left of the
  position: a position smaller than the slices shrinks them **from the last level**, a slice left
  with nothing is cancelled;
* a level's take-profit never exceeds its level's stop (it would sell more than the slice);
* a position larger than the slices (an ``add`` filled) grows the **last** level's stop: the
  added contracts are protected by the stop and closed by no take-profit (the "rest").

Cancels and shrinks come first, new and grown stops last: applied one at a time, the exits never
exceed the position.
"""

from __future__ import annotations

from decimal import Decimal

from worker.decision.exit_model import ExitChange, Side, WorkingExit

ZERO = Decimal(0)


def level_order(level: str) -> tuple[int, int]:
    """Sort key of a level: 1, 2, 3..., then a plain exit (``""``)."""
    return (1, 0) if not level else (0, int(level))


def sliced_changes(
    size: Decimal, closing: Side, exits: list[WorkingExit], wanted: frozenset[str] = frozenset()
) -> list[ExitChange]:
    """Changes that make sliced exits (all on the closing side, positive) fit a position of
    ``size`` (> 0): see the module docstring. ``wanted``: the roles the position's plan asked for
    (a level whose stop is gone gets a new one only when ``sl`` is wanted)."""
    stops: dict[str, WorkingExit] = {}
    targets: dict[str, WorkingExit] = {}
    cancels: list[ExitChange] = []
    for ex in exits:
        kept = stops if ex.role == "sl" else targets
        if ex.slice in kept:  # a second exit of a role in one level: never planned
            cancels.append(ExitChange(ex.ref, ex.role, ex.action, ZERO, ex.slice))
        else:
            kept[ex.slice] = ex
    levels = sorted(set(stops) | set(targets), key=level_order)
    stop_size: dict[str, Decimal] = {}
    target_size: dict[str, Decimal] = {}
    budget = size
    for level in levels:
        stop, target = stops.get(level), targets.get(level)
        covers = stop.quantity if stop is not None else target.quantity if target is not None else ZERO
        cover = min(covers, budget)
        budget -= cover
        if stop is not None or "sl" in wanted:
            stop_size[level] = cover
        if target is not None:
            target_size[level] = min(target.quantity, cover)
    if budget > 0 and stop_size:  # the position grew: the last level's stop covers the rest
        last = max(stop_size, key=level_order)
        stop_size[last] += budget
    return cancels + _changes(closing, stops, targets, stop_size, target_size)


def _changes(
    closing: Side,
    stops: dict[str, WorkingExit],
    targets: dict[str, WorkingExit],
    stop_size: dict[str, Decimal],
    target_size: dict[str, Decimal],
) -> list[ExitChange]:
    """The changes, smaller first: cancels and shrinks, then new and grown exits."""
    changes: list[tuple[Decimal, ExitChange]] = []
    for kept, sizes, role in ((targets, target_size, "tp"), (stops, stop_size, "sl")):
        for level, new in sizes.items():
            ex = kept.get(level)
            if ex is None:
                if new > 0:
                    changes.append((new, ExitChange(None, role, closing, new, level)))  # type: ignore[arg-type]
            elif new != ex.quantity:
                changes.append((new - ex.quantity, ExitChange(ex.ref, ex.role, ex.action, new, level)))
    changes.sort(key=lambda item: item[0])
    return [change for _, change in changes]
