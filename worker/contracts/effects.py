"""What the symbol map changes in a decision (pure; the executor's seam for contracts).

* :func:`scale_intent`: an alert's contract counts × the map's ``quantity_multiplier`` (alert on
  ``NQ1!`` traded as ``MNQ`` × 10: quantity 1 or ``positionSize: 1`` → 10 MNQ). Only counts of
  the alert's own chart contract are scaled: ``fixed_quantity`` (or no type) and ``positionSize``.
  A sized quantity (``dollar_amount``, ``risk_*``, ``percent_of_equity``) is computed on the
  traded contract (its price and multiplier) and a ``percent_of_position`` is a fraction of what
  is held, so neither is multiplied.
* :func:`chart_position`: IB's position in the alert's units (for the drift check, which compares
  it with the strategy's previous position).
* :func:`contract_map_of`: ``plan["contract_map"]``, what the map and the roll did.
* :func:`decided_spec`: the contract a decided alert acts on (its plan's conId), so a rerun
  after a roll, or a decision on a held old month, never trades another month.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from core.payload import AlertPayload
from worker.contracts.held_month import HeldMonth
from worker.contracts.roll import Pick
from worker.contracts.tickers import ContractSpec
from worker.decision.model import Instrument
from worker.decision.positions import PositionIntent

CHART_COUNT_TYPES = (None, "", "fixed_quantity")


def _factor(spec: ContractSpec | None) -> Decimal:
    return spec.quantity_multiplier if spec is not None else Decimal(1)


def scale_intent(intent: PositionIntent, payload: AlertPayload, spec: ContractSpec | None) -> PositionIntent:
    """The intent in traded contracts (see the module docstring)."""
    factor = _factor(spec)
    if factor == 1:
        return intent
    quantity = intent.quantity
    if quantity is not None and payload.quantity_type in CHART_COUNT_TYPES:
        quantity = quantity * factor
    size = intent.position_size * factor if intent.position_size is not None else None
    return replace(intent, quantity=quantity, position_size=size)


def chart_position(position: Decimal, spec: ContractSpec | None) -> Decimal:
    """IB's position in the alert's contracts (10 MNQ at × 10 → 1)."""
    factor = _factor(spec)
    return position if factor == 1 else position / factor


@dataclass(frozen=True)
class ContractMap:
    """``plan["contract_map"]``: the ticker, what was traded and why (the map, the roll, a held month)."""

    ticker: str
    traded: str  # IB's local symbol (MNQZ6)
    traded_symbol: str
    con_id: int
    quantity_multiplier: str
    quantity_rule: str
    pinned: str | None = None  # a map entry pinning a continuous ticker's month
    roll: Mapping[str, Any] | None = None  # the roll facts (worker/contracts/roll.py ``Pick.to_json``)
    held_month: Mapping[str, Any] | None = None  # worker/contracts/held_month.py ``HeldMonth.to_json``

    def to_json(self) -> dict[str, Any]:
        doc = {key: value for key, value in self.__dict__.items() if value is not None}
        for key in ("roll", "held_month"):
            if key in doc:
                doc[key] = dict(doc[key])
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ContractMap:
        return cls(**{name: doc.get(name) for name in cls.__dataclass_fields__})


def contract_map_of(
    payload: AlertPayload,
    spec: ContractSpec | None,
    inst: Instrument,
    roll: Pick | None,
    held: HeldMonth | None = None,
) -> ContractMap | None:
    """What the map and the roll did (None: nothing to say, a ticker the built-in rules resolved to
    a non-continuous contract)."""
    if spec is None:
        return None
    mapped = spec.quantity_multiplier != 1 or bool(
        spec.con_id or spec.trading_class or spec.local_symbol or spec.multiplier or spec.pinned_continuous
    )
    if not mapped and roll is None and held is None:
        return None
    return ContractMap(
        ticker=payload.ticker,
        traded=inst.local_symbol or inst.symbol,
        traded_symbol=inst.symbol,
        con_id=inst.con_id,
        quantity_multiplier=format(spec.quantity_multiplier.normalize(), "f"),
        quantity_rule=_quantity_rule(payload, spec.quantity_multiplier),
        pinned=(spec.contract_month or f"conId {spec.con_id}") if spec.pinned_continuous else None,
        roll=roll.to_json() if roll is not None else None,
        held_month=held.to_json() if held is not None else None,
    )


def _quantity_rule(payload: AlertPayload, factor: Decimal) -> str:
    text = format(factor.normalize(), "f")
    if factor == 1:
        return "as the alert says"
    if payload.quantity_type in CHART_COUNT_TYPES:
        return f"alert contracts × {text} (symbol map quantity_multiplier)"
    return (f"{payload.quantity_type} is computed on the traded contract: not multiplied "
            f"(positionSize would be × {text})")  # fmt: skip


def decided_spec(spec: ContractSpec, con_id: int | None) -> ContractSpec:
    """A future's spec pinned to the conId its stored decision was made on (``con_id``: the
    decision's contract; a continuous ticker may resolve to another month by the time the job acts
    or runs again); other specs as they are."""
    if spec.sec_type != "FUT":
        return spec
    if not isinstance(con_id, int) or con_id <= 0:
        return spec
    return replace(spec, con_id=con_id, front_index=0, contract_month="", pinned_continuous=False)
