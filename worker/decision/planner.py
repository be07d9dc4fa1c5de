"""Alert payload + qualified contract + reference price → a :class:`Plan` of order legs (pure logic).

The planner decides everything that is sent to IB and writes it down (the legs go into
``Alert.plan``, worker/decision/stored.py) so a trader can see why an order looks the way it does.
It never talks to IB: the look (worker/execution/gather.py) fetches the contract details and, when
needed, a reference price first. The pieces: the entry (worker/decision/entry.py), the exits
(worker/decision/exits.py), the closing order (worker/decision/closing.py).

Reference price (the base of percent / amount / ticks offsets and of the side checks):

1. a limit entry: its limit price;
2. a market entry: the alert's ``price`` (TradingView's ``{{close}}``, what the strategy computed
   its exits from) when given;
3. otherwise IB's last (or midpoint / close) price from a market-data snapshot.

``filled`` for an alert means its entry is fully filled; the children (take-profit / stop-loss)
live on at IB and are recorded as they fill.
"""

from __future__ import annotations

from decimal import Decimal

from core.payload import AlertPayload
from worker.decision.entry import entry_leg
from worker.decision.evolve import evolve
from worker.decision.exits import ExitContext, stop_loss_leg, take_profit_leg
from worker.decision.intent import entry_side
from worker.decision.levels import level_sizes, sliced_children
from worker.decision.model import Instrument, Leg, Plan, PlanRejected
from worker.decision.offsets import require_positive
from worker.decision.order_types import OrderRules


def quantity_of(payload: AlertPayload, inst: Instrument, max_quantity: Decimal | None = None) -> Decimal:
    """The alert's fixed quantity, checked like any order quantity (:func:`check_quantity`). A sized
    quantity (dollar / risk / equity, worker/decision/sizing.py) reaches :func:`plan_bracket` as its
    ``quantity`` argument, through the position decision."""
    qtype = payload.quantity_type or "fixed_quantity"
    if qtype != "fixed_quantity":
        raise PlanRejected(f"quantityType {qtype!r} is sized by the worker before planning (pass quantity=)")
    qty = payload.quantity
    if qty is None:
        raise PlanRejected("quantity is required")
    return check_quantity(qty, inst, max_quantity)


def check_quantity(
    qty: Decimal, inst: Instrument, max_quantity: Decimal | None = None, what: str = "quantity"
) -> Decimal:
    """``qty`` checked against the contract's size rules and the ``MAX_ORDER_QUANTITY`` ceiling
    (``max_quantity``; None: no ceiling)."""
    if qty <= 0:
        raise PlanRejected(f"{what} must be positive, got {qty}")
    if max_quantity is not None and qty > max_quantity:
        raise PlanRejected(
            f"{what} {qty} is above MAX_ORDER_QUANTITY {max_quantity} (a guard against absurd sizes; "
            "raise the setting if this size is meant)"
        )
    if qty < inst.min_size:
        raise PlanRejected(f"{what} {qty} is below the contract's minimum size {inst.min_size}")
    if (
        inst.size_increment > 0
        and (qty / inst.size_increment) != (qty / inst.size_increment).to_integral_value()
    ):
        raise PlanRejected(
            f"{what} {qty} is not a multiple of the contract's size increment {inst.size_increment}"
        )
    return qty


def plan_bracket(
    payload: AlertPayload,
    inst: Instrument,
    market_price: Decimal | None = None,
    market_source: str = "ib snapshot",
    *,
    max_quantity: Decimal | None = None,
    side: str | None = None,
    quantity: Decimal | None = None,
    rules: OrderRules | None = None,
    exits_only: bool = False,
) -> Plan:
    """Entry (market, limit, stop, stop-limit or trailing) with optional take-profit and stop-loss
    children on the tick grid. The IB order each becomes: worker/decision/order_types.py, docs/orders.md.

    ``side`` and ``quantity`` (the opening part of a position decision: a reversal's short after a
    ``buy``-less ``positionSize``, an ``add``) override the alert's action and quantity. ``rules``:
    the order-type settings (``EXTENDED_HOURS_STOP_LIMIT_TICKS``). ``exits_only``: only the exits
    count (re-pricing the exits of a position being reduced): the entry is a placeholder market
    order (a limit's price stays the reference), so the entry's own type, TIF and session rules
    neither apply nor refuse.

    Refused (:class:`PlanRejected`) before anything is sent when any leg's price, after rounding,
    is not strictly positive: a 100 % stop-loss below a long, a 1000 % take-profit below a short
    or a tiny limit rounded down to 0 would otherwise reach IB as STP 0 or LMT -1710."""
    rules = rules or OrderRules()
    side = side or entry_side(payload)
    if quantity is not None:
        qty = check_quantity(quantity, inst, max_quantity)
    else:
        qty = quantity_of(payload, inst, max_quantity)
    plan = Plan(kind="bracket", instrument=inst, cancel_first=payload.cancel)
    if exits_only and payload.order_type != "limit":  # a limit: its price stays the reference
        base = payload.price if payload.price is not None else market_price
        entry = Leg("entry", side, "MKT", qty)
        plan.reference_price = base
        plan.reference_source = "alert price" if payload.price is not None else market_source
    else:
        entry = entry_leg(payload, side, qty, inst, market_price, market_source, rules, plan)
    if plan.reference_price is not None and plan.reference_price <= 0:
        raise PlanRejected(f"reference price must be positive, got {plan.reference_price}")
    ref = plan.reference_price
    # why IB gave no price (no subscription, no delayed data), for a relative exit's refusal
    missing = market_source if ref is None and market_source.startswith("no market data") else ""
    exit_side = "SELL" if side == "BUY" else "BUY"
    ctx = ExitContext(exit_side, qty, inst, ref, payload.extended_hours, rules, plan, missing)
    children = _children(payload, ctx, qty)
    if children and ref is None:
        raise PlanRejected("no reference price to check the take-profit / stop-loss against")
    plan.legs = _transmit_last([entry, *children])
    return plan


def _children(payload: AlertPayload, ctx: ExitContext, qty: Decimal) -> list[Leg]:
    """The bracket's exits: a take-profit and a stop-loss for the whole position, or with a
    take-profit in levels one sub-bracket per level (worker/decision/levels.py)."""
    ref, inst = ctx.reference, ctx.inst
    tick = inst.grid.increment_at(ref) if ref is not None else inst.min_tick  # the unit of ``ticks``
    levels = payload.take_profit_levels
    if levels:
        sizes = level_sizes(levels, qty, inst.size_increment)
        targets = [take_profit_leg(level, ctx, tick) for level in levels]
        stop = stop_loss_leg(payload.stop_loss, ctx) if payload.stop_loss is not None else None
        ctx.plan.notes.append("take-profit in levels: " + ", ".join(
            f"{t.limit_price} x {size}" for t, size in zip(targets, sizes, strict=True)))  # fmt: skip
        return sliced_children(targets, stop, sizes, qty)
    children: list[Leg] = []
    if payload.take_profit is not None:
        children.append(take_profit_leg(payload.take_profit, ctx, tick))
    if payload.stop_loss is not None:
        children.append(stop_loss_leg(payload.stop_loss, ctx))
    return children


def _transmit_last(legs: list[Leg]) -> list[Leg]:
    """IB's bracket protocol: every leg but the last waits (transmit=False); the last sends them all.
    The last word before IB: no leg leaves with a price at or below zero."""
    for leg in legs:
        for kind, value in (("limit", leg.limit_price), ("stop", leg.stop_price),
                            ("trailing stop", leg.trail_stop_price)):  # fmt: skip
            if value is not None:
                require_positive(f"{leg.leg} {kind} price", "the plan", value)
    return [evolve(leg, transmit=index == len(legs) - 1) for index, leg in enumerate(legs)]
