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
from typing import Any

from core.payload import AlertPayload, StopLoss, TakeProfit
from worker.errors import Refused
from worker.positions import PositionIntent
from worker.rounding import PriceGrid, limit_direction, protective_stop_direction

TIF_MAP = {"day": "DAY", "gtc": "GTC", "opg": "OPG", "ioc": "IOC", "fok": "FOK"}
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
        """The prices IB accepts (worker/rounding.py): the price bands, else min_tick."""
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
    order_type: str  # MKT LMT STP
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tif: str = "DAY"
    outside_rth: bool = False
    transmit: bool = True
    parent_leg: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
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
    position decided by :func:`worker.positions.decide`)."""
    action = payload.action
    if action == "cancel":
        return "cancel"
    if action in ("buy", "sell", "add", "exit"):
        return "position"
    raise PlanRejected(f"unknown action {action!r}")


def is_exit(payload: AlertPayload) -> bool:
    """An alert that exits (``action: exit`` or ``sentiment: flat``): its closing leg is ``exit``."""
    return payload.action == "exit" or payload.sentiment == "flat"


def intent_of(payload: AlertPayload) -> PositionIntent:
    """What the alert asks for in position terms (quantities checked, not yet sized to IB's rules)."""
    alert_kind(payload)
    qtype = payload.quantity_type or "fixed_quantity"
    if qtype not in ("fixed_quantity", "percent_of_position"):
        raise PlanRejected(
            f"quantityType {qtype!r} is not supported yet (use fixed_quantity or percent_of_position)"
        )
    qty = payload.quantity
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
    order without ``price``/``signalPrice``."""
    if payload.action not in ("buy", "sell", "add") or is_exit(payload):
        return False
    if payload.order_type == "limit":
        return False
    return payload.price is None


def quantity_of(payload: AlertPayload, inst: Instrument, max_quantity: Decimal | None = None) -> Decimal:
    """The alert's fixed quantity, checked like any order quantity (:func:`check_quantity`)."""
    qtype = payload.quantity_type or "fixed_quantity"
    if qtype != "fixed_quantity":
        raise PlanRejected(f"quantityType {qtype!r} is not supported yet for an entry (use fixed_quantity)")
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
) -> Plan:
    """Entry (market or limit) with optional take-profit and stop-loss children on the tick grid.

    ``side`` and ``quantity`` (the opening part of a position decision: a reversal's short after a
    ``buy``-less ``positionSize``, an ``add``) override the alert's action and quantity.

    Refused (:class:`PlanRejected`) before anything is sent when any leg's price, after rounding,
    is not strictly positive: a 100 % stop-loss below a long, a 1000 % take-profit below a short
    or a tiny limit rounded down to 0 would otherwise reach IB as STP 0 or LMT -1710."""
    side = side or entry_side(payload)
    exit_side = "SELL" if side == "BUY" else "BUY"
    sign = 1 if side == "BUY" else -1  # +1: target above, stop below the entry
    if quantity is not None:
        qty = check_quantity(quantity, inst, max_quantity)
    else:
        qty = quantity_of(payload, inst, max_quantity)
    grid = inst.grid  # IB's price bands (market rule), else minTick
    tif_raw = payload.time_in_force or "day"
    if tif_raw not in TIF_MAP:
        raise PlanRejected(f"timeInForce {tif_raw!r} is not supported (day, gtc, opg, ioc, fok)")
    tif = TIF_MAP[tif_raw]
    outside_rth = payload.extended_hours
    order_type = payload.order_type
    plan = Plan(kind="bracket", instrument=inst, cancel_first=payload.cancel)

    if order_type == "limit":
        asked = payload.limit_price or payload.price
        if asked is None or asked <= 0:
            raise PlanRejected("a limit entry needs a positive limitPrice")
        entry_price = grid.round(asked, limit_direction(side))
        tick = grid.increment_at(entry_price)
        _require_positive("entry limit", f"limit price {asked} on tick {tick}", entry_price)
        if entry_price != asked:
            plan.notes.append(f"entry limit {asked} rounded to {entry_price} (tick {tick})")
        entry = Leg("entry", side, "LMT", qty, limit_price=entry_price, tif=tif, outside_rth=outside_rth)
        plan.reference_price, plan.reference_source = entry_price, "limit price"
    elif order_type == "market":
        entry = Leg("entry", side, "MKT", qty, tif=tif, outside_rth=outside_rth)
        signal = payload.price
        if signal is not None:
            plan.reference_price, plan.reference_source = signal, "alert price"
        elif market_price is not None:
            plan.reference_price, plan.reference_source = market_price, market_source
    else:
        raise PlanRejected(f"orderType {order_type!r} is not supported yet (market or limit)")
    if plan.reference_price is not None and plan.reference_price <= 0:
        raise PlanRejected(f"reference price must be positive, got {plan.reference_price}")

    ref = plan.reference_price
    tick = grid.increment_at(ref) if ref is not None else inst.min_tick  # the unit of ``ticks`` offsets
    missing = market_source if ref is None and market_source.startswith("no market data") else ""
    children: list[Leg] = []
    tp_spec, sl_spec = payload.take_profit, payload.stop_loss
    if tp_spec is not None:
        raw, how = _offset_price(tp_spec, "takeProfit", ref, tick, sign, missing)
        price = grid.round(raw, limit_direction(exit_side))
        _require_positive("take-profit", how, price)
        if ref is not None and (price - ref) * sign <= 0:
            raise PlanRejected(
                f"take-profit {price} is not {'above' if sign > 0 else 'below'} the entry reference {ref}"
            )
        plan.notes.append(f"take-profit from {how}: {raw} -> {price}")
        children.append(Leg("tp", exit_side, "LMT", qty, limit_price=price, tif=CHILD_TIF,
                            outside_rth=outside_rth, parent_leg="entry"))  # fmt: skip
    if sl_spec is not None:
        if sl_spec.type != "stop":
            raise PlanRejected(f"stopLoss type {sl_spec.type!r} is not supported yet (stop)")
        raw, how = _offset_price(sl_spec, "stopLoss", ref, tick, -sign, missing)
        price = grid.round(raw, protective_stop_direction(exit_side))
        _require_positive("stop-loss", how, price)
        if ref is not None and (ref - price) * sign <= 0:
            raise PlanRejected(
                f"stop-loss {price} is not {'below' if sign > 0 else 'above'} the entry reference {ref}"
            )
        plan.notes.append(f"stop-loss from {how}: {raw} -> {price}")
        children.append(Leg("sl", exit_side, "STP", qty, stop_price=price, tif=CHILD_TIF,
                            outside_rth=outside_rth, parent_leg="entry"))  # fmt: skip
    if children and ref is None:
        raise PlanRejected("no reference price to check the take-profit / stop-loss against")
    # IB's bracket protocol: every leg but the last waits (transmit=False); the last sends them all.
    legs = [entry, *children]
    for leg in legs:  # the last word before IB: no leg leaves with a price at or below zero
        for kind, value in (("limit", leg.limit_price), ("stop", leg.stop_price)):
            if value is not None:
                _require_positive(f"{leg.leg} {kind} price", "the plan", value)
    plan.legs = [
        Leg(**{**leg.__dict__, "transmit": index == len(legs) - 1}) for index, leg in enumerate(legs)
    ]
    return plan


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
    inst: Instrument, side: str, qty: Decimal, payload: AlertPayload, *, leg: str = "close"
) -> Leg:
    """The order that reduces, closes or reverses-by-closing a position: the alert's order type
    (market unless it says ``limit`` with a price), DAY. Its size is whatever the position needs,
    not bounded by ``MAX_ORDER_QUANTITY`` (a ceiling on opening absurd sizes, not on closing)."""
    outside_rth = payload.extended_hours
    if payload.order_type == "limit" and not is_exit(payload):
        asked = payload.limit_price or payload.price
        if asked is None or asked <= 0:
            raise PlanRejected("a limit order needs a positive limitPrice")
        price = inst.grid.round(asked, limit_direction(side))
        _require_positive(
            "close limit", f"limit price {asked} on tick {inst.grid.increment_at(price)}", price
        )
        return Leg(leg, side, "LMT", qty, limit_price=price, tif="DAY", outside_rth=outside_rth)
    return Leg(leg, side, "MKT", qty, tif="DAY", outside_rth=outside_rth)


def protection_prices(legs: list[Leg]) -> dict[str, Decimal]:
    """The exit prices a plan's legs carry: ``tp`` -> limit, ``sl`` -> stop."""
    prices: dict[str, Decimal] = {}
    for leg in legs:
        if leg.leg == "tp" and leg.limit_price is not None:
            prices["tp"] = leg.limit_price
        elif leg.leg == "sl" and leg.stop_price is not None:
            prices["sl"] = leg.stop_price
    return prices
