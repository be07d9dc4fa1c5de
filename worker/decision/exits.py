"""A position's exits as orders (pure): the bracket's take-profit and stop-loss children, an exit
placed on its own, and the prices and IB terms a protection spec keeps of them.

A ``stop_limit`` stop-loss's ``limitPrice`` is an ABSOLUTE price (also when the stop is relative:
percent / amount / ticks), at or beyond the stop on the losing side: a limit on the other side
would leave the triggered stop unfilled while the price runs away, so it is refused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.ids import exit_leg_parts
from core.payload import StopLoss, TakeProfit
from worker.decision.model import CHILD_TIF, Instrument, Leg, Plan, PlanRejected
from worker.decision.offsets import offset_price, require_positive, trail
from worker.decision.order_types import (
    ExitOrder,
    OrderRules,
    default_exit_order,
    refuse_trailing_outside_rth,
)
from worker.decision.rounding import limit_direction, protective_stop_direction


@dataclass(frozen=True)
class ExitContext:
    """What the bracket's children are priced from: their side and size, the entry's reference."""

    exit_side: str  # SELL protects a long
    quantity: Decimal
    inst: Instrument
    reference: Decimal | None
    extended_hours: bool
    rules: OrderRules
    plan: Plan
    missing: str = ""  # why IB gave no price (for a relative exit's refusal)

    @property
    def sign(self) -> int:
        """+1: protects a long (target above, stop below the entry)."""
        return 1 if self.exit_side == "SELL" else -1

    @property
    def below(self) -> str:
        return "below" if self.sign > 0 else "above"

    @property
    def common(self) -> dict[str, Any]:
        return {"tif": CHILD_TIF, "outside_rth": self.extended_hours, "parent_leg": "entry"}


def take_profit_leg(spec: TakeProfit, ctx: ExitContext, tick: Decimal) -> Leg:
    """The take-profit child: a limit on the far side of the entry reference."""
    ref = ctx.reference
    raw, how = offset_price(spec, "takeProfit", ref, tick, ctx.sign, ctx.missing)
    price = ctx.inst.grid.round(raw, limit_direction(ctx.exit_side))
    require_positive("take-profit", how, price)
    if ref is not None and (price - ref) * ctx.sign <= 0:
        raise PlanRejected(
            f"take-profit {price} is not {'above' if ctx.sign > 0 else 'below'} the entry reference {ref}"
        )
    ctx.plan.notes.append(f"take-profit from {how}: {raw} -> {price}")
    return Leg("tp", ctx.exit_side, "LMT", ctx.quantity, limit_price=price, **ctx.common)


def stop_loss_leg(spec: StopLoss, ctx: ExitContext) -> Leg:
    """The stop-loss child: STP, STP LMT (``stop_limit``, or a stop with ``extendedHours``) or TRAIL."""
    tick = ctx.inst.grid.increment_at(ctx.reference) if ctx.reference is not None else ctx.inst.min_tick
    if spec.type == "trailing_stop":
        return _trailing_stop(spec, ctx, tick)
    if spec.type not in ("stop", "stop_limit"):
        raise PlanRejected(f"stopLoss type {spec.type!r} is not supported (stop, stop_limit, trailing_stop)")
    ref, sign = ctx.reference, ctx.sign
    raw, how = offset_price(spec, "stopLoss", ref, tick, -sign, ctx.missing)
    price = ctx.inst.grid.round(raw, protective_stop_direction(ctx.exit_side))
    require_positive("stop-loss", how, price)
    if ref is not None and (ref - price) * sign <= 0:
        raise PlanRejected(f"stop-loss {price} is not {ctx.below} the entry reference {ref}")
    ctx.plan.notes.append(f"stop-loss from {how}: {raw} -> {price}")
    if spec.type == "stop_limit":
        return _stop_limit(spec, ctx, price)
    if ctx.extended_hours:
        return _extended_hours_stop(ctx, price, tick)
    return Leg("sl", ctx.exit_side, "STP", ctx.quantity, stop_price=price, **ctx.common)


def _trailing_stop(spec: StopLoss, ctx: ExitContext, tick: Decimal) -> Leg:
    if ctx.extended_hours:
        refuse_trailing_outside_rth("a trailing_stop stop-loss")
    amount, percent = trail(spec.trail_amount, spec.trail_percent, tick, "stopLoss", ctx.plan)
    ref = ctx.reference
    if ref is None:
        raise PlanRejected("no reference price to start the trailing stop-loss from")
    distance = amount if amount is not None else ref * (percent or 0) / 100
    initial = ctx.inst.grid.round(ref - ctx.sign * distance, protective_stop_direction(ctx.exit_side))
    how = f"trailAmount={amount}" if amount is not None else f"trailPercent={percent}"
    require_positive("trailing stop-loss", how, initial)
    if (ref - initial) * ctx.sign <= 0:
        raise PlanRejected(
            f"trailing stop-loss starts at {initial}, not {ctx.below} the entry reference {ref}"
        )
    ctx.plan.notes.append(f"stop-loss TRAIL {how}: starts at {initial} from the reference {ref}")
    return Leg("sl", ctx.exit_side, "TRAIL", ctx.quantity, trail_amount=amount, trail_percent=percent,
               trail_stop_price=initial, **ctx.common)  # fmt: skip


def _stop_limit(spec: StopLoss, ctx: ExitContext, price: Decimal) -> Leg:
    asked = spec.limit_price
    if asked is None or asked <= 0:
        raise PlanRejected("a stop_limit stop-loss needs a positive limitPrice (an absolute price)")
    limit = ctx.inst.grid.round(asked, limit_direction(ctx.exit_side))
    if (price - limit) * ctx.sign < 0:
        raise PlanRejected(
            f"stop-loss limit {limit} is {'above' if ctx.sign > 0 else 'below'} its stop {price}: once "
            f"triggered it could not {ctx.exit_side.lower()} at the stop (a stop_limit stopLoss.limitPrice "
            f"is an absolute price at or {ctx.below} the stop)"
        )
    ctx.plan.notes.append(f"stop-loss STP LMT: limit {asked} -> {limit}")
    return Leg(
        "sl", ctx.exit_side, "STP LMT", ctx.quantity, stop_price=price, limit_price=limit, **ctx.common
    )


def _extended_hours_stop(ctx: ExitContext, price: Decimal, tick: Decimal) -> Leg:
    rules = ctx.rules
    limit = ctx.inst.grid.round(price - ctx.sign * rules.extended_hours_offset(tick),
                                limit_direction(ctx.exit_side))  # fmt: skip
    require_positive("extended-hours stop-loss limit", f"{price} - {rules.extended_hours_stop_limit_ticks} ticks",
                     limit)  # fmt: skip
    ctx.plan.notes.append(
        f"extendedHours: stop-loss sent as STP LMT {price} / limit {limit} "
        f"({rules.extended_hours_stop_limit_ticks} ticks beyond the stop): IB does not trigger plain "
        "stops outside regular hours"
    )
    return Leg(
        "sl", ctx.exit_side, "STP LMT", ctx.quantity, stop_price=price, limit_price=limit, **ctx.common
    )


def protection_prices(legs: list[Leg]) -> dict[str, Decimal]:
    """The exit prices a plan's legs carry: ``tp`` -> limit, ``sl`` -> stop (a TRAIL: its initial
    stop)."""
    prices: dict[str, Decimal] = {}
    for leg in legs:
        role, level = exit_leg_parts(leg.leg) or ("", "")
        if role == "tp" and level:
            continue  # a level's price is its own (protection_levels), not the position's take-profit
        if role == "tp" and leg.limit_price is not None:
            prices["tp"] = leg.limit_price
        elif role == "sl":
            stop = leg.stop_price if leg.stop_price is not None else leg.trail_stop_price
            if stop is not None:
                prices["sl"] = stop
    return prices


def protection_orders(legs: list[Leg]) -> dict[str, ExitOrder]:
    """The IB terms of a plan's exits beyond price and size (kept in the protection spec, so the
    guard and the executor resize or re-attach a TRAIL as a TRAIL, a STP LMT with its limit)."""
    terms: dict[str, ExitOrder] = {}
    for leg in legs:
        role = (exit_leg_parts(leg.leg) or ("", ""))[0]
        if role in ("tp", "sl"):  # a level's exits share the stop's terms; a level's tp is a plain LMT
            terms.setdefault(role, ExitOrder(
                leg.order_type,
                limit_price=leg.limit_price if leg.order_type == "STP LMT" else None,
                trail_amount=leg.trail_amount,
                trail_percent=leg.trail_percent,
                outside_rth=leg.outside_rth,
            ))  # fmt: skip
    return terms


def protection_levels(legs: list[Leg]) -> dict[str, tuple[Decimal, Decimal]]:
    """A take-profit in levels as the protection record keeps it: level -> (limit price, size)."""
    levels: dict[str, tuple[Decimal, Decimal]] = {}
    for leg in legs:
        role, level = exit_leg_parts(leg.leg) or ("", "")
        if role == "tp" and level and leg.limit_price is not None:
            levels[level] = (leg.limit_price, leg.quantity)
    return levels


def kept_terms(orders: Mapping[str, ExitOrder], roles: Collection[str]) -> dict[str, ExitOrder]:
    """The terms of ``roles``' exits as a protection spec keeps them: plain LMT / STP (the default)
    are left out, as specs stored before order types have none."""
    return {
        role: terms for role, terms in orders.items() if role in roles and terms != default_exit_order(role)
    }


def exit_leg(role: str, action: str, quantity: Decimal, price: Decimal, terms: ExitOrder | None) -> Leg:
    """A protective exit placed on its own (re-attached by the guard, or new by the executor), GTC,
    with the terms the plan gave it. A TRAIL gets no initial stop: IB starts the trail from the
    market price when it receives it (the plan's initial stop may be long stale by then)."""
    terms = terms or default_exit_order(role)
    common: dict[str, Any] = {"tif": CHILD_TIF, "outside_rth": terms.outside_rth}
    if role == "tp":
        return Leg(role, action, "LMT", quantity, limit_price=price, **common)
    if terms.order_type == "TRAIL":
        return Leg(role, action, "TRAIL", quantity, trail_amount=terms.trail_amount,
                   trail_percent=terms.trail_percent, **common)  # fmt: skip
    if terms.order_type == "STP LMT" and terms.limit_price is not None:
        return Leg(
            role, action, "STP LMT", quantity, stop_price=price, limit_price=terms.limit_price, **common
        )
    return Leg(role, action, "STP", quantity, stop_price=price, **common)
