"""The decision's vocabulary: the contract it trades, the orders it sends, the plan they form.

Plain values (no IB, no database): :class:`Instrument` is what IB's contract details say about a
qualified contract (worker/ib/translate.py builds it), :class:`Leg` one order to send, :class:`Plan`
the planner's legs with their reference price and notes. Their JSON is what ``Alert.plan`` stores
(worker/decision/stored.py): a rerun sends exactly what was decided.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from worker.decision.numbers import decimal_of
from worker.decision.rounding import PriceGrid
from worker.errors import Refused

# Children live until they fill or the operator cancels them: a DAY stop-loss would expire at the
# close and leave an open position unprotected overnight.
CHILD_TIF = "GTC"
# Reduce the sibling by the filled quantity, with IB's overfill protection ("with block"): a partly
# filled take-profit leaves the stop-loss protecting exactly the rest of the position.
OCA_TYPE = 2


def present(**parts: Any) -> dict[str, Any]:
    """The JSON parts that are there, in order: an absent (None) part is left out, not null."""
    return {key: value for key, value in parts.items() if value is not None}


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

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Instrument:
        """The instrument as :meth:`to_json` stored it (a decided alert's ``contract``)."""
        return cls(
            con_id=int(doc["con_id"]),
            symbol=str(doc["symbol"]),
            sec_type=str(doc["sec_type"]),
            exchange=str(doc["exchange"]),
            currency=str(doc["currency"]),
            local_symbol=str(doc["local_symbol"]),
            min_tick=Decimal(str(doc["min_tick"])),
            min_size=Decimal(str(doc.get("min_size", 1))),
            size_increment=Decimal(str(doc.get("size_increment", 1))),
            multiplier=str(doc.get("multiplier") or ""),
            price_bands=tuple(
                (Decimal(str(low)), Decimal(str(inc))) for low, inc in doc.get("price_bands") or ()
            ),
        )


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
        return cls(
            leg=doc["leg"],
            action=doc["action"],
            order_type=doc["order_type"],
            quantity=Decimal(str(doc["quantity"])),
            limit_price=decimal_of(doc.get("limit_price")),
            stop_price=decimal_of(doc.get("stop_price")),
            tif=doc.get("tif") or "DAY",
            outside_rth=bool(doc.get("outside_rth")),
            transmit=bool(doc.get("transmit", True)),
            parent_leg=doc.get("parent_leg"),
            trail_amount=decimal_of(doc.get("trail_amount")),
            trail_percent=decimal_of(doc.get("trail_percent")),
            trail_stop_price=decimal_of(doc.get("trail_stop_price")),
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
