"""Margin without a round trip (pure): per-unit figures learned from IB's what-if answers, and
when such a figure may approve an opening instead of asking IB again (issue 18).

A what-if of a plain opening (``BUY 10 AAPL``, flat or already long) tells IB's initial and
maintenance margin change for that many units; divided by the quantity it is a **per-unit
figure** for the account, the contract and the side (worker/execution/margin_cache.py keeps
them, worker/execution/margin_refresh.py refreshes them in the background). The hot path:

    quantity x per-unit initial margin x MARGIN_SAFETY_FACTOR  (+ what was approved moments ago)
        <=  AvailableFunds  (the account stream, no round trip)

**A cached figure only ever approves.** When it does not cover the order, or cannot be used
(:func:`from_cache` says why), IB's what-if decides as before, with today's refusal wording
("margin: needs X, available Y"): a figure that is a little old or inflated by the safety factor
never refuses an order IB would take.

**Where margin is not linear in quantity** (:func:`cache_rule`, the table in
docs/market-data-and-margin.md):

=================================  ===========================================================
opening                            margin check
=================================  ===========================================================
stock / future, from flat          cached figure when fresh, else IB's what-if
stock with a price (LMT, STP ...)  IB's what-if (a stock's margin follows the order's price; a
                                   figure is learned from market orders only)
stock / future, an ``add``         cached figure (the added units alone) when fresh, else what-if
stock / future, a reversal         cached figure of the NEW side for the opening part alone,
                                   without the margin the close frees (stricter than IB's netted
                                   what-if); not covered: IB's what-if of the whole move
option, future option              IB's what-if (a short option's margin depends on the strike,
                                   the price and the rest of the account)
combination (BAG)                  IB's what-if (IB nets the legs)
anything else (forex, crypto ...)  IB's what-if (the default)
=================================  ===========================================================

A figure is learned only from a what-if of a plain opening of a stock (at market) or a future,
and only from a whole answer: IB's ``warningText``, an unset / huge / infinite field (1.7976931348623157E308 is
IB's "unset", read as None at the IB boundary), a change that is not positive, or an absurd
per-unit value teach nothing (:func:`learned`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

from worker.decision.margin import MarginAsk, MarginCheck, MarginFigures, PerUnitUse, WhatIf, describe_order
from worker.decision.model import Leg
from worker.decision.numbers import money, qty
from worker.decision.positions import Decision
from worker.recording.snapshots import AccountFigures

CACHE_RULE = "cached per-unit initial margin x quantity x MARGIN_SAFETY_FACTOR <= AvailableFunds"
LINEAR = {"STK": "stock", "FUT": "future"}
NOT_LINEAR = {
    "OPT": "an option: IB's margin depends on the strike, the price and the rest of the account",
    "FOP": "a future option: IB's margin depends on the strike, the price and the rest of the account",
    "BAG": "a combination: IB nets its legs",
}
# IB charges more per unit for a large position (concentration): a figure learned from a what-if
# of q units approves at most this many times q
SCALE_LIMIT = Decimal(10)
# per-unit initial margin above this is no figure (a broken answer that slipped through)
ABSURD = Decimal("1e12")
# what a check approved counts against AvailableFunds until IB reports the account's funds again
# (the account stream; IB sends account values every few minutes), at most this long
RESERVE_SECONDS = 180.0
_PER_UNIT_PLACES = Decimal("0.000001")
_CENTS = Decimal("0.01")


@dataclass(frozen=True)
class PerUnit:
    """IB's margin per unit of one contract on one side, as learned from one what-if."""

    initial: Decimal
    maintenance: Decimal | None
    currency: str  # the account's base currency (IB's margin figures are in it)
    quantity: Decimal  # the what-if's quantity
    learned_at: float  # when IB answered (epoch seconds)
    learned_from: str  # the what-if, described ("BUY 1 AAPL MKT")

    def age(self, now: float) -> float:
        return now - self.learned_at


@dataclass(frozen=True)
class MarginPolicy:
    """MARGIN_SAFETY_FACTOR and MARGIN_MAX_AGE_SECONDS (0: never use a cached figure)."""

    safety_factor: Decimal = Decimal("1.1")
    max_age: float = 300.0


@dataclass(frozen=True)
class Reservation:
    """Margin a check approved (``needs``), with the AvailableFunds it was compared with."""

    needs: Decimal
    funds_seen: Decimal | None
    at: float


def cache_rule(sec_type: str, decision: Decision, order: Leg) -> tuple[Leg | None, str]:
    """The opening part a cached per-unit figure may approve (None: only IB's what-if can), and
    why not. ``order`` is the what-if order (a reversal's whole move, worker/decision/margin.py)."""
    if sec_type not in LINEAR:
        why = NOT_LINEAR.get(sec_type, f"a {sec_type or 'contract'} order: only stock and future openings use a "
                                       "cached figure")  # fmt: skip
        return None, f"not linear in quantity: {why}"
    if sec_type == "STK" and _priced(order):
        return None, (f"a stock order with a price of its own ({order.order_type}): IB's margin follows the order's "
                      "price, a per-unit figure learned at the market does not")  # fmt: skip
    reversal = decision.position != 0 and decision.position * decision.target < 0
    if reversal:  # the new side's opening part alone; IB's what-if nets the whole move
        return replace(order, quantity=decision.open_qty), ""
    return order, ""


def _priced(order: Leg) -> bool:
    """The order names a price (limit, stop, trail): not a market order (MKT, MOC)."""
    prices = (
        order.limit_price,
        order.stop_price,
        order.trail_amount,
        order.trail_percent,
        order.trail_stop_price,
    )
    return any(price is not None for price in prices)


def margin_ask(sec_type: str, decision: Decision, order: Leg, symbol: str) -> MarginAsk:
    """What the margin check of ``order`` needs (worker/decision/core.py)."""
    cached, why = cache_rule(sec_type, decision, order)
    return MarginAsk(order, describe_order(order, symbol), cached, why, symbol)


def learned(answer: WhatIf | None, order: Leg, currency: str, at: float, described: str) -> PerUnit | None:
    """A per-unit figure from IB's answer to a what-if of a plain opening (``order``); None when
    the answer is broken or teaches nothing (see the module docstring)."""
    if answer is None or answer.warning_text.strip() or order.quantity <= 0:
        return None
    initial, maintenance = answer.init_margin_change, answer.maint_margin_change
    if initial is None or maintenance is None or initial <= 0 or maintenance < 0:
        return None
    per_unit = (initial / order.quantity).quantize(_PER_UNIT_PLACES, rounding=ROUND_CEILING)
    if per_unit > ABSURD:
        return None
    maint = (maintenance / order.quantity).quantize(_PER_UNIT_PLACES, rounding=ROUND_CEILING)
    return PerUnit(per_unit, maint, currency, order.quantity, at, described)


def reserved(reservations: Iterable[Reservation], available: Decimal | None, now: float) -> Decimal:
    """What recent approvals hold back: those compared with the AvailableFunds IB still reports
    (IB has not reported the account since) and younger than :data:`RESERVE_SECONDS`."""
    return sum(
        (r.needs for r in reservations if r.funds_seen == available and 0 <= now - r.at < RESERVE_SECONDS),
        Decimal(0),
    )


def from_cache(ask: MarginAsk, unit: PerUnit | None, figures: AccountFigures, held: Decimal, now: float,
               policy: MarginPolicy) -> MarginCheck | str:  # fmt: skip
    """The hot path: the check approved from the cached figure, or why IB's what-if must decide."""
    order = ask.cached
    if order is None:
        return ask.why
    if unit is None:
        return "no cached per-unit figure yet"
    age = unit.age(now)
    if age < 0 or age > policy.max_age:
        return f"the cached per-unit figure is {age:.0f}s old (MARGIN_MAX_AGE_SECONDS {policy.max_age:g})"
    if order.quantity > unit.quantity * SCALE_LIMIT:
        return (f"{qty(order.quantity)} units is more than {SCALE_LIMIT} x the {qty(unit.quantity)} the cached "
                "figure was learned from (IB may charge more per unit)")  # fmt: skip
    available, currency = figures.available_funds, figures.currency or unit.currency or "USD"
    if available is None:
        return "the account's AvailableFunds is unknown (IB has not reported it)"
    if figures.currency and unit.currency and figures.currency != unit.currency:
        return f"the cached figure is in {unit.currency}, the account reports {figures.currency}"
    estimate = order.quantity * unit.initial
    needs = (estimate * policy.safety_factor).quantize(_CENTS, rounding=ROUND_CEILING)
    if needs + held > available:
        return (f"the cached figure does not cover it (needs {money(needs)} {currency}"
                f"{f' + {money(held)} {currency} just approved' if held else ''}, available {money(available)} "
                f"{currency})")  # fmt: skip
    maint = None if unit.maintenance is None else str(order.quantity * unit.maintenance)
    shown = MarginFigures(
        currency, str(estimate), maint, None, None, None, None, str(available), "AvailableFunds"
    )
    at = datetime.fromtimestamp(unit.learned_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    use = PerUnitUse(str(unit.initial), None if unit.maintenance is None else str(unit.maintenance),
                     unit.learned_from, at, f"{age:.1f}", str(policy.safety_factor), str(needs), str(held))  # fmt: skip
    source = f"cached per-unit from what-if at {at}, age {age:.0f}s"
    described = describe_order(order, ask.symbol)
    return MarginCheck(CACHE_RULE, described, "ok", figures=shown, source=source, per_unit=use)
