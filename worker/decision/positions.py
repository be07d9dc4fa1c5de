"""Position semantics (pure logic): what an alert means against the position IB reports.

TradingView strategies describe positions; this module turns one alert plus IB's signed position
into a :class:`Decision`: the position wanted after the trade and how to get there. It also holds
the exit rule (:func:`exit_changes`) that keeps tv2ib's protective orders matching the position
(docs/design.md invariant 7). Nothing here talks to IB or the database.

Rules (TradersPost-compatible; docs/positions.md has the full table):

* ``positionSize`` (signed) is the target and wins over everything else; already there: no order.
* ``sentiment: flat`` (or ``action: exit``) closes; ``exit`` with a quantity or
  ``percent_of_position`` closes part of the position.
* ``buy q`` / ``sell q`` move the position by q (TradingView's ``{{strategy.order.contracts}}``,
  so a reversal long 10 -> short 10 arrives as ``sell 20``). ``buy`` while already long is refused
  (no accidental pyramiding: send ``add`` or ``positionSize``); ``buy`` without quantity while
  short closes the short.
* ``sentiment: bullish`` / ``bearish`` is the side the position must be on after the trade: the
  result is clamped at flat rather than crossing to the other side (a ``sell`` with ``bullish``
  only reduces a long; a ``buy`` with ``bullish`` that cannot make a short long closes it).
* ``add q`` grows the position in its current direction; from flat it is refused.

How a decision goes out (one protective set per position, see :func:`exit_changes`):

* the **closing part** (``close_qty``: reduces the absolute position, toward flat) goes first;
  before it, every exit is shrunk to the position the closing part leaves (cancelled when that is
  flat), and IB's confirmation is awaited;
* the **opening part** (``open_qty``: grows the position on the target's side) goes only after the
  closing part is done, so a reversal is a close then an open: if IB refuses the open (a cash
  account cannot short), the account is flat, not on the old side without exits;
* exits are sized to the position IB reports after each fill: they grow only after a fill and
  shrink before an order that reduces, so a stop or target never exceeds the position.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

from core.payload import AlertPayload
from worker.decision.exit_model import ExitChange, Side, WorkingExit
from worker.decision.exit_slices import sliced_changes
from worker.errors import Refused

__all__ = ["ExitChange", "WorkingExit", "exit_changes", "exits_fit"]
Kind = Literal["open", "add", "reduce", "close", "reverse", "none", "refuse", "cancel"]
ZERO = Decimal(0)
HUNDRED = Decimal(100)


class PositionRefused(Refused):
    """The alert does not fit the position; the message is the reason shown to the trader."""


@dataclass(frozen=True)
class PositionIntent:
    """What an alert asks for, in position terms (built from the validated payload)."""

    action: str  # buy, sell, add, exit, cancel
    quantity: Decimal | None = None  # contracts, already sized; None when the alert gave none
    percent_of_position: Decimal | None = None  # quantityType percent_of_position
    position_size: Decimal | None = None  # signed target (positionSize)
    sentiment: str | None = None  # bullish, bearish, flat


@dataclass(frozen=True)
class Decision:
    """Where the position goes and in which two parts: first close (toward flat), then open."""

    kind: Kind
    position: Decimal  # IB's signed position before the trade
    target: Decimal  # the signed position wanted after it
    reason: str  # one sentence for the trader (stored in the plan, shown in the notice)

    @property
    def close_qty(self) -> Decimal:
        """The part that reduces the absolute position (sent first)."""
        if self.position == 0:
            return ZERO
        if self.target * self.position > 0:  # same side: reduces, or grows (nothing to close)
            return max(ZERO, abs(self.position) - abs(self.target))
        return abs(self.position)  # closes entirely (and maybe reverses)

    @property
    def open_qty(self) -> Decimal:
        """The part that grows the position on the target's side (sent after the close is done)."""
        if self.target == 0:
            return ZERO
        if self.position * self.target > 0:
            return max(ZERO, abs(self.target) - abs(self.position))
        return abs(self.target)

    @property
    def close_side(self) -> Side | None:
        return None if self.close_qty == 0 else side_closing(self.position)

    @property
    def open_side(self) -> Side | None:
        return None if self.open_qty == 0 else ("BUY" if self.target > 0 else "SELL")

    @property
    def sends_order(self) -> bool:
        return self.kind not in ("none", "refuse", "cancel")


def is_exit(payload: AlertPayload) -> bool:
    """An alert that exits (``action: exit`` or ``sentiment: flat``): its closing leg is ``exit``."""
    return payload.action == "exit" or payload.sentiment == "flat"


def side_closing(position: Decimal) -> Side:
    """The order side that reduces ``position`` (SELL for a long, BUY for a short)."""
    return "SELL" if position > 0 else "BUY"


def describe(position: Decimal) -> str:
    """``long 10``, ``short 3``, ``flat``."""
    if position == 0:
        return "flat"
    return f"{'long' if position > 0 else 'short'} {_num(abs(position))}"


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _signed(value: Decimal) -> str:
    return f"{'+' if value > 0 else ''}{_num(value)}"


def part_of_position(position: Decimal, percent: Decimal, increment: Decimal) -> Decimal:
    """``percent`` of the absolute position, rounded down to the size increment (never more)."""
    raw = abs(position) * percent / HUNDRED
    if increment <= 0:
        return raw
    return (raw / increment).to_integral_value(rounding=ROUND_FLOOR) * increment


def decide(position: Decimal, intent: PositionIntent, increment: Decimal = Decimal(1)) -> Decision:
    """The trade an alert asks for against IB's signed ``position``.

    Raises :class:`PositionRefused` when the alert does not fit the position (buy while long,
    add while flat, a quantity that is missing where one is needed).
    """
    action = intent.action.lower()
    sentiment = (intent.sentiment or "").lower() or None
    if action == "cancel":
        return Decision("cancel", position, position, "cancel working entry orders; the position is kept")
    if intent.position_size is not None and action != "exit":
        return _to_target(position, intent.position_size, "positionSize")
    if action == "exit" or sentiment == "flat":
        return _exit(position, intent, increment)
    if action == "add":
        return _add(position, intent)
    if action not in ("buy", "sell"):
        raise PositionRefused(f"unknown action {action!r}")
    sign = 1 if action == "buy" else -1
    qty = intent.quantity
    if qty is None and intent.percent_of_position is not None:
        if position == 0:
            raise PositionRefused(f"{action} with percent_of_position needs a position: the position is flat")
        qty = part_of_position(position, intent.percent_of_position, increment)
        if qty <= 0:
            raise PositionRefused(
                f"{_num(intent.percent_of_position)}% of {describe(position)} rounds down to 0"
            )
    if sentiment in ("bullish", "bearish"):
        wanted_sign = 1 if sentiment == "bullish" else -1
        if qty is None:
            if position * sign < 0:  # closing the opposite side needs no quantity
                return _to_target(position, ZERO, f"{action} without quantity")
            raise PositionRefused(f"{action} needs a quantity (position is {describe(position)})")
        if position * sign > 0:
            raise PositionRefused(
                f"already {describe(position)}: {action} {_num(qty)} would add to it; "
                "send add or positionSize to grow a position"
            )
        result = position + sign * qty
        if result * wanted_sign < 0:  # the side after the trade must be the sentiment's (or flat)
            return _to_target(position, ZERO, f"{action} {_num(qty)} with sentiment {sentiment}",
                              note=f"{_num(qty)} would leave {describe(result)}; closed to flat instead")  # fmt: skip
        return _to_target(position, result, f"{action} {_num(qty)} with sentiment {sentiment}")
    if position * sign > 0:
        raise PositionRefused(f"already {describe(position)}: send add or positionSize to grow a position")
    if qty is None:
        if position == 0:
            raise PositionRefused(f"{action} needs a quantity when flat")
        return _to_target(position, ZERO, f"{action} without quantity")
    return _to_target(position, position + sign * qty, f"{action} {_num(qty)}")


def toward(position: Decimal, target: Decimal) -> Decision:
    """The way from ``position`` to a stored absolute ``target`` (a rerun resumes from what IB
    reports now; the parts are then capped by the stored decision's, see worker/execution/protocol.py)."""
    return _to_target(position, target, "resuming toward the recorded target")


def _exit(position: Decimal, intent: PositionIntent, increment: Decimal) -> Decision:
    if position == 0:
        return Decision("none", position, position, "nothing to exit: the position is flat")
    if intent.percent_of_position is not None:
        part = part_of_position(position, intent.percent_of_position, increment)
        if part <= 0:
            raise PositionRefused(
                f"{_num(intent.percent_of_position)}% of {describe(position)} rounds down to 0"
            )
    elif intent.quantity is not None and (intent.sentiment or "").lower() != "flat":
        part = min(intent.quantity, abs(position))
    else:
        part = abs(position)
    target = position - (part if position > 0 else -part)
    return _to_target(position, target, "exit")


def _add(position: Decimal, intent: PositionIntent) -> Decision:
    if position == 0:
        raise PositionRefused("add needs a position to add to: the position is flat (send buy or sell)")
    qty = intent.quantity
    if intent.percent_of_position is not None:
        qty = abs(position) * intent.percent_of_position / HUNDRED
    if qty is None or qty <= 0:
        raise PositionRefused("add needs a quantity")
    target = position + (qty if position > 0 else -qty)
    return _to_target(position, target, f"add {_num(qty)}")


def _to_target(position: Decimal, target: Decimal, why: str, note: str | None = None) -> Decision:
    if target == position:
        reason = f"already at target {_signed(target) if target else 'flat'}: no order ({why})"
        return Decision("none", position, target, reason)
    if position == 0:
        kind: Kind = "open"
    elif target == 0:
        kind = "close"
    elif target * position < 0:
        kind = "reverse"
    elif abs(target) > abs(position):
        kind = "add"
    else:
        kind = "reduce"
    text = f"{why}: {describe(position)} -> {describe(target)}"
    if kind == "reverse":
        text += f" (close {_num(abs(position))}, then open {_num(abs(target))})"
    if note:
        text += f"; {note}"
    return Decision(kind, position, target, text)


# ------------------------------------------------------------------ exits (invariant 7)


def exit_changes(
    position: Decimal, exits: list[WorkingExit], wanted: frozenset[str] = frozenset()
) -> list[ExitChange]:
    """Changes that make the exits fit ``position``: cancels first, then resizes, then new ones.

    * with a flat position every exit is cancelled;
    * an exit on the opening side (it would add to the position) is cancelled;
    * per role, the total working quantity becomes exactly the absolute position: the first exit of
      a role is resized, any extra one of that role is cancelled;
    * a role in ``wanted`` (the protection the position's plan asked for) that has no exit gets a
      new one for the whole position.

    Calling it with the position an order will LEAVE (before that order goes out) shrinks the
    exits in time; calling it with the position after a fill grows them.

    The slices of a take-profit in levels (exits ``tp.1`` / ``sl.1``...) follow their own rule,
    per level: worker/decision/exit_slices.py.
    """
    size = abs(position)
    closing = side_closing(position) if position else None
    if closing is not None and any(ex.slice for ex in exits):
        wrong = [
            ExitChange(ex.ref, ex.role, ex.action, ZERO)
            for ex in exits
            if ex.quantity > 0 and ex.action != closing
        ]
        right = [ex for ex in exits if ex.quantity > 0 and ex.action == closing]
        return wrong + sliced_changes(size, closing, right, wanted)
    changes: list[ExitChange] = []
    kept: dict[str, WorkingExit] = {}
    for ex in exits:
        if ex.quantity <= 0:
            continue
        if closing is None or ex.action != closing or ex.role in kept:
            changes.append(ExitChange(ex.ref, ex.role, ex.action, ZERO))
        else:
            kept[ex.role] = ex
    resizes = [ExitChange(ex.ref, role, ex.action, size) for role, ex in kept.items() if ex.quantity != size]
    # shrinking first, growing last: a partial application never leaves more than the position
    resizes.sort(key=lambda c: c.quantity - kept[c.role].quantity)
    changes += resizes
    if closing is not None:
        changes += [ExitChange(None, role, closing, size) for role in sorted(wanted) if role not in kept]
    return changes


def shrank(before: Decimal, now: Decimal) -> bool:
    """Whether the position moved toward flat, or past it: exits sized for ``before`` may now
    exceed it (or be on its opening side)."""
    return now * before < 0 or abs(now) < abs(before)


def stop_first(changes: list[ExitChange]) -> list[ExitChange]:
    """Re-pricing order: every stop-loss change before any take-profit change (otherwise in the
    given order). A target re-priced through the market fills at once and IB trims its stop by
    OCA; a stop modified after that would restate the quantity it had before the fill."""
    return sorted(changes, key=lambda change: change.role != "sl")


def exits_fit(position: Decimal, exits: list[WorkingExit]) -> str | None:
    """Invariant 7 for one account and contract: None when it holds, else what is wrong."""
    closing = side_closing(position) if position else None
    for role in ("tp", "sl"):
        of_role = [ex for ex in exits if ex.role == role and ex.quantity > 0]
        if position == 0 and of_role:
            return f"{role} working while flat"
        if any(ex.action != closing for ex in of_role):
            return f"{role} on the opening side of {describe(position)}"
        total = sum((ex.quantity for ex in of_role), ZERO)
        if total > abs(position):
            return f"{role} quantity {_num(total)} exceeds {describe(position)}"
    return None
