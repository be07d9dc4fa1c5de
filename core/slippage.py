"""Slippage and latency of an alert's fills: what each fill cost against the price it was meant to
get, signed so that **positive is a cost**, and how long after the signal it came. Pure functions
over stored values (the alert's payload and plan, its orders and fills); nothing here reads the
database (core/performance.py loads the rows).

* **The alert's own fills** are those of the orders the alert sent itself: legs ``entry``,
  ``close`` and ``exit`` (a reversal's close and open both). Their reference is the alert's
  price, in TradersPost's order: ``price`` (``signalPrice`` is the same field), else
  ``limitPrice``, else ``stopPrice``. An alert on an option's underlying (``optionType``) gives
  the underlying's chart price, not the option's: its reference is the option's mid the worker
  read when it chose the contract (``plan.option.entry.mid``), else there is none.
* **An exit's fills** (``tp``, ``sl``, and their re-placed ``tp2``, ``sl2``...) are compared with
  that order's own price: a limit's limit price, a stop's trigger (``stop_price``). A trailing
  stop's trigger moves with the market, so it has no fixed reference.
* **Slippage** per unit is the volume-weighted average fill minus the reference for a buy, the
  reference minus it for a sell (fill by fill, so partial fills weigh by their size); in the
  instrument's currency it is that times the quantity times the multiplier
  (``plan.contract.multiplier``; 1 when empty); in basis points, per unit / reference × 10,000.
* **Latency**: from the alert's ``time`` (TradingView's ``{{timenow}}``, whole seconds, the
  sender's clock) and from its arrival at tv2ib (``received_at``) to the first and the last fill
  of the alert's own orders. IB gives an execution's time in whole seconds: when the worker
  recorded the fill less than :data:`LIVE_REPORT` after it (a fill reported live), the recording's
  time (milliseconds, tv2ib's clock) stands for the fill's; otherwise (a fill found after a
  reconnect) IB's. Clocks differ: a negative figure is shown as it is, not hidden.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypedDict

from core.ids import EXIT_LEG

OWN_LEG = re.compile(r"(entry|close|exit)\d*")
BUY_SIDES = frozenset({"BOT", "BUY"})
SELL_SIDES = frozenset({"SLD", "SELL"})
BPS = Decimal(10000)
NO_OPTION_REFERENCE = "no reference price for the option: the alert's price is the underlying's"
NO_ALERT_REFERENCE = "no reference price: the alert gave no price, limitPrice or stopPrice"
TRAILING = "a trailing stop's trigger moves with the market: no fixed reference"
# A fill recorded this soon after IB's (whole-second) execution time was reported live.
LIVE_REPORT = timedelta(seconds=2)


@dataclass(frozen=True)
class FillLine:
    """One execution: its leg (``entry``, ``tp``...), side (BOT / SLD), price, size, IB's time and
    when the worker recorded it."""

    leg: str | None
    side: str
    price: Decimal
    quantity: Decimal
    time: datetime | None = None
    recorded_at: datetime | None = None

    @property
    def at(self) -> datetime | None:
        """When it filled, as precisely as known (see the module docstring)."""
        if self.time is None or self.recorded_at is None:
            return self.time or self.recorded_at
        late = self.recorded_at - self.time
        return self.recorded_at if timedelta(0) <= late < LIVE_REPORT else self.time


@dataclass(frozen=True)
class OrderLine:
    """One order's own prices (an exit's reference)."""

    leg: str
    order_type: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True)
class Reference:
    """The price fills are compared with, where it comes from, or why there is none."""

    price: Decimal | None
    source: str | None = None
    note: str | None = None


class FillCost(TypedDict):
    """What one group of fills cost against its reference price (positive is a cost): the
    alert's own orders against the alert's price, or one exit order against its own price."""

    legs: list[str]
    side: str
    fills: int
    quantity: float
    avg_price: float
    reference_price: float | None
    reference_source: str | None
    note: str | None
    slippage_per_unit: float | None
    slippage: float | None
    slippage_bps: float | None


class FillLatency(TypedDict):
    """Seconds from the alert's ``time`` (signal) and from its arrival to its own fills."""

    signal_time: str | None
    received_at: str | None
    first_fill_at: str | None
    last_fill_at: str | None
    signal_to_arrival_seconds: float | None
    signal_to_fill_seconds: float | None
    arrival_to_fill_seconds: float | None
    signal_to_last_fill_seconds: float | None


class ExecutionDoc(TypedDict):
    """An alert's fills against the prices they were meant to get (slippage, positive is a cost,
    in ``currency`` and in basis points) and their latency; ``alert`` is None when the alert's own
    orders have not filled (an alert whose exits filled still lists them)."""

    currency: str | None
    multiplier: float
    alert: FillCost | None
    exits: list[FillCost]
    latency: FillLatency


def decimal_or_none(value: Any) -> Decimal | None:
    """A positive finite number from stored JSON (a number or numeric text), else None."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number > 0 else None


def alert_reference(payload: Mapping[str, Any] | None, plan: Mapping[str, Any] | None) -> Reference:
    """The price the alert's own fills are compared with (see the module docstring)."""
    payload = payload or {}
    if payload.get("optionType"):
        option = (plan or {}).get("option")
        entry = option.get("entry") if isinstance(option, Mapping) else None
        mid = decimal_or_none(entry.get("mid")) if isinstance(entry, Mapping) else None
        if mid is not None:
            return Reference(mid, "option mid when chosen")
        return Reference(None, note=NO_OPTION_REFERENCE)
    for key in ("price", "limitPrice", "stopPrice"):
        price = decimal_or_none(payload.get(key))
        if price is not None:
            return Reference(price, key)
    return Reference(None, note=NO_ALERT_REFERENCE)


def order_reference(order: OrderLine | None) -> Reference:
    """An exit order's own price: a limit's limit price, a stop's (or stop-limit's) trigger."""
    if order is None:
        return Reference(None, note="the order is not recorded")
    kind = order.order_type.upper()
    if kind.startswith("TRAIL"):
        return Reference(None, note=TRAILING)
    if "STP" in kind and order.stop_price is not None:
        return Reference(order.stop_price, "stop price")
    if order.limit_price is not None:
        return Reference(order.limit_price, "limit price")
    return Reference(None, note=f"a {order.order_type} order has no price to compare with")


def multiplier_of(plan: Mapping[str, Any] | None) -> Decimal:
    """The contract's multiplier from the plan (futures, options); 1 when it names none."""
    contract = (plan or {}).get("contract")
    if not isinstance(contract, Mapping):
        return Decimal(1)
    return decimal_or_none(contract.get("multiplier")) or Decimal(1)


def currency_of(plan: Mapping[str, Any] | None) -> str | None:
    contract = (plan or {}).get("contract")
    currency = contract.get("currency") if isinstance(contract, Mapping) else None
    return str(currency) if currency else None


def _direction(side: str) -> int:
    """+1 for a buy (paying more is a cost), -1 for a sell (getting less is)."""
    upper = side.upper()
    if upper in BUY_SIDES:
        return 1
    if upper in SELL_SIDES:
        return -1
    raise ValueError(f"unknown side {side!r}")


def _side_name(fills: Sequence[FillLine]) -> str:
    names = sorted({"BUY" if _direction(f.side) > 0 else "SELL" for f in fills})
    return "+".join(names)


def _number(value: Decimal, places: int) -> float:
    return float(round(value, places))


def fill_cost(
    fills: Sequence[FillLine], reference: Reference, multiplier: Decimal = Decimal(1)
) -> FillCost | None:
    """The fills' volume-weighted average and their slippage against ``reference`` (positive is a
    cost); None without a fill. No reference: the average, and the reference's note."""
    fills = [f for f in fills if f.quantity > 0]
    if not fills:
        return None
    quantity = sum((f.quantity for f in fills), Decimal(0))
    average = sum((f.price * f.quantity for f in fills), Decimal(0)) / quantity
    doc: FillCost = {
        "legs": sorted({f.leg or "?" for f in fills}),
        "side": _side_name(fills),
        "fills": len(fills),
        "quantity": float(quantity),
        "avg_price": _number(average, 10),
        "reference_price": None if reference.price is None else float(reference.price),
        "reference_source": reference.source,
        "note": reference.note,
        "slippage_per_unit": None,
        "slippage": None,
        "slippage_bps": None,
    }
    if reference.price is None:
        return doc
    # fill by fill: each one's distance from the reference, signed by its side, weighed by its size
    cost = sum((_direction(f.side) * (f.price - reference.price) * f.quantity for f in fills), Decimal(0))
    per_unit = cost / quantity
    doc["slippage_per_unit"] = _number(per_unit, 10)
    doc["slippage"] = _number(cost * multiplier, 6)
    doc["slippage_bps"] = _number(per_unit / reference.price * BPS, 4)
    return doc


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def fill_latency(
    signal_time: datetime | None, received_at: datetime | None, fills: Iterable[FillLine]
) -> FillLatency:
    """Seconds from the signal and from the arrival to the first (and the last) of ``fills``."""
    times = sorted(at for at in (f.at for f in fills) if at is not None)
    first, last = (times[0], times[-1]) if times else (None, None)
    return {
        "signal_time": _iso(signal_time),
        "received_at": _iso(received_at),
        "first_fill_at": _iso(first),
        "last_fill_at": _iso(last),
        "signal_to_arrival_seconds": _seconds(signal_time, received_at),
        "signal_to_fill_seconds": _seconds(signal_time, first),
        "arrival_to_fill_seconds": _seconds(received_at, first),
        "signal_to_last_fill_seconds": _seconds(signal_time, last),
    }


def signal_time_of(stored: datetime | None, payload: Mapping[str, Any] | None) -> datetime | None:
    """The alert's ``time``: the stored column, else the payload's (a fan-out child's)."""
    if stored is not None:
        return stored
    raw = (payload or {}).get("time")
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class AlertRecord:
    """What is stored about one alert, as the computation needs it."""

    payload: Mapping[str, Any] | None
    plan: Mapping[str, Any] | None
    orders: Sequence[OrderLine]
    fills: Sequence[FillLine]
    signal_time: datetime | None = None
    received_at: datetime | None = None


def execution(record: AlertRecord) -> ExecutionDoc | None:
    """The alert's slippage and latency; None when nothing of it has filled."""
    if not record.fills:
        return None
    multiplier = multiplier_of(record.plan)
    own = [f for f in record.fills if OWN_LEG.fullmatch(f.leg or "")]
    orders = {o.leg: o for o in record.orders}
    exits: list[FillCost] = []
    for leg in sorted({f.leg for f in record.fills if EXIT_LEG.fullmatch(f.leg or "")}, key=_leg_order):
        cost = fill_cost(
            [f for f in record.fills if f.leg == leg], order_reference(orders.get(leg or "")), multiplier
        )
        if cost is not None:
            exits.append(cost)
    signal = signal_time_of(record.signal_time, record.payload)
    return {
        "currency": currency_of(record.plan),
        "multiplier": float(multiplier),
        "alert": fill_cost(own, alert_reference(record.payload, record.plan), multiplier),
        "exits": exits,
        "latency": fill_latency(signal, record.received_at, own),
    }


def _leg_order(leg: str | None) -> tuple[str, int, int]:
    """``tp`` < ``tp2`` < ``tp.1`` < ``tp.2`` < ``sl`` ...: by role, then plain before levels."""
    name = leg or ""
    match = EXIT_LEG.fullmatch(name)
    if match is None:
        return name, 0, 0
    digits = name[len(match.group(1)) :]
    if match.group(2):
        return match.group(1), 1, int(match.group(2))
    return match.group(1), 0, int(digits or 1)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
