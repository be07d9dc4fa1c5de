"""The order-type rules: which IB order an alert's ``orderType``, ``stopLoss.type``,
``timeInForce`` and ``extendedHours`` become (pure logic; docs/orders.md is the trader's table).

The planner (worker/decision/planner.py) builds the legs with these rules; the IB layer
(worker/ib/exit_changes.py, worker/ib/exit_orders.py) and the protective-order guard (worker/execution/guard.py) use :class:`ExitOrder` to
place, resize and re-price a position's exits without changing their kind: a trailing stop-loss
the guard re-attaches or the executor shrinks stays a TRAIL with its trail (docs/design.md invariant 7
is about sizes; this module keeps the terms).

Decisions (the issue is silent on them; docs/orders.md says the same to traders):

* **timeInForce** ``day`` / ``gtc`` / ``ioc`` / ``fok`` are IB's TIFs of the same name; ``opg`` is
  IB's OPG TIF (a market order becomes market-on-open, a limit order limit-on-open) and ``cls``
  has no IB TIF: a market order becomes IB's MOC order type, a limit order LOC (both DAY). Both
  auction TIFs are for market and limit orders only, and never with ``extendedHours`` (an auction
  is not outside regular hours): anything else is refused with the reason. A bracket's children
  stay GTC whatever the entry's TIF (worker/decision/planner.py ``CHILD_TIF``).
* **extendedHours** sets ``outsideRth`` on every leg. IB does not trigger plain stop orders
  outside regular hours and holds (or refuses) market orders there, so tv2ib never sends those
  with ``extendedHours``: a stop (entry or stop-loss) becomes a stop-limit whose limit is
  ``EXTENDED_HOURS_STOP_LIMIT_TICKS`` ticks beyond the stop (the side that still fills when the
  price gaps through it), and a market order becomes a marketable limit at the reference price
  plus (BUY) or minus (SELL) the same number of ticks. A trailing stop (entry or stop-loss) with
  ``extendedHours`` is refused (IB's TRAIL does not trigger outside regular hours either, and
  tv2ib does not send TRAIL LIMIT). The plan's notes say what was converted and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.decision.numbers import decimal_of
from worker.errors import Refused

# The limit of a stop converted for extended hours sits this many ticks beyond the stop: far
# enough to fill in a thin pre-market book, near enough not to sell at any price (AAPL: 0.10 USD;
# ES: 2.50 points). EXTENDED_HOURS_STOP_LIMIT_TICKS overrides it.
DEFAULT_EXTENDED_HOURS_STOP_LIMIT_TICKS = 10

TIME_IN_FORCE = {"day": "DAY", "gtc": "GTC", "ioc": "IOC", "fok": "FOK", "opg": "OPG"}
# timeInForce cls: IB has no close TIF; the market-on-close / limit-on-close ORDER TYPES are it
ON_CLOSE_TYPE = {"MKT": "MOC", "LMT": "LOC"}
STOP_LOSS_TYPES = {"stop": "STP", "stop_limit": "STP LMT", "trailing_stop": "TRAIL"}
EXIT_DEFAULT_TYPE = {"tp": "LMT", "sl": "STP"}


class OrderTypeRefused(Refused):
    """The alert asks for an order type / TIF / session combination IB (or tv2ib) cannot carry."""


@dataclass(frozen=True)
class OrderRules:
    """The settings the order-type rules read (passed in by the executor; no globals)."""

    extended_hours_stop_limit_ticks: int = DEFAULT_EXTENDED_HOURS_STOP_LIMIT_TICKS

    def __post_init__(self) -> None:
        if self.extended_hours_stop_limit_ticks < 1:
            raise ValueError(
                f"extended_hours_stop_limit_ticks must be at least 1, got {self.extended_hours_stop_limit_ticks}"
            )

    def extended_hours_offset(self, tick: Decimal) -> Decimal:
        """The distance between a stop and its limit (or a reference and a marketable limit)."""
        return self.extended_hours_stop_limit_ticks * tick


@dataclass(frozen=True)
class ExitOrder:
    """How one protective exit goes to IB beyond its price and size (kept in the protection spec).

    ``order_type``: ``LMT`` (take-profit), ``STP``, ``STP LMT`` or ``TRAIL`` (stop-loss). The price
    the spec keeps next to it (``prices[role]``) is the limit of a take-profit, the stop of a STP /
    STP LMT and the initial stop of a TRAIL; ``limit_price`` is a STP LMT's limit; a TRAIL has
    exactly one of ``trail_amount`` (IB's ``auxPrice``) and ``trail_percent`` (``trailingPercent``).
    """

    order_type: str
    limit_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    outside_rth: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"order_type": self.order_type}
        for key in ("limit_price", "trail_amount", "trail_percent"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = str(value)
        if self.outside_rth:
            doc["outside_rth"] = True
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ExitOrder:
        return cls(
            order_type=str(doc["order_type"]),
            limit_price=decimal_of(doc.get("limit_price")),
            trail_amount=decimal_of(doc.get("trail_amount")),
            trail_percent=decimal_of(doc.get("trail_percent")),
            outside_rth=bool(doc.get("outside_rth")),
        )

    def same_trail(self, trail_amount: Decimal | None, trail_percent: Decimal | None) -> bool:
        """True when a working TRAIL already trails as this one asks."""
        return (self.trail_amount, self.trail_percent) == (trail_amount, trail_percent)


def default_exit_order(role: str) -> ExitOrder:
    """The terms of an exit whose spec predates order types (only prices stored): LMT / STP."""
    return ExitOrder(EXIT_DEFAULT_TYPE[role])


def time_in_force(raw: str | None, ib_type: str, *, extended_hours: bool) -> tuple[str, str]:
    """``(order type, tif)`` for an order of ``ib_type`` with the alert's ``timeInForce``
    (None: DAY). ``cls`` turns MKT into MOC and LMT into LOC; ``opg`` keeps the type with IB's OPG
    TIF. Raises :class:`OrderTypeRefused` for an auction TIF on another type or with extended hours."""
    name = raw or "day"
    if name in ("opg", "cls"):
        when = "the opening auction" if name == "opg" else "the closing auction"
        if ib_type not in ON_CLOSE_TYPE:
            raise OrderTypeRefused(
                f"timeInForce {name} ({when}) is for market and limit orders; IB has no {ib_type} "
                f"order {'on the open' if name == 'opg' else 'on the close'}"
            )
        if extended_hours:
            raise OrderTypeRefused(
                f"timeInForce {name} trades in {when}, inside regular hours: drop extendedHours"
            )
        if name == "cls":
            return ON_CLOSE_TYPE[ib_type], "DAY"
        return ib_type, "OPG"
    if name not in TIME_IN_FORCE:
        raise OrderTypeRefused(f"timeInForce {name!r} is not supported (day, gtc, ioc, fok, opg, cls)")
    return ib_type, TIME_IN_FORCE[name]


def refuse_trailing_outside_rth(what: str) -> None:
    """IB's TRAIL does not trigger outside regular hours and tv2ib sends no TRAIL LIMIT."""
    raise OrderTypeRefused(
        f"{what} with extendedHours: IB does not trigger trailing stops outside regular trading "
        "hours (tv2ib does not send TRAIL LIMIT); use a stop or stop_limit, or drop extendedHours"
    )
