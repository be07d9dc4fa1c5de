"""A reference price and where it came from (filled by worker/ib/market_data.py; read by the
decision, stored as ``plan["market_data"]``).

``origin`` says whether IB was asked for it: ``stream`` read at once from a market-data
subscription kept open (worker/ib/quote_streams.py), ``snapshot`` IB's answer to a request made for
this quote (a one-off snapshot, or the first round of ticks of a subscription opened for it).
``age`` is how old the price was when read: the seconds since the stream's last update from IB
(at most ``MARKET_DATA_MAX_AGE_SECONDS``), 0 for a price that arrived while the worker waited."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Quote:
    """A reference price and where it came from (``price`` None: none, ``why`` says why)."""

    price: Decimal | None
    source: str  # "IB last price", "IB midpoint price (delayed)", or "no market data: ..."
    data_type: str  # the type that produced the price (live, frozen, delayed, delayed-frozen), or ""
    requested: str  # IB_MARKET_DATA_TYPE
    why: str = ""  # IB's error that made the fall back (or the absence) happen
    origin: str = ""  # "stream" (no round trip) or "snapshot" (IB asked for it); "" without a price
    age: float | None = None  # seconds since IB sent it, when read (None: no price, or stored before)

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as the ``(price, source)`` pair ``Trading.market_price`` used to return."""
        yield self.price
        yield self.source

    def to_json(self) -> dict[str, Any]:
        """``plan["market_data"]``: which data type gave the reference price, and why."""
        doc: dict[str, Any] = {"type": self.data_type or None, "requested": self.requested}
        doc["price"] = None if self.price is None else str(self.price)
        doc["source"] = self.source
        if self.why:
            doc["why"] = self.why
        if self.origin:
            doc["origin"] = self.origin
        if self.age is not None:
            doc["age_seconds"] = round(self.age, 3)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Quote:
        """The quote as :meth:`to_json` stored it (``plan["market_data"]``)."""
        price, age = doc.get("price"), doc.get("age_seconds")
        return cls(None if price is None else Decimal(str(price)), str(doc.get("source") or ""),
                   str(doc.get("type") or ""), str(doc.get("requested") or ""), str(doc.get("why") or ""),
                   str(doc.get("origin") or ""), None if age is None else float(age))  # fmt: skip
