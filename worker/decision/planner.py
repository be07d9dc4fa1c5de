"""Alert payload + qualified contract + reference price → a :class:`Plan` of order legs (pure logic).

The planner decides everything that is sent to IB and writes it down (``Plan.to_json`` goes into
``Alert.plan``) so a trader can see why an order looks the way it does. It never talks to IB: the
executor fetches the contract details and, when needed, a reference price first.

Reference price (the base of percent / amount / ticks offsets and of the side checks):

1. a limit entry: its limit price;
2. a market entry: the alert's ``price`` (TradingView's ``{{close}}``, what the strategy computed
   its exits from) when given;
3. otherwise IB's last (or midpoint / close) price from a market-data snapshot.

``filled`` for an alert means its entry is fully filled; the children (take-profit / stop-loss)
live on at IB and are recorded as they fill.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.payload import AlertPayload, StopLoss, TakeProfit
from worker.decision.order_types import (
    ExitOrder,
    OrderRules,
    OrderTypeRefused,
    default_exit_order,
    refuse_trailing_outside_rth,
    time_in_force,
)
from worker.decision.positions import PositionIntent
from worker.decision.rounding import (
    PriceGrid,
    entry_stop_direction,
    limit_direction,
    protective_stop_direction,
    round_to_tick,
)
from worker.errors import Refused

if TYPE_CHECKING:  # worker/decision/sizing.py imports this module
    from worker.decision.sizing import Sizing

# Children live until they fill or the operator cancels them: a DAY stop-loss would expire at the
# close and leave an open position unprotected overnight.
CHILD_TIF = "GTC"
# Reduce the sibling by the filled quantity, with IB's overfill protection ("with block"): a partly
# filled take-profit leaves the stop-loss protecting exactly the rest of the position.
OCA_TYPE = 2


class PlanRejected(Refused):
    """The alert's prices or quantity cannot be turned into orders (the message says why)."""


@dataclass(frozen=True)
class Instrument:
    """The facts about a qualified contract the planner needs (from IB's contract details)."""

    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    currency: str
    local_symbol: str
    min_tick: Decimal
    min_size: Decimal = Decimal(1)
    size_increment: Decimal = Decimal(1)
    multiplier: str = ""
    # IB's market rule for the order's exchange: (low edge, increment) bands; empty: min_tick only
    price_bands: tuple[tuple[Decimal, Decimal], ...] = ()

    @property
    def grid(self) -> PriceGrid:
        """The prices IB accepts (worker/decision/rounding.py): the price bands, else min_tick."""
        return PriceGrid(self.min_tick, self.price_bands)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("min_tick", "min_size", "size_increment"):
            doc[key] = str(doc[key])
        doc["price_bands"] = [[str(low), str(inc)] for low, inc in self.price_bands]
        return doc


@dataclass(frozen=True)
class Leg:
    """One order to send. ``transmit`` False legs wait at IB for the last leg of the bracket."""

    leg: str  # entry, tp, sl, exit
    action: str  # BUY / SELL
    order_type: str  # MKT LMT STP "STP LMT" TRAIL MOC LOC (worker/decision/order_types.py)
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tif: str = "DAY"
    outside_rth: bool = False
    transmit: bool = True
    parent_leg: str | None = None
    # TRAIL (worker/decision/order_types.py): one of the trail's forms, and its initial stop when known
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_stop_price: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {
            "leg": self.leg,
            "action": self.action,
            "order_type": self.order_type,
            "quantity": str(self.quantity),
            "limit_price": None if self.limit_price is None else str(self.limit_price),
            "stop_price": None if self.stop_price is None else str(self.stop_price),
            "tif": self.tif,
            "outside_rth": self.outside_rth,
            "transmit": self.transmit,
            "parent_leg": self.parent_leg,
        }
        # only a trailing order has them (older plans, and every other leg, keep their shape)
        for key in ("trail_amount", "trail_percent", "trail_stop_price"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = str(value)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Leg:
        """The leg as :meth:`to_json` stored it (a rerun sends exactly what was decided)."""

        def dec(key: str) -> Decimal | None:
            return None if doc.get(key) is None else Decimal(str(doc[key]))

        return cls(
            leg=doc["leg"],
            action=doc["action"],
            order_type=doc["order_type"],
            quantity=Decimal(str(doc["quantity"])),
            limit_price=dec("limit_price"),
            stop_price=dec("stop_price"),
            tif=doc.get("tif") or "DAY",
            outside_rth=bool(doc.get("outside_rth")),
            transmit=bool(doc.get("transmit", True)),
            parent_leg=doc.get("parent_leg"),
            trail_amount=dec("trail_amount"),
            trail_percent=dec("trail_percent"),
            trail_stop_price=dec("trail_stop_price"),
        )


@dataclass
class Plan:
    """What the worker decided for one alert (serialised into ``Alert.plan``)."""

    kind: str  # bracket (entry with optional children), exit, cancel
    instrument: Instrument | None
    legs: list[Leg] = field(default_factory=list)
    reference_price: Decimal | None = None
    reference_source: str | None = None
    cancel_first: bool = False
    oca_type: int = OCA_TYPE
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "contract": None if self.instrument is None else self.instrument.to_json(),
            "legs": [leg.to_json() for leg in self.legs],
            "reference_price": None if self.reference_price is None else str(self.reference_price),
            "reference_source": self.reference_source,
            "cancel_first": self.cancel_first,
            "oca_type": self.oca_type if len(self.legs) > 1 else None,
            "notes": list(self.notes),
        }


def alert_kind(payload: AlertPayload) -> str:
    """``cancel`` (cancel resting entries) or ``position`` (buy, sell, add, exit: a move of the
    position decided by :func:`worker.decision.positions.decide`)."""
    action = payload.action
    if action == "cancel":
        return "cancel"
    if action in ("buy", "sell", "add", "exit"):
        return "position"
    raise PlanRejected(f"unknown action {action!r}")


def is_exit(payload: AlertPayload) -> bool:
    """An alert that exits (``action: exit`` or ``sentiment: flat``): its closing leg is ``exit``."""
    return payload.action == "exit" or payload.sentiment == "flat"


def intent_of(payload: AlertPayload, sizing: Sizing | None = None) -> PositionIntent:
    """What the alert asks for in position terms (quantities checked, not yet sized to IB's rules).

    ``sizing`` (worker/decision/sizing.py, issue 11) is the alert's dollar / risk / equity quantity (or the
    strategy's default) already turned into the order quantity :func:`decide` reads."""
    alert_kind(payload)
    qtype = payload.quantity_type or "fixed_quantity"
    if sizing is not None:
        return PositionIntent(
            action=payload.action,
            quantity=sizing.order_quantity,
            percent_of_position=sizing.percent_of_position,
            position_size=payload.position_size,
            sentiment=payload.sentiment,
        )
    # nothing to size: positionSize wins, a flat sentiment closes, an exit while flat does nothing
    # (worker/decision/sizing.py returns None for these; the executor always sizes first)
    unsized = payload.position_size is not None or payload.sentiment == "flat" or payload.action == "exit"
    if (
        qtype not in ("fixed_quantity", "percent_of_position")
        and payload.quantity is not None
        and not unsized
    ):
        raise PlanRejected(
            f"quantityType {qtype!r} needs sizing (worker/decision/sizing.py) before the decision"
        )
    qty = payload.quantity if qtype in ("fixed_quantity", "percent_of_position") else None
    if qty is not None and qty <= 0:
        raise PlanRejected(f"quantity must be positive, got {qty}")
    percent = None
    if qtype == "percent_of_position" and qty is not None:
        if qty > 100:
            raise PlanRejected(f"percent_of_position must be at most 100, got {qty}")
        percent, qty = qty, None
    return PositionIntent(
        action=payload.action,
        quantity=qty,
        percent_of_position=percent,
        position_size=payload.position_size,
        sentiment=payload.sentiment,
    )


def entry_side(payload: AlertPayload) -> str:
    """BUY for ``buy``, SELL for ``sell``."""
    return "BUY" if payload.action == "buy" else "SELL"


def needs_market_reference(payload: AlertPayload) -> bool:
    """True when an opening order (or exits re-priced by the alert) needs IB's price: a market
    order without ``price``/``signalPrice``; an ``extendedHours`` market close (it goes as a
    marketable limit around that price, worker/decision/order_types.py); and an exit whose amount is sized
    (an ``exit`` with a ``dollar_amount`` needs a price to turn the amount into a quantity)."""
    if payload.action == "cancel" or payload.price is not None:
        return False
    if payload.extended_hours and payload.order_type == "market":
        return True
    if payload.action == "exit" and payload.sentiment != "flat":
        return payload.quantity is not None and (payload.quantity_type or "fixed_quantity") not in (
            "fixed_quantity", "percent_of_position")  # fmt: skip
    if payload.action not in ("buy", "sell", "add") or is_exit(payload):
        return False
    if payload.order_type == "limit":
        return False
    return payload.price is None


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


def _offset_price(
    spec: TakeProfit | StopLoss, name: str, reference: Decimal | None, tick: Decimal, away: int,
    missing: str = "",
) -> tuple[Decimal, str]:  # fmt: skip
    """The raw (unrounded) price of a take-profit / stop-loss spec; ``away`` is +1 above, -1 below."""
    absolute = spec.limit_price if isinstance(spec, TakeProfit) else spec.stop_price
    if absolute is not None:
        key = "limitPrice" if isinstance(spec, TakeProfit) else "stopPrice"
        if absolute <= 0:
            raise PlanRejected(f"{name}.{key} must be positive, got {absolute}")
        return absolute, f"{name}.{key}"
    if reference is None:
        # ``missing``: why IB gave no price (no subscription, no delayed data; worker/ib/market_data.py)
        raise PlanRejected(
            f"{name} is relative but no reference price is known" + (f" ({missing})" if missing else "")
        )
    if spec.percent is not None:
        if spec.percent <= 0:
            raise PlanRejected(f"{name}.percent must be positive, got {spec.percent}")
        return reference * (1 + away * spec.percent / 100), f"{name}.percent={spec.percent}"
    if spec.amount is not None:
        if spec.amount <= 0:
            raise PlanRejected(f"{name}.amount must be positive, got {spec.amount}")
        return reference + away * spec.amount, f"{name}.amount={spec.amount}"
    ticks = spec.ticks
    if ticks is not None:
        if ticks <= 0 or ticks != ticks.to_integral_value():
            raise PlanRejected(f"{name}.ticks must be a positive whole number, got {ticks}")
        return reference + away * ticks * tick, f"{name}.ticks={ticks}"
    raise PlanRejected(f"{name} needs one of limitPrice/stopPrice, percent, amount or ticks")


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
    exit_side = "SELL" if side == "BUY" else "BUY"
    sign = 1 if side == "BUY" else -1  # +1: target above, stop below the entry
    if quantity is not None:
        qty = check_quantity(quantity, inst, max_quantity)
    else:
        qty = quantity_of(payload, inst, max_quantity)
    tick = inst.min_tick
    outside_rth = payload.extended_hours
    plan = Plan(kind="bracket", instrument=inst, cancel_first=payload.cancel)
    if exits_only and payload.order_type != "limit":  # a limit: its price stays the reference
        base = payload.price if payload.price is not None else market_price
        entry = Leg("entry", side, "MKT", qty)
        plan.reference_price = base
        plan.reference_source = "alert price" if payload.price is not None else market_source
    else:
        entry = _entry_leg(payload, side, qty, inst, market_price, market_source, rules, plan)
    if plan.reference_price is not None and plan.reference_price <= 0:
        raise PlanRejected(f"reference price must be positive, got {plan.reference_price}")

    ref = plan.reference_price
    tick = inst.grid.increment_at(ref) if ref is not None else tick  # the unit of ``ticks`` offsets
    # why IB gave no price (no subscription, no delayed data), for a relative exit's refusal
    missing = market_source if ref is None and market_source.startswith("no market data") else ""
    children: list[Leg] = []
    tp_spec, sl_spec = payload.take_profit, payload.stop_loss
    if tp_spec is not None:
        raw, how = _offset_price(tp_spec, "takeProfit", ref, tick, sign, missing)
        price = inst.grid.round(raw, limit_direction(exit_side))
        _require_positive("take-profit", how, price)
        if ref is not None and (price - ref) * sign <= 0:
            raise PlanRejected(
                f"take-profit {price} is not {'above' if sign > 0 else 'below'} the entry reference {ref}"
            )
        plan.notes.append(f"take-profit from {how}: {raw} -> {price}")
        children.append(Leg("tp", exit_side, "LMT", qty, limit_price=price, tif=CHILD_TIF,
                            outside_rth=outside_rth, parent_leg="entry"))  # fmt: skip
    if sl_spec is not None:
        children.append(_stop_loss_leg(sl_spec, exit_side, qty, inst, ref, outside_rth, rules, plan, missing))
    if children and ref is None:
        raise PlanRejected("no reference price to check the take-profit / stop-loss against")
    # IB's bracket protocol: every leg but the last waits (transmit=False); the last sends them all.
    legs = [entry, *children]
    for leg in legs:  # the last word before IB: no leg leaves with a price at or below zero
        for kind, value in (("limit", leg.limit_price), ("stop", leg.stop_price),
                            ("trailing stop", leg.trail_stop_price)):  # fmt: skip
            if value is not None:
                _require_positive(f"{leg.leg} {kind} price", "the plan", value)
    plan.legs = [
        Leg(**{**leg.__dict__, "transmit": index == len(legs) - 1}) for index, leg in enumerate(legs)
    ]
    return plan


def _entry_leg(
    payload: AlertPayload,
    side: str,
    qty: Decimal,
    inst: Instrument,
    market_price: Decimal | None,
    market_source: str,
    rules: OrderRules,
    plan: Plan,
) -> Leg:
    """The entry order for ``orderType``; sets the plan's reference price (what the children are
    checked against): a limit's limit, a stop's (or stop-limit's) stop, a trailing entry's initial
    trigger, a market entry's alert price or IB's price."""
    tick = inst.min_tick
    sign = 1 if side == "BUY" else -1
    ext = payload.extended_hours
    order_type = payload.order_type
    fields: dict[str, Any] = {}
    if payload.price is not None:
        base: Decimal | None = payload.price
        base_source = "alert price"
    else:
        base, base_source = market_price, market_source
    if order_type == "limit":
        asked = payload.limit_price or payload.price
        if asked is None or asked <= 0:
            raise PlanRejected("a limit entry needs a positive limitPrice")
        entry_price = inst.grid.round(asked, limit_direction(side))
        tick = inst.grid.increment_at(entry_price)  # the price band the limit lands in
        _require_positive("entry limit", f"limit price {asked} on tick {tick}", entry_price)
        if entry_price != asked:
            plan.notes.append(f"entry limit {asked} rounded to {entry_price} (tick {tick})")
        ib_type, fields["limit_price"] = "LMT", entry_price
        plan.reference_price, plan.reference_source = entry_price, "limit price"
    elif order_type == "market":
        if base is not None:
            plan.reference_price, plan.reference_source = base, base_source
        ib_type = "MKT"
        if ext:
            if base is None:
                raise OrderTypeRefused(
                    "an extendedHours market entry goes to IB as a marketable limit (IB holds or refuses "
                    "market orders outside regular hours) and needs a reference price: give price in "
                    "the alert (IB sent no market data)"
                )
            raw = base + sign * rules.extended_hours_offset(tick)
            ib_type, fields["limit_price"] = "LMT", inst.grid.round(raw, limit_direction(side))
            _require_positive("extended-hours entry limit", f"{base} {'+' if sign > 0 else '-'} "
                              f"{rules.extended_hours_stop_limit_ticks} ticks", fields["limit_price"])  # fmt: skip
            plan.notes.append(
                f"extendedHours: market entry sent as a marketable LMT {fields['limit_price']} ({base_source} "
                f"{base} {'+' if sign > 0 else '-'} {rules.extended_hours_stop_limit_ticks} ticks): IB does "
                "not execute market orders outside regular hours"
            )
    elif order_type in ("stop", "stop_limit"):
        asked = payload.stop_price
        if asked is None or asked <= 0:
            raise PlanRejected(f"a {order_type} entry needs a positive stopPrice")
        stop = inst.grid.round(asked, entry_stop_direction(side))
        tick = inst.grid.increment_at(stop)
        _require_positive("entry stop", f"stop price {asked} on tick {tick}", stop)
        if stop != asked:
            plan.notes.append(f"entry stop {asked} rounded {'up' if sign > 0 else 'down'} to {stop} (tick "
                              f"{tick}: it never triggers before the price asked)")  # fmt: skip
        ib_type, fields["stop_price"] = "STP", stop
        if order_type == "stop_limit":
            limit = payload.limit_price
            if limit is None or limit <= 0:
                raise PlanRejected("a stop_limit entry needs a positive limitPrice")
            ib_type, fields["limit_price"] = "STP LMT", inst.grid.round(limit, limit_direction(side))
            _require_positive("entry limit", f"limit price {limit} on tick {tick}", fields["limit_price"])
        elif ext:
            raw = stop + sign * rules.extended_hours_offset(tick)
            ib_type, fields["limit_price"] = "STP LMT", inst.grid.round(raw, limit_direction(side))
            _require_positive("extended-hours stop limit", f"{stop} - {rules.extended_hours_stop_limit_ticks} "
                              "ticks", fields["limit_price"])  # fmt: skip
            plan.notes.append(
                f"extendedHours: stop entry sent as STP LMT {stop} / limit {fields['limit_price']} "
                f"({rules.extended_hours_stop_limit_ticks} ticks beyond the stop): IB does not trigger plain "
                "stops outside regular hours"
            )
        plan.reference_price, plan.reference_source = stop, "entry stop price"
    elif order_type == "trailing_stop":
        if ext:
            refuse_trailing_outside_rth("a trailing_stop entry")
        amount, percent = _trail(
            payload.trail_amount, payload.trail_percent, tick, "the trailing entry", plan
        )
        ib_type, fields["trail_amount"], fields["trail_percent"] = "TRAIL", amount, percent
        if base is not None:
            distance = amount if amount is not None else base * (percent or 0) / 100
            trigger = inst.grid.round(base + sign * distance, entry_stop_direction(side))
            fields["trail_stop_price"] = trigger
            plan.reference_price = trigger
            plan.reference_source = f"trailing entry's initial stop ({base_source} {base})"
    else:
        raise PlanRejected(f"orderType {order_type!r} is not supported")
    ib_type, tif = time_in_force(payload.time_in_force, ib_type, extended_hours=ext)
    if ib_type in ("MOC", "LOC"):
        plan.notes.append(f"timeInForce cls: sent as {ib_type} (IB has no close time in force)")
    return Leg("entry", side, ib_type, qty, tif=tif, outside_rth=ext, **fields)


def _trail(
    amount: Decimal | None, percent: Decimal | None, tick: Decimal, what: str, plan: Plan
) -> tuple[Decimal | None, Decimal | None]:
    """``(trailAmount on the tick grid, trailPercent)``: exactly one is set. An amount rounds down
    to the tick (IB refuses an off-grid trail; the smaller trail follows the price closer)."""
    if (amount is None) == (percent is None):
        raise PlanRejected(f"{what} needs exactly one of trailAmount or trailPercent")
    if percent is not None:
        if not 0 < percent < 100:
            raise PlanRejected(f"{what}: trailPercent must be above 0 and below 100, got {percent}")
        return None, percent
    assert amount is not None
    if amount <= 0:
        raise PlanRejected(f"{what}: trailAmount must be positive, got {amount}")
    rounded = round_to_tick(amount, tick, "down")
    if rounded <= 0:
        raise PlanRejected(f"{what}: trailAmount {amount} is below the contract's tick {tick}")
    if rounded != amount:
        plan.notes.append(f"{what}: trailAmount {amount} rounded down to {rounded} (tick {tick})")
    return rounded, None


def _stop_loss_leg(
    spec: StopLoss,
    exit_side: str,
    qty: Decimal,
    inst: Instrument,
    ref: Decimal | None,
    ext: bool,
    rules: OrderRules,
    plan: Plan,
    missing: str = "",
) -> Leg:
    """The stop-loss child: STP, STP LMT (``stop_limit``, or a stop with ``extendedHours``) or TRAIL.

    A ``stop_limit`` stop-loss's ``limitPrice`` is an ABSOLUTE price (also when the stop is
    relative: percent / amount / ticks), at or beyond the stop on the losing side: a limit on the
    other side would leave the triggered stop unfilled while the price runs away, so it is refused."""
    tick = inst.grid.increment_at(ref) if ref is not None else inst.min_tick
    sign = 1 if exit_side == "SELL" else -1  # +1: protects a long (stop below the entry)
    below = "below" if sign > 0 else "above"
    common: dict[str, Any] = {"tif": CHILD_TIF, "outside_rth": ext, "parent_leg": "entry"}
    if spec.type == "trailing_stop":
        if ext:
            refuse_trailing_outside_rth("a trailing_stop stop-loss")
        amount, percent = _trail(spec.trail_amount, spec.trail_percent, tick, "stopLoss", plan)
        if ref is None:
            raise PlanRejected("no reference price to start the trailing stop-loss from")
        distance = amount if amount is not None else ref * (percent or 0) / 100
        initial = inst.grid.round(ref - sign * distance, protective_stop_direction(exit_side))
        how = f"trailAmount={amount}" if amount is not None else f"trailPercent={percent}"
        _require_positive("trailing stop-loss", how, initial)
        if (ref - initial) * sign <= 0:
            raise PlanRejected(
                f"trailing stop-loss starts at {initial}, not {below} the entry reference {ref}"
            )
        plan.notes.append(f"stop-loss TRAIL {how}: starts at {initial} from the reference {ref}")
        return Leg("sl", exit_side, "TRAIL", qty, trail_amount=amount, trail_percent=percent,
                   trail_stop_price=initial, **common)  # fmt: skip
    if spec.type not in ("stop", "stop_limit"):
        raise PlanRejected(f"stopLoss type {spec.type!r} is not supported (stop, stop_limit, trailing_stop)")
    raw, how = _offset_price(spec, "stopLoss", ref, tick, -sign, missing)
    price = inst.grid.round(raw, protective_stop_direction(exit_side))
    _require_positive("stop-loss", how, price)
    if ref is not None and (ref - price) * sign <= 0:
        raise PlanRejected(f"stop-loss {price} is not {below} the entry reference {ref}")
    plan.notes.append(f"stop-loss from {how}: {raw} -> {price}")
    if spec.type == "stop_limit":
        asked = spec.limit_price
        if asked is None or asked <= 0:
            raise PlanRejected("a stop_limit stop-loss needs a positive limitPrice (an absolute price)")
        limit = inst.grid.round(asked, limit_direction(exit_side))
        if (price - limit) * sign < 0:
            raise PlanRejected(
                f"stop-loss limit {limit} is {'above' if sign > 0 else 'below'} its stop {price}: once "
                f"triggered it could not {exit_side.lower()} at the stop (a stop_limit stopLoss.limitPrice "
                f"is an absolute price at or {below} the stop)"
            )
        plan.notes.append(f"stop-loss STP LMT: limit {asked} -> {limit}")
        return Leg("sl", exit_side, "STP LMT", qty, stop_price=price, limit_price=limit, **common)
    if ext:
        limit = inst.grid.round(price - sign * rules.extended_hours_offset(tick), limit_direction(exit_side))
        _require_positive("extended-hours stop-loss limit",
                          f"{price} - {rules.extended_hours_stop_limit_ticks} ticks", limit)  # fmt: skip
        plan.notes.append(
            f"extendedHours: stop-loss sent as STP LMT {price} / limit {limit} "
            f"({rules.extended_hours_stop_limit_ticks} ticks beyond the stop): IB does not trigger plain "
            "stops outside regular hours"
        )
        return Leg("sl", exit_side, "STP LMT", qty, stop_price=price, limit_price=limit, **common)
    return Leg("sl", exit_side, "STP", qty, stop_price=price, **common)


def _require_positive(what: str, how: str, price: Decimal) -> None:
    if price <= 0:
        raise PlanRejected(
            f"{what} from {how} comes to {price}: a price must be above 0; nothing was sent to IB"
        )


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
        _require_positive("close limit", f"limit price {asked} on tick {inst.min_tick}", price)
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


def protection_prices(legs: list[Leg]) -> dict[str, Decimal]:
    """The exit prices a plan's legs carry: ``tp`` -> limit, ``sl`` -> stop (a TRAIL: its initial
    stop)."""
    prices: dict[str, Decimal] = {}
    for leg in legs:
        if leg.leg == "tp" and leg.limit_price is not None:
            prices["tp"] = leg.limit_price
        elif leg.leg == "sl":
            stop = leg.stop_price if leg.stop_price is not None else leg.trail_stop_price
            if stop is not None:
                prices["sl"] = stop
    return prices


def protection_orders(legs: list[Leg]) -> dict[str, ExitOrder]:
    """The IB terms of a plan's exits beyond price and size (kept in the protection spec, so the
    guard and the executor resize or re-attach a TRAIL as a TRAIL, a STP LMT with its limit)."""
    return {
        leg.leg: ExitOrder(
            leg.order_type,
            limit_price=leg.limit_price if leg.order_type == "STP LMT" else None,
            trail_amount=leg.trail_amount,
            trail_percent=leg.trail_percent,
            outside_rth=leg.outside_rth,
        )
        for leg in legs
        if leg.leg in ("tp", "sl")
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
