"""A position still held in an earlier month after ``ROOT1!`` rolled (the executor's seam).

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
from typing import TYPE_CHECKING, Any

from ib_async import Contract

from worker.contracts.tickers import ContractSpec
from worker.decision.planner import Instrument
from worker.decision.positions import Decision
from worker.errors import Refused

if TYPE_CHECKING:
    from worker.ib.trading import Trading


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


def _expiry(contract: Any) -> str:
    return str(getattr(contract, "lastTradeDateOrContractMonth", "") or "")[:8]


def same_root(held: Any, front: Contract) -> bool:
    """Whether ``held`` (a position's contract) is another month of ``front``'s product: same
    symbol, currency and (when IB gives them) trading class and multiplier."""
    if held.secType != "FUT" or held.conId == front.conId or held.symbol != front.symbol:
        return False
    if held.currency and front.currency and held.currency != front.currency:
        return False
    if held.tradingClass and front.tradingClass and held.tradingClass != front.tradingClass:
        return False
    return not (held.multiplier and front.multiplier and _num(held.multiplier) != _num(front.multiplier))


def _num(text: str) -> Decimal:
    try:
        return Decimal(str(text))
    except ArithmeticError:
        return Decimal(0)


def earlier_months_held(positions: list[Any], front: Contract) -> list[tuple[Any, Decimal]]:
    """(contract, signed quantity) of every earlier month of ``front``'s root with a position,
    nearest expiry first."""
    out: dict[int, tuple[Any, Decimal]] = {}
    for pos in positions:
        contract = pos.contract
        qty = Decimal(str(pos.position or 0))
        if qty and same_root(contract, front) and _expiry(contract) < _expiry(front):
            held = out.get(contract.conId)
            out[contract.conId] = (contract, qty + (held[1] if held else 0))
    return sorted(out.values(), key=lambda item: _expiry(item[0]))


async def held_month(
    trading: Trading, spec: ContractSpec, contract: Contract, inst: Instrument
) -> tuple[Contract, Instrument, HeldMonth | None]:
    """The contract to decide on: the held earlier month when there is one (see the module
    docstring), else the one the ticker resolves to."""
    if not spec.follows_front:
        return contract, inst, None
    held = earlier_months_held(list(trading.ib.positions(trading.account or "")), contract)
    if not held:
        return contract, inst, None
    old, qty = held[0]
    pinned = ContractSpec("FUT", old.symbol, spec.exchange, old.currency or spec.currency, con_id=old.conId)
    old_contract, old_inst = await trading.instrument(pinned)
    front = inst.local_symbol or inst.symbol
    others = tuple(str(c.localSymbol or c.conId) for c, _ in held[1:])
    info = HeldMonth(inst.symbol, old_inst.local_symbol or str(old.conId), old.conId, qty, front, others)
    return old_contract, old_inst, info


def keep_to_held_month(decision: Decision, held: HeldMonth | None) -> Decision:
    """The decision on the held month without an opening part (refused when it only opens)."""
    if held is None or decision.open_qty <= 0:
        return decision
    if decision.close_qty <= 0:
        raise RolledPositionHeld(held.opening_refusal())
    reason = f"{decision.reason}; only the close goes: {held.opening_refusal()}"
    return Decision("close", decision.position, Decimal(0), reason)
