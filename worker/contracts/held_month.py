"""A position still held in an earlier month after ``ROOT1!`` rolled (pure; the IB side that finds
it is ``ContractBook.held_month``, worker/ib/contracts.py).

After the roll date ``ES1!`` resolves to the next contract (ESH7) while the account may still hold
the old one (ESZ6): the strategy's position is there. The rules (docs/contracts.md):

* the alert is decided against the month that is HELD (the nearest-expiring earlier month with a
  position), so ``exit``, ``sentiment: flat``, a reduce or a ``positionSize`` toward flat close
  the contract actually held: a position is never stranded in an expiring month;
* an alert that would OPEN or ADD while the old month is held is refused: "ES position of 2 is
  held in ESZ6; roll it or flatten before opening ESH7" (no silent second position in another
  month, no automatic roll that trades what the alert did not ask for);
* a reversal (long ESZ6 → short) keeps its closing part (the old month is closed) and drops the
  opening part with that reason in the plan: exits and closes are never blocked.

It applies to the front continuous ticker (``ROOT1!``) and to map entries pinning its month;
``ROOT2!`` and beyond resolve without it (their "earlier months" are the front's).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.decision.positions import Decision
from worker.errors import Refused


class RolledPositionHeld(Refused):
    """An opening alert on a continuous future while an earlier month is still held."""


@dataclass(frozen=True)
class HeldMonth:
    """The earlier month the position is in, and the month the ticker resolves to now."""

    root: str
    held: str  # local symbol of the held month (ESZ6)
    held_con_id: int
    quantity: Decimal  # signed
    front: str  # local symbol the ticker resolves to today (ESH7)
    others: tuple[str, ...] = ()  # further earlier months with a position (rare: manual trades)

    def opening_refusal(self) -> str:
        return (
            f"{self.root} position of {_qty(self.quantity)} is held in {self.held}; roll it or flatten "
            f"before opening {self.front}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "held_con_id": self.held_con_id,
            "held_quantity": _qty(self.quantity),
            "front": self.front,
            "others_held": list(self.others),
            "rule": "a position held in an earlier month is closed there; nothing opens in another month",
        }


def _qty(value: Decimal) -> str:
    return format(value.normalize(), "f")


def keep_to_held_month(decision: Decision, held: HeldMonth | None) -> Decision:
    """The decision on the held month without an opening part (refused when it only opens)."""
    if held is None or decision.open_qty <= 0:
        return decision
    if decision.close_qty <= 0:
        raise RolledPositionHeld(held.opening_refusal())
    reason = f"{decision.reason}; only the close goes: {held.opening_refusal()}"
    return Decision("close", decision.position, Decimal(0), reason)
