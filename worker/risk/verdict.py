"""The risk gate's judgement of one decision (pure): its inputs, gathered before, in, its verdict out.

What the rules compare beyond the decision is gathered by the look (worker/execution/gather.py):
IB's views that ib_async keeps current (portfolio, working orders, account values: no round trip,
:class:`AccountView`), the database's counters (today's realized PnL, the last minute's opening
orders, the halt row: :class:`RiskCounters`, read from memory: worker/risk/tally.py) when a rule
in force reads them (:func:`reads_counters`) and, when a rule needs a price the alert and the look
did not give, one more quote. What the look did not gather and an opening part needs is named by
:func:`missing_inputs`: the job gathers it and decides again.

The protections' locks (worker/risk/protections.py) are computed here too, from the fills the
counters hold, and checked after the daily loss.

Only the OPENING part is checked (an entry, an add, a reversal's second half). A decision with
only a closing part (an exit, a reduce, a close) is never refused by a limit. The verdict is
stored in the plan: ``plan["risk"] = {"rules": ..., "checks": [{rule, limit, value, passed,
source}], ...}`` so ``GET /api/alerts/<id>`` shows what was compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.ids import exit_leg_parts
from core.risk_rules import RiskRules
from worker.decision.model import Instrument, Leg
from worker.decision.positions import Decision
from worker.decision.quote import Quote
from worker.risk import state
from worker.risk.calendar import next_trading_day, session_at
from worker.risk.checks import Check, DailyPnl, OpeningOrder, RiskContext, evaluate, first_failure, names_of
from worker.risk.checks import price as fmt_price
from worker.risk.checks import qty as fmt_qty
from worker.risk.protections import ORDER, locks_at, protection_checks
from worker.risk.session_end import closing_at
from worker.risk.state import RiskCounters, strategy_key

QUOTE = "quote"  # one more market-data snapshot (a rule needs a price the look did not give)
COUNTERS = "counters"  # the risk counters (daily loss, orders per minute; in memory: worker/risk/tally.py)


@dataclass(frozen=True)
class AccountView:
    """What the rules read from IB's views that ib_async keeps current (no round trip)."""

    other_exposure: Decimal | None = None  # |market value| of the account's OTHER positions
    working: int = 0  # the account's working orders at IB
    working_tv2ib: int = 0  # ... of which tv2ib's
    unrealized: Decimal | None = None  # IB's UnrealizedPnL
    currency: str = ""  # the account's base currency


@dataclass(frozen=True)
class RiskInputs:
    """Everything the risk rules compare beyond the decision itself."""

    rules: RiskRules
    account: str
    now: datetime
    view: AccountView = AccountView()
    counters: RiskCounters | None = None  # None: not read (no rule needed them yet)
    quote: Quote | None = None  # the extra quote (None: not asked)
    primary_exchange: str = ""  # the contract's primary exchange (its calendar)


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one decision (``plan["risk"]``)."""

    rules: Mapping[str, Any]  # the rules in force as the plan shows them (RiskRules.to_json)
    checks: tuple[Check, ...] = ()
    refusal: str | None = None  # the first failed check's sentence
    notes: tuple[str, ...] = ()
    # not stored: today's loss reached the account's own limit and no halt is recorded yet (the
    # job halts the account, alarms and maybe flattens before it goes on)
    halt_due: DailyPnl | None = field(default=None, compare=False)

    @property
    def dry_run(self) -> bool:
        return bool(self.rules.get("dry_run"))

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"rules": dict(self.rules), "checks": [c.to_json() for c in self.checks]}
        if self.refusal:
            doc["refused"] = self.refusal
        if self.notes:
            doc["notes"] = list(self.notes)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Verdict:
        checks = tuple(Check.from_json(c) for c in doc.get("checks") or ())
        return cls(dict(doc.get("rules") or {}), checks, doc.get("refused"), tuple(doc.get("notes") or ()))


@dataclass(frozen=True)
class RiskCase:
    """One decision as the rules see it, with what the look knew."""

    inputs: RiskInputs
    ticker: str
    alert_price: Decimal | None
    inst: Instrument
    decision: Decision
    open_legs: Sequence[Leg]
    reference_price: Decimal | None  # the planner's
    market: Decimal | None  # the look's price for the contract
    market_source: str
    ignore_trading_windows: bool = False  # the alert's ignoreTradingWindows

    @property
    def opens(self) -> bool:
        return self.decision.open_qty > 0 and bool(self.open_legs)

    @property
    def rules(self) -> RiskRules:
        return self.inputs.rules


def missing_inputs(case: RiskCase) -> frozenset[str]:
    """What the rules in force need that the look did not gather (:data:`QUOTE`, :data:`COUNTERS`);
    empty for a decision without an opening part."""
    if not case.opens:
        return frozenset()
    missing = set()
    if _wants_quote(case) and case.market is None and case.inputs.quote is None:
        missing.add(QUOTE)
    if reads_counters(case.rules) and case.inputs.counters is None:
        missing.add(COUNTERS)
    return frozenset(missing)


def reads_counters(rules: RiskRules) -> bool:
    """Whether a rule in force compares the counters (today's PnL and halt, the last minute's
    orders, the protections' fills)."""
    return rules.daily_loss_limit is not None or rules.max_orders_per_minute is not None or protects(rules)


def protects(rules: RiskRules) -> bool:
    """Whether a protection is in force (worker/risk/protections.py)."""
    return any(getattr(rules, key) for key in ORDER)  # a cooldown of 0 is none


def judge_risk(case: RiskCase) -> Verdict:
    """The verdict for a decision: its opening part checked against every rule (no opening part:
    nothing is checked, only the rules in force and ``dry_run`` are reported)."""
    rules = case.rules
    notes = tuple(rules.notes)  # an unknown strategy is said in the plan
    if not case.opens:
        if case.decision.close_qty > 0:
            notes += ("closing only: no limit applies to a close, an exit or a flatten",)
        return Verdict(rules.to_json(), notes=notes)
    ctx = _context(case)
    checks = tuple(_with_protections(case, ctx, evaluate(rules, ctx)))
    failed = first_failure(list(checks))
    return Verdict(rules.to_json(), checks, failed.message if failed is not None else None, notes,
                   halt_due=_halt_due(rules, ctx.daily, case.inputs.counters))  # fmt: skip


_BEFORE_PROTECTIONS = ("deny", "allow", "trading_hours", "daily_loss_limit")


def _with_protections(case: RiskCase, ctx: RiskContext, checks: list[Check]) -> list[Check]:
    """The protections' checks (worker/risk/protections.py) after the daily loss's: the locks of the
    alert's strategy on the account, from the fills the counters hold, at the look's instant."""
    rules = case.rules
    if not protects(rules):
        return checks
    counters = case.inputs.counters or RiskCounters()
    fills = counters.closed.get(strategy_key(rules.strategy), ())
    locks = locks_at(rules, rules.strategy or "", fills, case.inputs.now, currency=ctx.base_currency,
                     next_day=next_trading_day)  # fmt: skip
    at = max((i + 1 for i, c in enumerate(checks) if c.rule in _BEFORE_PROTECTIONS), default=0)
    return [*checks[:at], *protection_checks(rules, locks, names_of(ctx.order)), *checks[at:]]


#: the rules that may compare IB's quote (:func:`_wants_quote`): the look brings a quote for them
#: when one is at hand (worker/execution/gather.py)
QUOTE_RULES = (
    "max_price_deviation_percent",
    "max_order_notional",
    "max_position_notional",
    "max_gross_exposure",
)


def _wants_quote(case: RiskCase) -> bool:
    rules = case.rules
    needs_quote = rules.max_price_deviation_percent is not None and case.alert_price is not None
    price, _source = _order_price(case.open_legs[0], case.reference_price, case.market, case.market_source)
    notional = (rules.max_order_notional, rules.max_position_notional, rules.max_gross_exposure)
    needs_price = price is None and any(v is not None for v in notional)
    return needs_quote or needs_price


def _reads_view(case: RiskCase) -> bool:
    """Whether the gate reads IB's views for this decision (it always did when it asked IB)."""
    rules = case.rules
    counted = (rules.max_gross_exposure, rules.max_open_orders, rules.daily_loss_limit)
    return _wants_quote(case) or any(v is not None for v in counted)


def _context(case: RiskCase) -> RiskContext:
    rules, inputs, inst, decision = case.rules, case.inputs, case.inst, case.decision
    entry = case.open_legs[0]
    price, price_source = _order_price(entry, case.reference_price, case.market, case.market_source)
    view = inputs.view if _reads_view(case) else AccountView()
    quote, quote_source = _quote(case)
    if price is None and quote is not None:
        price, price_source = quote, quote_source
    counters = inputs.counters or RiskCounters()
    order = OpeningOrder(
        ticker=case.ticker, symbol=inst.symbol, local_symbol=inst.local_symbol, side=entry.action,
        quantity=decision.open_qty, price=price, price_source=price_source,
        multiplier=_multiplier(inst.multiplier), currency=inst.currency, legs=len(case.open_legs),
        position_before=decision.position, position_after=decision.target,
    )  # fmt: skip
    daily = None
    if rules.daily_loss_limit is not None:
        day = state.trading_day(inputs.now)
        daily = DailyPnl(
            counters.realized, view.unrealized, counters.halt is not None, state.describe_end(day)
        )
    session_now = None
    if rules.trading_hours != "always":
        session_now = session_at(inst.sec_type, inst.exchange, inputs.now, primary_exchange=inputs.primary_exchange,
                                 currency=inst.currency)  # fmt: skip
    closing = None  # flatten_before_close: no entry in the session's last minutes
    if rules.flatten_before_close:
        closing = closing_at(inst.sec_type, inst.exchange, inputs.now, primary_exchange=inputs.primary_exchange,
                             currency=inst.currency)  # fmt: skip
    return RiskContext(
        order=order, account=inputs.account, base_currency=view.currency or "USD",
        other_exposure=view.other_exposure, working_orders=view.working, working_tv2ib=view.working_tv2ib,
        orders_last_minute=counters.orders_last_minute, daily=daily, session=session_now,
        alert_price=case.alert_price, quote=quote, quote_source=quote_source,
        ignore_trading_windows=case.ignore_trading_windows, closing=closing,
    )  # fmt: skip


def _quote(case: RiskCase) -> tuple[Decimal | None, str]:
    """IB's quote for the contract: the look's, else the one asked for the rules."""
    if case.market is not None:
        return case.market, case.market_source
    asked = case.inputs.quote if _wants_quote(case) else None
    if asked is None or asked.price is None:
        return None, ""
    return asked.price, asked.source


def _halt_due(rules: RiskRules, daily: DailyPnl | None, counters: RiskCounters | None) -> DailyPnl | None:
    """Today's loss reached the account's own limit (defaults < account; a strategy's limit only
    refuses that strategy's entries) and no halt is recorded yet."""
    limit = rules.daily_loss_limit
    if daily is None or limit is None or (counters is not None and counters.halt is not None):
        return None
    account_level = not rules.source_of("daily_loss_limit").startswith("strategy ")
    return daily if account_level and -daily.total >= limit else None


def _order_price(entry: Leg, reference: Decimal | None, market: Decimal | None, source: str) -> tuple[Decimal | None, str]:  # fmt: skip
    """The price an opening order's notional is valued at: its limit, its stop, else the
    reference price the planner used (IB's quote or the alert's price)."""
    if entry.limit_price is not None:
        return entry.limit_price, "limit price"
    if entry.stop_price is not None:
        return entry.stop_price, "stop price"
    if reference is not None:
        return reference, "reference price"
    if market is not None:
        return market, source
    return None, ""


def _multiplier(raw: str | None) -> Decimal:
    try:
        value = Decimal(str(raw)) if raw not in (None, "") else Decimal(1)
    except ArithmeticError:
        return Decimal(1)
    return value if value > 0 else Decimal(1)


def describe_legs(legs: Sequence[Leg], label: str) -> str:
    """``BUY 52 AAPL MKT + TP 195.00 + SL 188.00`` (for dry runs)."""
    parts = []
    for leg in legs:
        if exit_leg_parts(leg.leg) is not None:  # tp / sl, a level's tp.1 / sl.1
            at = leg.limit_price if leg.leg.startswith("tp") else (leg.stop_price or leg.limit_price)
            parts.append(f"{leg.leg.upper()} {fmt_price(at)}" if at is not None else leg.leg.upper())
            continue
        text = f"{leg.action} {fmt_qty(leg.quantity)} {label} {leg.order_type}"
        if leg.limit_price is not None:
            text += f" {fmt_price(leg.limit_price)}"
        if leg.stop_price is not None:
            text += f" stop {fmt_price(leg.stop_price)}"
        if leg.leg in ("close", "exit"):
            text += f" ({leg.leg})"
        parts.append(text)
    return " + ".join(parts)
