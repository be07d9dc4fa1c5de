"""The entry order of a bracket, one function per ``orderType`` (pure).

Each sets the plan's reference price (what the children are checked against): a limit's limit, a
stop's (or stop-limit's) stop, a trailing entry's initial trigger, a market entry's alert price or
IB's price. The IB order each becomes: worker/decision/order_types.py, docs/orders.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypedDict

from core.payload import AlertPayload
from worker.decision.model import Instrument, Leg, Plan, PlanRejected
from worker.decision.offsets import require_positive, trail
from worker.decision.order_types import (
    OrderRules,
    OrderTypeRefused,
    refuse_trailing_outside_rth,
    time_in_force,
)
from worker.decision.rounding import entry_stop_direction, limit_direction


class PriceFields(TypedDict, total=False):
    """The price fields of an entry leg (worker/decision/model.py ``Leg``) its order type sets."""

    limit_price: Decimal
    stop_price: Decimal
    trail_amount: Decimal | None
    trail_percent: Decimal | None
    trail_stop_price: Decimal


# the IB order type and the leg's price fields
Terms = tuple[str, PriceFields]


@dataclass(frozen=True)
class _Entry:
    """What every order type's entry reads."""

    payload: AlertPayload
    side: str
    inst: Instrument
    base: Decimal | None  # the alert's price, else IB's
    base_source: str
    rules: OrderRules
    plan: Plan

    @property
    def sign(self) -> int:
        return 1 if self.side == "BUY" else -1

    @property
    def sign_text(self) -> str:
        return "+" if self.sign > 0 else "-"


def entry_leg(
    payload: AlertPayload,
    side: str,
    qty: Decimal,
    inst: Instrument,
    market_price: Decimal | None,
    market_source: str,
    rules: OrderRules,
    plan: Plan,
) -> Leg:
    """The entry order for ``orderType``, its time in force applied; the plan's reference price
    and notes are set on ``plan``."""
    if payload.price is not None:
        base, base_source = payload.price, "alert price"
    else:
        base, base_source = market_price, market_source
    entry = _Entry(payload, side, inst, base, base_source, rules, plan)
    build = _BY_TYPE.get(payload.order_type or "")
    if build is None:
        raise PlanRejected(f"orderType {payload.order_type!r} is not supported")
    ib_type, fields = build(entry)
    ext = payload.extended_hours
    ib_type, tif = time_in_force(payload.time_in_force, ib_type, extended_hours=ext)
    if ib_type in ("MOC", "LOC"):
        plan.notes.append(f"timeInForce cls: sent as {ib_type} (IB has no close time in force)")
    return Leg("entry", side, ib_type, qty, tif=tif, outside_rth=ext, **fields)


def _limit(entry: _Entry) -> Terms:
    payload, inst, plan = entry.payload, entry.inst, entry.plan
    asked = payload.limit_price or payload.price
    if asked is None or asked <= 0:
        raise PlanRejected("a limit entry needs a positive limitPrice")
    entry_price = inst.grid.round(asked, limit_direction(entry.side))
    tick = inst.grid.increment_at(entry_price)  # the price band the limit lands in
    require_positive("entry limit", f"limit price {asked} on tick {tick}", entry_price)
    if entry_price != asked:
        plan.notes.append(f"entry limit {asked} rounded to {entry_price} (tick {tick})")
    plan.reference_price, plan.reference_source = entry_price, "limit price"
    return "LMT", {"limit_price": entry_price}


def _market(entry: _Entry) -> Terms:
    base, plan, rules = entry.base, entry.plan, entry.rules
    if base is not None:
        plan.reference_price, plan.reference_source = base, entry.base_source
    if not entry.payload.extended_hours:
        return "MKT", {}
    if base is None:
        raise OrderTypeRefused(
            "an extendedHours market entry goes to IB as a marketable limit (IB holds or refuses "
            "market orders outside regular hours) and needs a reference price: give price in "
            "the alert (IB sent no market data)"
        )
    raw = base + entry.sign * rules.extended_hours_offset(entry.inst.min_tick)
    limit = entry.inst.grid.round(raw, limit_direction(entry.side))
    ticks = f"{entry.sign_text} {rules.extended_hours_stop_limit_ticks} ticks"
    require_positive("extended-hours entry limit", f"{base} {ticks}", limit)
    plan.notes.append(
        f"extendedHours: market entry sent as a marketable LMT {limit} ({entry.base_source} "
        f"{base} {ticks}): IB does not execute market orders outside regular hours"
    )
    return "LMT", {"limit_price": limit}


def _stop(entry: _Entry) -> Terms:
    payload, inst, plan, side = entry.payload, entry.inst, entry.plan, entry.side
    order_type = payload.order_type
    asked = payload.stop_price
    if asked is None or asked <= 0:
        raise PlanRejected(f"a {order_type} entry needs a positive stopPrice")
    stop = inst.grid.round(asked, entry_stop_direction(side))
    tick = inst.grid.increment_at(stop)
    require_positive("entry stop", f"stop price {asked} on tick {tick}", stop)
    if stop != asked:
        plan.notes.append(f"entry stop {asked} rounded {'up' if entry.sign > 0 else 'down'} to {stop} (tick "
                          f"{tick}: it never triggers before the price asked)")  # fmt: skip
    plan.reference_price, plan.reference_source = stop, "entry stop price"
    fields: PriceFields = {"stop_price": stop}
    if order_type == "stop_limit":
        limit = payload.limit_price
        if limit is None or limit <= 0:
            raise PlanRejected("a stop_limit entry needs a positive limitPrice")
        fields["limit_price"] = inst.grid.round(limit, limit_direction(side))
        require_positive("entry limit", f"limit price {limit} on tick {tick}", fields["limit_price"])
        return "STP LMT", fields
    if not payload.extended_hours:
        return "STP", fields
    ticks = entry.rules.extended_hours_stop_limit_ticks
    raw = stop + entry.sign * entry.rules.extended_hours_offset(tick)
    fields["limit_price"] = inst.grid.round(raw, limit_direction(side))
    require_positive("extended-hours stop limit", f"{stop} - {ticks} ticks", fields["limit_price"])
    plan.notes.append(
        f"extendedHours: stop entry sent as STP LMT {stop} / limit {fields['limit_price']} "
        f"({ticks} ticks beyond the stop): IB does not trigger plain stops outside regular hours"
    )
    return "STP LMT", fields


def _trailing(entry: _Entry) -> Terms:
    payload, plan, base = entry.payload, entry.plan, entry.base
    if payload.extended_hours:
        refuse_trailing_outside_rth("a trailing_stop entry")
    amount, percent = trail(payload.trail_amount, payload.trail_percent, entry.inst.min_tick,
                            "the trailing entry", plan)  # fmt: skip
    fields: PriceFields = {"trail_amount": amount, "trail_percent": percent}
    if base is not None:
        distance = amount if amount is not None else base * (percent or 0) / 100
        trigger = entry.inst.grid.round(base + entry.sign * distance, entry_stop_direction(entry.side))
        fields["trail_stop_price"] = trigger
        plan.reference_price = trigger
        plan.reference_source = f"trailing entry's initial stop ({entry.base_source} {base})"
    return "TRAIL", fields


_BY_TYPE: dict[str, Callable[[_Entry], Terms]] = {
    "limit": _limit,
    "market": _market,
    "stop": _stop,
    "stop_limit": _stop,
    "trailing_stop": _trailing,
}
