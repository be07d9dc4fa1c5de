"""The order that reduces, closes or reverses-by-closing a position (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.payload import AlertPayload
from worker.decision.model import Instrument, Leg, Plan, PlanRejected
from worker.decision.offsets import require_positive
from worker.decision.order_types import OrderRules, OrderTypeRefused, time_in_force
from worker.decision.positions import is_exit
from worker.decision.rounding import limit_direction


def plan_exit(inst: Instrument, position: Decimal, payload: AlertPayload) -> Plan:
    """Close ``position`` (signed) with a market order; an empty plan when flat."""
    plan = Plan(kind="exit", instrument=inst, cancel_first=True)
    if position == 0:
        plan.notes.append("no open position")
        return plan
    action = "SELL" if position > 0 else "BUY"
    plan.legs = [plan_close(inst, action, abs(position), payload, leg="exit")]
    plan.notes.append(f"closing position of {position}")
    return plan


def plan_close(
    inst: Instrument,
    side: str,
    qty: Decimal,
    payload: AlertPayload,
    *,
    leg: str = "close",
    reference: Decimal | None = None,
    rules: OrderRules | None = None,
    notes: list[str] | None = None,
    reversal: bool = False,
) -> Leg:
    """The order that reduces, closes or reverses-by-closing a position: the alert's order type
    (market unless it says ``limit`` with a price) with its ``timeInForce`` (DAY by default). Its
    size is whatever the position needs, not bounded by ``MAX_ORDER_QUANTITY`` (a ceiling on
    opening absurd sizes, not on closing).

    Never refused for a rule that only concerns opening: with ``extendedHours`` a market close is a
    marketable limit at the reference (``price``, else ``reference``: IB's price) ± the
    extended-hours offset, and without any reference it stays MKT (IB may hold it until regular
    hours; the note says so); a ``timeInForce`` that cannot apply to it is dropped for DAY, and so is
    an auction TIF (``opg`` / ``cls``) on a ``reversal``'s close: the opening part waits for the
    close to fill (``REVERSAL_FILL_TIMEOUT_SECONDS``), which an auction order does not."""
    rules = rules or OrderRules()
    notes = notes if notes is not None else []
    ext = payload.extended_hours
    fields: dict[str, Any] = {}
    if payload.order_type == "limit" and not is_exit(payload):
        asked = payload.limit_price or payload.price
        if asked is None or asked <= 0:
            raise PlanRejected("a limit order needs a positive limitPrice")
        price = inst.grid.round(asked, limit_direction(side))
        require_positive("close limit", f"limit price {asked} on tick {inst.min_tick}", price)
        ib_type, fields["limit_price"] = "LMT", price
    else:
        ib_type = "MKT"
        base = payload.price if payload.price is not None else reference
        if ext and base is not None:
            sign = 1 if side == "BUY" else -1
            raw = base + sign * rules.extended_hours_offset(inst.min_tick)
            price = inst.grid.round(raw, limit_direction(side))
            if price > 0:
                ib_type, fields["limit_price"] = "LMT", price
                notes.append(f"extendedHours: the {leg} order is a marketable LMT {price} ({base} "
                             f"{'+' if sign > 0 else '-'} {rules.extended_hours_stop_limit_ticks} ticks)")  # fmt: skip
        elif ext:
            notes.append(f"extendedHours: no reference price, the {leg} order goes as MKT (IB may hold it "
                         "until regular hours); an exit is never refused for it")  # fmt: skip
    try:
        if reversal and payload.time_in_force in ("opg", "cls"):
            raise OrderTypeRefused("the close of a reversal must fill before the opening part goes")
        ib_type, tif = time_in_force(payload.time_in_force, ib_type, extended_hours=ext)
    except OrderTypeRefused as exc:
        tif = "DAY"
        notes.append(f"timeInForce {payload.time_in_force} not applied to the {leg} order ({exc}): DAY")
    return Leg(leg, side, ib_type, qty, tif=tif, outside_rth=ext, **fields)
