"""The decision core (pure): the look + the alert + the static rules → a typed :class:`Proposal`.

No I/O, no ib_async, no database: everything IB and the database said is in the
:class:`~worker.decision.look.Look`, gathered before (worker/execution/gather.py). The order, as
the executor runs it (worker/execution/executor.py)::

    look → size → decide → plan the legs → risk rules → margin (asked of IB) → dry run | store → act

* **Sizing** (worker/decision/sizing.py) turns a dollar / risk / equity quantity, or the
  strategy's default, into the order quantity the position table reads.
* **The position table** (worker/decision/positions.py) gives the move: target, close part, open
  part. Nothing to do ends the alert ``cancelled`` with the reason.
* **The legs** (worker/decision/planner.py, closing.py, exits.py): the closing order, then the
  opening bracket (or an ``add``'s plain entry), and the protection the position has after.
* **The refused opening part.** A refusal of the opening part (its plan, a risk rule, IB's margin)
  refuses an entry or an add whole; a reversal keeps its close (an exit is never blocked) and ends
  ``rejected`` with the reason once the close is done.
* **Nothing sent** (:func:`rehearsal`): the alert's ``test: true`` or the risk file's ``dry_run``
  runs the whole decision (contract, sizing, position, risk, margin), records it and sends nothing;
  the reason says what would have been sent (``test: would send BUY 10 AAPL MKT + ...``), and a
  test alert's refusal says it was a test (:func:`rehearsal_reason`).
* **What must be asked.** When a risk rule needs what the look did not gather (another quote, the
  risk counters) the proposal says so (``missing``) and the job decides again with them.
  The margin check: the proposal names the what-if (``margin_ask``) and what a cached per-unit
  figure may approve instead (worker/decision/margin_book.py); :func:`with_margin` settles it with
  the cached figure or the pure judgement of IB's answer (worker/decision/margin.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from core.payload import AlertPayload
from worker.contracts.effects import ContractMap, contract_map_of, scale_intent
from worker.contracts.held_month import keep_to_held_month
from worker.decision.closing import plan_close
from worker.decision.evolve import evolve
from worker.decision.exits import kept_terms, protection_levels, protection_orders, protection_prices
from worker.decision.intent import close_without_reference, intent_of
from worker.decision.look import Look
from worker.decision.margin import (
    MarginAsk,
    MarginCheck,
    MarginRefused,
    describe_order,
    margin_off,
    what_if_order,
)
from worker.decision.margin_book import margin_ask
from worker.decision.model import OCA_TYPE, Leg
from worker.decision.order_types import ExitOrder, OrderRules
from worker.decision.planner import plan_bracket
from worker.decision.positions import Decision, decide, is_exit
from worker.decision.sizing import Sizing, size_alert
from worker.decision.stored import PositionMove, StoredDecision
from worker.errors import Refused
from worker.recording.protection import ProtectionSpec
from worker.risk.verdict import RiskCase, Verdict, describe_legs, judge_risk, missing_inputs

TEST_REFUSED = "test: would be refused: "


def rehearsal(payload: AlertPayload, dry_run: bool) -> str | None:
    """Why nothing is sent for this alert: ``"test"`` (the alert's own ``test: true``, which wins)
    or ``"dry run"`` (the risk file's ``dry_run`` for its strategy / account); None: it trades."""
    if payload.test:
        return "test"
    return "dry run" if dry_run else None


def rehearsal_reason(payload: AlertPayload, reason: str) -> str:
    """The reason a test alert ends with: every one starts with ``test:`` (a refusal reads
    ``test: would be refused: risk: ...``); a real alert's reason as it is."""
    if not payload.test or reason.startswith("test:"):
        return reason
    return TEST_REFUSED + reason


class RiskRefused(Refused):
    """An opening order broke a limit; ``plan`` is the stored decision of the refusal."""

    def __init__(self, message: str, plan: StoredDecision | None = None) -> None:
        super().__init__(message)
        self.plan = plan


@dataclass(frozen=True)
class DecisionConfig:
    """The static rules a decision reads (from the settings, passed in at construction)."""

    order_rules: OrderRules = field(default_factory=OrderRules)  # EXTENDED_HOURS_STOP_LIMIT_TICKS
    max_order_quantity: Decimal | None = None  # MAX_ORDER_QUANTITY
    margin_check: bool | None = None  # MARGIN_CHECK: True asks IB, False records "off"; None: no check


@dataclass(frozen=True)
class Opening:
    """The opening part as planned: its legs, the protection after it, or why it was refused."""

    legs: tuple[Leg, ...] = ()
    after: ProtectionSpec | None = None
    reference_price: Decimal | None = None
    reference_source: str | None = None
    notes: tuple[str, ...] = ()
    refused: str | None = None


@dataclass(frozen=True)
class Proposal:
    """What the decision proposes for one alert (see the module docstring)."""

    look: Look
    payload: AlertPayload
    decision: Decision  # the move as decided (before any refusal of its opening part)
    sizing: Sizing | None = None
    plan_kind: str = "position"  # bracket (an open from flat), exit, position
    close_leg: Leg | None = None
    opening: Opening = Opening()
    notes: tuple[str, ...] = ()  # the planner's notes
    refused_open: str | None = None  # the opening part refused (a reversal still closes)
    risk: Verdict | None = None
    margin: MarginCheck | None = None
    margin_ask: MarginAsk | None = None  # the what-if IB must answer before the decision is final
    missing: frozenset[str] = frozenset()  # risk inputs to gather, then decide again
    contract_map: ContractMap | None = None
    option: dict[str, Any] | None = None  # an option alert: the contract chosen and why (plan["option"])

    @property
    def nothing_to_do(self) -> bool:
        return self.decision.kind == "none"

    @property
    def rehearsal(self) -> str | None:
        """``"test"`` / ``"dry run"``: decided and recorded, nothing sent (:func:`rehearsal`)."""
        return rehearsal(self.payload, self.risk is not None and self.risk.dry_run)

    @property
    def dry_run(self) -> bool:
        """Nothing is sent: the alert's ``test`` or the risk file's ``dry_run``."""
        return self.rehearsal is not None

    @property
    def risk_refusal(self) -> str | None:
        """A risk rule refused an alert that only opens: the whole alert is refused."""
        refusal = self.risk.refusal if self.risk is not None else None
        return refusal if refusal and self.decision.close_qty == 0 else None

    def refused_record(self) -> StoredDecision:
        """What a risk refusal stores: what would have been sent, and the numbers compared."""
        return StoredDecision(self.plan_kind, self.look.inst, (), self.opening.reference_price,
                              self.opening.reference_source, notes=(self.decision.reason, *self.notes),
                              refused_legs=self.opening.legs, risk=self.risk, option=self.option)  # fmt: skip

    def final(self) -> tuple[Decision, tuple[Leg, ...], ProtectionSpec | None, tuple[str, ...]]:
        """The move, the opening legs, the protection after and the notes, once a refused opening
        part is dropped (close only)."""
        decision, legs, after, notes = self.decision, self.opening.legs, self.opening.after, self.notes
        if self.refused_open:
            notes += (f"opening part not sent: {self.refused_open}",)
            decision = Decision("close", decision.position, Decimal(0), f"{decision.reason}; close only: "
                                "the opening part was refused")  # fmt: skip
            legs, after = (), None
        return decision, legs, after, notes

    def stored(self) -> StoredDecision:
        """The decision as ``Alert.plan`` stores it before any order goes out."""
        look = self.look
        if self.nothing_to_do:
            return StoredDecision("exit" if is_exit(self.payload) else "position", look.inst,
                                  notes=(self.decision.reason,), sizing=self.sizing,
                                  position=PositionMove.of(self.decision), option=self.option)  # fmt: skip
        decision, open_legs, after, notes = self.final()
        notes = (*((self.sizing.text,) if self.sizing else ()), decision.reason, *notes)
        legs = ((self.close_leg,) if self.close_leg else ()) + open_legs
        return StoredDecision(
            self.plan_kind, look.inst, legs, self.opening.reference_price, self.opening.reference_source,
            oca_type=OCA_TYPE if len(open_legs) > 1 else None, notes=notes, sizing=self.sizing,
            risk=self.risk, market_data=look.quote, margin=self.margin,
            position=PositionMove.of(decision, look.protection, after, self.refused_open),
            contract_map=self.contract_map, option=self.option,
        )  # fmt: skip

    def dry_run_message(self) -> str:
        """``dry run: would send BUY 52 AAPL MKT + TP 195.00 + SL 188.00`` (``test:`` for a test alert)."""
        stored = self.stored()
        label = self.rehearsal or "dry run"
        message = f"{label}: would send " + (describe_legs(stored.legs, self.look.symbol) or "nothing")
        if self.refused_open:
            message += f"; opening part refused: {self.refused_open}"
        return message


def propose(look: Look, payload: AlertPayload, config: DecisionConfig) -> Proposal:
    """The decision for ``payload`` against ``look`` (see the module docstring). Raises
    :class:`~worker.errors.Refused` when the alert cannot be traded at all (the position table,
    sizing, the plan of an opening, an opening beside a held old month)."""
    inst = look.inst
    default = look.risk.rules.default_sizing if look.risk is not None else None
    sizing = size_alert(payload, inst, position=look.position, market_price=look.market, figures=look.figures,
                        default=None if default is None else (default.quantity_type, default.quantity),
                        market_source=look.source)  # fmt: skip
    intent = intent_of(payload, sizing)
    if sizing is None:  # contracts: the alert's own contracts × the map's quantity_multiplier
        intent = scale_intent(intent, payload, look.spec)  # (a sized quantity is already in traded units)
    decision = keep_to_held_month(decide(look.position, intent, inst.size_increment), look.held)
    if decision.kind == "cancel":  # not reached: alert_kind routes cancel alerts  # pragma: no cover
        raise Refused("cancel is not a position change")
    if decision.kind == "none":
        return Proposal(look, payload, decision, sizing)
    # a data problem never blocks a close (worker/decision/intent.py): without IB's price for
    # relative exits a reversal only closes, a reduce keeps its exits' prices
    unpriced = False
    if decision.open_qty == 0:
        decision, unpriced = close_without_reference(decision, payload, look.market, look.source)
    notes: list[str] = []
    close_leg = None
    if decision.close_qty > 0:
        close_leg = plan_close(inst, decision.close_side or "", decision.close_qty, payload,
                               leg="exit" if is_exit(payload) else "close", reference=look.market,
                               rules=config.order_rules, notes=notes, reversal=decision.open_qty > 0)  # fmt: skip
    opening = _opening(look, payload, decision, config, unpriced)
    proposal = Proposal(
        look, payload, decision, sizing,
        plan_kind="bracket" if decision.kind == "open" else "exit" if is_exit(payload) else "position",
        close_leg=close_leg, opening=opening, notes=(*notes, *opening.notes), refused_open=opening.refused,
        contract_map=contract_map_of(payload, look.spec, inst, look.roll, look.held),
    )  # fmt: skip
    return _judged(proposal, config)


def with_margin(proposal: Proposal, check: MarginCheck) -> Proposal:
    """The proposal with IB's margin judged (:func:`worker.decision.margin.judge`). Refused: an
    opening raises :class:`MarginRefused`; a reversal keeps its close and opens nothing."""
    if check.refused and proposal.decision.close_qty <= 0:
        raise MarginRefused(
            check.refused, StoredDecision("refused", legs=proposal.opening.legs, margin=check)
        )
    return evolve(proposal, margin=check, margin_ask=None, refused_open=check.refused or None)


def _judged(proposal: Proposal, config: DecisionConfig) -> Proposal:
    """The risk rules' verdict on the opening part, then what the margin check needs."""
    look, decision = proposal.look, proposal.decision
    refused_open = proposal.refused_open
    verdict = None
    if look.risk is not None:  # a close or an exit is never refused by a limit
        payload = proposal.payload
        case = RiskCase(look.risk, payload.ticker, payload.price, look.inst, decision, proposal.opening.legs,
                        proposal.opening.reference_price, look.market, look.source, payload.ignore_trading_windows)  # fmt: skip
        missing = missing_inputs(case)
        if missing:
            return evolve(proposal, missing=missing)
        verdict = judge_risk(case)
        if verdict.refusal and decision.close_qty == 0:
            return evolve(proposal, risk=verdict)  # the job halts if due, then raises (risk_refusal)
        refused_open = refused_open or verdict.refusal or None
    margin, ask = None, None
    order = what_if_order(decision, list(proposal.opening.legs))
    if config.margin_check is not None and not refused_open and order is not None:
        described = describe_order(order, look.symbol)
        margin, ask = (
            (None, margin_ask(look.inst.sec_type, decision, order, look.symbol))  # a cached figure, else IB
            if config.margin_check
            else (margin_off(described), None)
        )
    return evolve(proposal, risk=verdict, refused_open=refused_open, margin=margin, margin_ask=ask)


def _opening(look: Look, payload: AlertPayload, decision: Decision, config: DecisionConfig,
             unpriced: bool) -> Opening:  # fmt: skip
    """The opening part's legs and the protection the position has after the move."""
    if decision.open_qty > 0:
        try:
            opened = plan_bracket(payload, look.inst, look.market, look.source, max_quantity=config.max_order_quantity,
                                  side=decision.open_side, quantity=decision.open_qty, rules=config.order_rules)  # fmt: skip
        except Refused as exc:
            if decision.close_qty == 0:
                raise
            return Opening(refused=str(exc))
        new_prices = protection_prices(opened.legs)
        reference = (opened.reference_price, opened.reference_source)
        if (
            decision.kind == "add"
        ):  # a plain entry: the exits grow to the whole position after it fills (guard)
            after = _after(look, decision, {**_prices(look.protection), **new_prices},
                           _merge_orders(look.protection, protection_orders(opened.legs), new_prices))  # fmt: skip
            notes = ("the position's exits are re-priced by this alert",) if new_prices else ()
            return Opening(
                (evolve(opened.legs[0], transmit=True),), after, *reference, (*opened.notes, *notes)
            )
        # from flat, or the opening part of a reversal: a bracket, as always (its break-even rule new)
        after = _after(look, decision, new_prices, kept_terms(protection_orders(opened.legs), new_prices))
        moves = payload.stop_loss.break_even if payload.stop_loss is not None and "sl" in new_prices else None
        levels = protection_levels(opened.legs)
        after = replace(after, break_even=moves, break_even_done=False, levels=levels,
                        levels_alert=look.alert_id if levels else "")  # fmt: skip
        return Opening(tuple(opened.legs), after, *reference, tuple(opened.notes))
    if decision.target == 0:  # a close: nothing to protect after it
        return Opening()
    # a reduce: same side, the exits shrink; re-priced when the alert says so
    prices = _prices(look.protection)
    orders = dict(look.protection.orders) if look.protection is not None else {}
    if (payload.take_profit or payload.stop_loss) and not unpriced:
        side = "BUY" if decision.target > 0 else "SELL"
        priced = plan_bracket(payload, look.inst, look.market, look.source, side=side, quantity=abs(decision.target),
                              rules=config.order_rules, exits_only=True)  # fmt: skip
        new_prices = protection_prices(priced.legs)
        prices.update(new_prices)
        orders = _merge_orders(look.protection, protection_orders(priced.legs), new_prices)
        return Opening(after=_after(look, decision, prices, orders),
                       notes=("the position's exits are re-priced by this alert",))  # fmt: skip
    return Opening(after=_after(look, decision, prices, orders))


def _after(
    look: Look, decision: Decision, prices: dict[str, Decimal], orders: dict[str, ExitOrder]
) -> ProtectionSpec:
    """The protection spec of the position after the move (worker/recording/protection.py)."""
    kept = {role: price for role, price in prices.items() if role in ("tp", "sl")}
    side = 1 if decision.target > 0 else -1
    before = look.protection if look.protection is not None and look.protection.side == side else None
    return ProtectionSpec(look.account, look.inst.con_id, look.alert_id, side, kept, look.symbol,
                          {role: terms for role, terms in orders.items() if role in kept},
                          before.break_even if before else None, before.break_even_done if before else False,
                          before.levels if before else {}, before.levels_alert if before else "")  # fmt: skip


def _prices(spec: ProtectionSpec | None) -> dict[str, Decimal]:
    return dict(spec.prices) if spec is not None else {}


def _merge_orders(before: ProtectionSpec | None, new: dict[str, ExitOrder],
                  roles: dict[str, Decimal]) -> dict[str, ExitOrder]:  # fmt: skip
    """The position's exit terms after an alert re-prices ``roles``: theirs replace the old ones."""
    kept = {
        role: terms
        for role, terms in (before.orders if before is not None else {}).items()
        if role not in roles
    }
    return {**kept, **kept_terms(new, roles)}
