"""IB's own margin figure before an opening order: what to ask, and the judgement on the answer (pure).

Before the opening part of a decision goes out (an open from flat, an ``add``, a reversal's new
side; never a close or an exit), the same contract, side, quantity and order type is sent to IB as
a what-if order (``whatIf=True``: IB computes, places nothing; the round trip is
worker/execution/what_if.py, the IB side ``Trading.what_if``). IB answers with the account's margin
before / change / after. The rule:

    IB's ``initMarginChange`` must not exceed the account's ``AvailableFunds``

(AvailableFunds from ib_async's live account subscription; when IB has not reported it, the
what-if's own ``equityWithLoanBefore - initMarginBefore``, and the plan says which). Refused:
``margin: needs 4,750,000 USD initial, available 998,000 USD (...)`` and nothing reaches IB. The
figures go into ``plan["margin"]`` either way.

Decisions where the issue is silent:

* **A reversal** (long 10 → short 10): IB's what-if is relative to the account as it is now, so a
  what-if of the short 10 alone would be netted against the long 10 (change 0). The what-if
  carries the whole move instead (close + open quantity on the opening side), which is the change
  from the position now to the target. A refused reversal keeps its close and opens nothing
  ("close, then no open"): exits are never blocked by margin.
* **A what-if that times out or that IB refuses** (an error instead of figures): the entry is
  refused with the reason (for real money, not knowing the margin is not a yes).
  ``MARGIN_CHECK=off`` skips the check (the plan records ``{"check": "off"}``). A lost connection
  is not a refusal: the job waits for IB and decides again.

The what-if is one IB round trip; it counts against the order pacing like a placement. A warm
contract needs none: a per-unit figure learned from an earlier what-if (worker/decision/margin_book.py,
issue 18) may approve a plain stock or future opening; the plan says which figure decided
(``source``: ``what-if now``, or ``cached per-unit from what-if at <time>, age Ns``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.decision.evolve import evolve
from worker.decision.model import Leg, present
from worker.decision.numbers import money, qty
from worker.decision.positions import Decision
from worker.errors import Refused
from worker.recording.snapshots import AccountFigures

RULE = "IB what-if initMarginChange <= AvailableFunds"
OFF_RULE = "MARGIN_CHECK=off"


class MarginRefused(Refused):
    """The opening part needs more initial margin than the account has available."""

    def __init__(self, message: str, plan: Any) -> None:
        super().__init__(message)
        self.plan = plan  # the stored decision of the refusal (worker/decision/stored.py)


def describe_order(order: Leg, symbol: str) -> str:
    """``BUY 100,000 AAPL MKT`` / ``SELL 2 MESZ6 LMT 5000.25``."""
    price = order.limit_price if order.limit_price is not None else order.stop_price
    text = f"{order.action} {qty(order.quantity)} {symbol} {order.order_type}"
    return text if price is None else f"{text} {price}"


@dataclass(frozen=True)
class WhatIf:
    """IB's answer to a what-if order (None: IB left the figure unset)."""

    init_margin_change: Decimal | None
    maint_margin_change: Decimal | None = None
    init_margin_before: Decimal | None = None
    init_margin_after: Decimal | None = None
    equity_with_loan_before: Decimal | None = None
    equity_with_loan_after: Decimal | None = None
    commission: Decimal | None = None
    commission_currency: str = ""
    warning_text: str = ""  # IB's warningText (a broken answer often carries one)

    @property
    def unusable(self) -> bool:
        """IB warned and left a margin figure unset (or huge, or infinite: read as unset): broken."""
        figures = (
            self.init_margin_change,
            self.maint_margin_change,
            self.init_margin_before,
            self.init_margin_after,
        )
        return bool(self.warning_text.strip()) and any(value is None for value in figures)


@dataclass(frozen=True)
class MarginAsk:
    """What the margin check needs: IB's what-if of ``order`` (``described`` for the trader), unless
    a cached per-unit figure approves ``cached`` (the opening part; None: only IB can say, ``why``)."""

    order: Leg
    described: str
    cached: Leg | None = None
    why: str = ""
    symbol: str = ""  # the contract as the trader reads it (to describe ``cached``)

    @property
    def learnable(self) -> bool:
        """IB's answer to ``order`` is a plain opening's: its change per unit is a per-unit figure."""
        return self.cached is not None and self.cached.quantity == self.order.quantity


@dataclass(frozen=True)
class MarginFigures:
    """IB's what-if figures as the plan shows them (IB's digits; None: not given)."""

    currency: str
    init_margin_change: str | None
    maint_margin_change: str | None
    init_margin_before: str | None
    init_margin_after: str | None
    equity_with_loan_after: str | None
    commission: str | None
    available_funds: str | None
    available_from: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MarginFigures:
        return cls(**{name: doc.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PerUnitUse:
    """``plan["margin"]["per_unit"]``: the cached per-unit figure a decision used, and its sum."""

    initial: str  # initial margin per unit, as learned
    maintenance: str | None
    learned_from: str  # the what-if it was learned from, described ("BUY 1 AAPL MKT")
    learned_at: str  # when IB answered it (UTC, ISO 8601)
    age_seconds: str
    safety_factor: str  # MARGIN_SAFETY_FACTOR
    needs: str  # quantity x initial x safety factor
    reserved: str  # approved in the last moments, not yet in AvailableFunds

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PerUnitUse:
        return cls(**{name: doc.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class MarginCheck:
    """The outcome for one decision: ``plan["margin"]`` and, when refused, the reason."""

    rule: str
    order: str  # the what-if order, described
    verdict: str | None = None  # ok / refused (None: not checked, MARGIN_CHECK=off)
    reason: str | None = None  # the refusal's sentence
    check: str | None = None  # "off": MARGIN_CHECK=off
    figures: MarginFigures | None = None  # IB's figures (None: IB gave none)
    source: str | None = None  # "what-if now", or "cached per-unit from what-if at <time>, age Ns"
    why: str | None = None  # why IB was asked now (no cached figure, too old, not linear...)
    per_unit: PerUnitUse | None = None  # the cached figure used (source: cached)

    @property
    def refused(self) -> str:
        """The refusal's sentence, empty when the margin check let the order go."""
        return (self.reason or "") if self.verdict == "refused" else ""

    @property
    def doc(self) -> dict[str, Any]:
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        figures = self.figures.to_json() if self.figures is not None else {}
        per_unit = None if self.per_unit is None else self.per_unit.to_json()
        return (
            present(check=self.check, rule=self.rule, order=self.order)
            | figures
            | present(source=self.source, why=self.why, per_unit=per_unit)
            | present(verdict=self.verdict, reason=self.reason)
        )

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MarginCheck:
        figures = MarginFigures.from_json(doc) if "available_from" in doc else None
        per_unit = PerUnitUse.from_json(doc["per_unit"]) if doc.get("per_unit") else None
        return cls(str(doc.get("rule") or ""), str(doc.get("order") or ""), doc.get("verdict"), doc.get("reason"),
                   doc.get("check"), figures, doc.get("source"), doc.get("why"), per_unit)  # fmt: skip


def margin_off(described: str) -> MarginCheck:
    """``MARGIN_CHECK=off``: nothing is asked, the plan says so."""
    return MarginCheck(OFF_RULE, described, check="off")


def what_if_failed(described: str, why: str) -> MarginCheck:
    """IB gave no figures (an error, or no answer in time): refused, for real money."""
    reason = f"margin: IB's what-if for {described} failed ({why}); nothing sent (MARGIN_CHECK=off skips the check)"
    return MarginCheck(RULE, described, "refused", reason)


def what_if_order(decision: Decision, open_legs: list[Leg]) -> Leg | None:
    """Pure: the order to ask IB about, None when the decision opens nothing (a close, an exit).

    The entry leg itself (side, type, prices, trail, time in force), with the quantity of the
    opening part, or for a reversal the whole move (close + open), since IB's what-if nets against
    today's position."""
    entry = next((leg for leg in open_legs if leg.leg == "entry"), open_legs[0] if open_legs else None)
    if entry is None or decision.open_qty <= 0:
        return None
    reversal = decision.position != 0 and decision.position * decision.target < 0
    quantity = decision.open_qty + (decision.close_qty if reversal else Decimal(0))
    return evolve(entry, quantity=quantity, transmit=True, parent_leg=None)


def judge(answer: WhatIf, figures: AccountFigures, described: str) -> MarginCheck:
    """Pure: IB's figures against the account's AvailableFunds → the plan's document and verdict."""
    currency = figures.currency or answer.commission_currency or "USD"
    available, available_from = figures.available_funds, "AvailableFunds"
    if (
        available is None
        and answer.equity_with_loan_before is not None
        and answer.init_margin_before is not None
    ):
        available = answer.equity_with_loan_before - answer.init_margin_before
        available_from = "IB what-if equityWithLoanBefore - initMarginBefore (AvailableFunds not reported)"
    shown = MarginFigures(
        currency, _text(answer.init_margin_change), _text(answer.maint_margin_change),
        _text(answer.init_margin_before), _text(answer.init_margin_after), _text(answer.equity_with_loan_after),
        _text(answer.commission), _text(available), available_from,
    )  # fmt: skip
    change = answer.init_margin_change
    if answer.unusable:  # IB warned and left figures unset: never read as "enough margin"
        reason = (f"margin: IB's what-if for {described} gave unusable figures "
                  f"(IB warns: {' '.join(answer.warning_text.split())}); nothing sent")  # fmt: skip
    elif change is None:
        reason = f"margin: IB's what-if for {described} gave no initMarginChange; nothing sent"
    elif available is None:
        reason = "margin: the account's AvailableFunds is unknown (IB has not reported it); nothing sent"
    elif change > available:
        reason = (f"margin: needs {money(change)} {currency} initial, available {money(available)} {currency} "
                  f"(IB what-if initMarginChange for {described} against {available_from.split(' (')[0]})")  # fmt: skip
    else:
        return MarginCheck(RULE, described, "ok", figures=shown)
    return MarginCheck(RULE, described, "refused", reason, figures=shown)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
