"""The decision as ``Alert.plan`` stores it: one typed value, one JSON pair.

Written before any order goes out (a rerun never decides again, it resumes toward the stored
target) and read back by the job (worker/execution/executor.py, worker/execution/protocol.py) and
the recorder (worker/recording/alert_state.py). The API (``GET /api/alerts/<id>``), the dashboard and
the CLI show the JSON as it is, so its shape is the contract: :meth:`StoredDecision.to_json` writes
exactly what earlier versions wrote, and ``from_json(doc).to_json() == doc`` for every plan the
worker stores (tests/worker/test_decision_stored.py, over plans recorded from the end-to-end runs).

Five shapes, told apart by their content:

* a decision (``kind`` bracket / exit / position): the planner's keys (contract, legs, reference
  price, notes...), then what was decided with them (sizing, risk, market data, margin, the
  position move, the contract map);
* nothing to do (the position move's kind is ``none``): the contract, the reason, the sizing and
  what an exit cancelled;
* a risk refusal of an opening (``refused_legs``): what would have been sent, and the verdict;
* a margin refusal of an opening (``kind`` refused): the what-if figures and the legs;
* a ``cancel`` alert: what it cancelled (or that a dry run cancelled nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from worker.contracts.effects import ContractMap
from worker.decision.margin import MarginCheck
from worker.decision.model import Instrument, Leg, present
from worker.decision.positions import Decision
from worker.decision.quote import Quote
from worker.decision.sizing import Sizing
from worker.recording.protection import ProtectionSpec
from worker.risk.verdict import Verdict

Json = dict[str, Any]


def _qty(value: Decimal) -> str:
    return format(value.normalize(), "f")


@dataclass(frozen=True)
class PositionMove:
    """``plan["position"]``: where the position goes, in which parts, and its protection.

    A rerun resumes toward ``target`` from the position IB reports then, each part capped by the
    stored one (worker/execution/protocol.py)."""

    before: Decimal  # IB's signed position when decided
    target: Decimal  # the signed position wanted after the trade
    kind: str  # open, add, reduce, close, reverse; none: nothing to do
    close_qty: Decimal
    open_qty: Decimal
    reason: str
    protection_before: ProtectionSpec | None = None  # to put back if the order that changes it fails
    protection_after: ProtectionSpec | None = None  # what the guard keeps once the trade is done
    refused_open: str | None = None  # the opening part was refused: the alert ends rejected with it
    outcome: str | None = None  # the close did not fill: why nothing opened

    @classmethod
    def of(cls, decision: Decision, before: ProtectionSpec | None = None,
           after: ProtectionSpec | None = None, refused_open: str | None = None) -> PositionMove:  # fmt: skip
        return cls(decision.position, decision.target, decision.kind, decision.close_qty, decision.open_qty,
                   decision.reason, before, after, refused_open)  # fmt: skip

    @property
    def reversal(self) -> bool:
        """A close with an opening part after it (or one the rules refused): it waits for its fill."""
        return self.open_qty > 0 or bool(self.refused_open)

    def to_json(self) -> Json:
        doc: Json = {"before": _qty(self.before), "target": _qty(self.target), "kind": self.kind,
                     "close_qty": _qty(self.close_qty), "open_qty": _qty(self.open_qty), "reason": self.reason}  # fmt: skip
        if self.kind == "none":
            return doc
        doc["protection_before"] = _spec_json(self.protection_before)
        doc["protection_after"] = _spec_json(self.protection_after)
        return doc | present(refused_open=self.refused_open, outcome=self.outcome)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PositionMove:
        return cls(
            Decimal(str(doc["before"])), Decimal(str(doc["target"])), str(doc["kind"]),
            Decimal(str(doc.get("close_qty") or 0)), Decimal(str(doc.get("open_qty") or 0)),
            str(doc.get("reason") or ""), _spec(doc.get("protection_before")), _spec(doc.get("protection_after")),
            doc.get("refused_open"), doc.get("outcome"),
        )  # fmt: skip


@dataclass(frozen=True)
class StoredDecision:
    """Everything one alert's job decided (see the module docstring for its shapes)."""

    kind: str  # bracket, exit, position; refused (margin); cancel
    contract: Instrument | None = None
    legs: tuple[Leg, ...] = ()
    reference_price: Decimal | None = None
    reference_source: str | None = None
    cancel_first: bool = False
    oca_type: int | None = None
    notes: tuple[str, ...] = ()
    refused_legs: tuple[Leg, ...] | None = None  # a risk refusal: what would have been sent
    sizing: Sizing | None = None
    risk: Verdict | None = None
    market_data: Quote | None = None
    margin: MarginCheck | None = None
    position: PositionMove | None = None
    contract_map: ContractMap | None = None
    cancelled: tuple[str, ...] | None = None  # orderRefs a cancel (or an exit while flat) cancelled
    dry_run: bool = False  # a cancel in dry run (nothing cancelled)
    option: Json | None = (
        None  # an option alert: the contract chosen and why (worker/decision/option_target.py)
    )

    # ------------------------------------------------------------------ what the job reads

    @property
    def decided(self) -> PositionMove | None:
        """The position move the job acts on (None: nothing to act on, or an older plan)."""
        move = self.position
        return move if move is not None and move.kind != "none" else None

    @property
    def close_leg(self) -> Leg | None:
        return next((leg for leg in self.legs if leg.leg in ("close", "exit")), None)

    @property
    def open_legs(self) -> list[Leg]:
        close = self.close_leg
        return [leg for leg in self.legs if leg is not close]

    @property
    def con_id(self) -> int | None:
        return self.contract.con_id if self.contract is not None else None

    def with_position(self, **changes: Any) -> StoredDecision:
        """The same decision with its position move changed (a close that failed: its outcome)."""
        assert self.position is not None
        return replace(self, position=replace(self.position, **changes))

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> Json:
        if self.kind == "cancel":
            return {"kind": "cancel", **({"dry_run": True} if self.dry_run else {}),
                    **({"cancelled": list(self.cancelled)} if self.cancelled is not None else {})}  # fmt: skip
        if self.kind == "refused":  # the margin check refused an opening
            return {"kind": "refused", "margin": _part(self.margin), "legs": _legs(self.legs)}
        contract = None if self.contract is None else self.contract.to_json()
        if self.position is not None and self.position.kind == "none":  # nothing to do
            return present(kind=self.kind, contract=contract, legs=_legs(self.legs), notes=list(self.notes),
                            position=self.position.to_json(), sizing=_part(self.sizing), option=self.option,
                            cancelled=None if self.cancelled is None else list(self.cancelled))  # fmt: skip
        doc: Json = {
            "kind": self.kind,
            "contract": contract,
            "legs": _legs(self.legs),
            "reference_price": None if self.reference_price is None else str(self.reference_price),
            "reference_source": self.reference_source,
            "cancel_first": self.cancel_first,
            "oca_type": self.oca_type,
            "notes": list(self.notes),
        }
        return doc | present(
            refused_legs=None if self.refused_legs is None else _legs(self.refused_legs),
            sizing=_part(self.sizing), risk=_part(self.risk), market_data=_part(self.market_data),
            margin=_part(self.margin), position=_part(self.position), contract_map=_part(self.contract_map),
            option=self.option,
        )  # fmt: skip

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StoredDecision:
        """The decision as :meth:`to_json` (or an earlier version) stored it."""
        contract, price = doc.get("contract"), doc.get("reference_price")
        refused_legs, cancelled = doc.get("refused_legs"), doc.get("cancelled")
        return cls(
            kind=str(doc.get("kind") or ""),
            contract=Instrument.from_json(contract) if contract else None,
            legs=tuple(Leg.from_json(leg) for leg in doc.get("legs") or ()),
            reference_price=None if price is None else Decimal(str(price)),
            reference_source=doc.get("reference_source"),
            cancel_first=bool(doc.get("cancel_first")),
            oca_type=doc.get("oca_type"),
            notes=tuple(doc.get("notes") or ()),
            refused_legs=None if refused_legs is None else tuple(Leg.from_json(leg) for leg in refused_legs),
            sizing=_load(Sizing, doc.get("sizing")),
            risk=_load(Verdict, doc.get("risk")),
            market_data=_load(Quote, doc.get("market_data")),
            margin=_load(MarginCheck, doc.get("margin")),
            position=_load(PositionMove, doc.get("position")),
            contract_map=_load(ContractMap, doc.get("contract_map")),
            cancelled=None if cancelled is None else tuple(cancelled),
            dry_run=bool(doc.get("dry_run")),
            option=doc.get("option"),
        )


def position_move_of(plan: Mapping[str, Any] | None) -> PositionMove | None:
    """The position move of a stored plan, if it has one (the recorder follows closing legs by it)."""
    position = (plan or {}).get("position")
    return PositionMove.from_json(position) if isinstance(position, Mapping) else None


def _legs(legs: tuple[Leg, ...]) -> list[Json]:
    return [leg.to_json() for leg in legs]


def _part(value: Any) -> Json | None:
    return None if value is None else value.to_json()


def _load(kind: Any, doc: Any) -> Any:
    return None if doc is None else kind.from_json(doc)


def _spec_json(spec: ProtectionSpec | None) -> Json | None:
    return None if spec is None else spec.to_json()


def _spec(doc: Any) -> ProtectionSpec | None:
    return ProtectionSpec.from_json(doc) if doc else None
