"""THE normalised alert: :class:`AlertPayload`, made by the webhook schema, stored as JSON in
``Alert.payload``, loaded by the worker. Its field list exists here only: the schema derives the
fields it accepts and the JSON keys from these dataclasses (:func:`json_names`).

The JSON form (``AlertPayload.to_json``) is an object with EVERY top-level key below always present
(``null`` when the alert did not give it), the docs/design.md camelCase names (a field's JSON name is its
Python name in camelCase), enums lower-case, ``ticker``/``exchange`` upper-case::

    ticker          str    upper-case symbol WITHOUT exchange prefix ("NASDAQ:aapl" -> "AAPL"; "ES1!" kept)
    exchange        str|null  the prefix of "EXCHANGE:TICKER", upper-case ("CME_MINI"), else null
    action          str    buy | sell | exit | cancel | add | update (tv2ib's own: move the working
                           stop-loss / take-profit of the position without trading it)
    sentiment       str|null  bullish | bearish | flat  (TradingView's long/short are mapped to bullish/bearish)
    positionSize    num|null  signed target position; wins over quantity (extension)
    prevMarketPosition      str|null  long | short | flat: the strategy's position before this
                              order ({{strategy.prev_market_position}}); compared with IB's position (worker/decision/drift.py)
    prevMarketPositionSize  num|null  >= 0, its size ({{strategy.prev_market_position_size}})
    quantity        num|null  > 0
    quantityType    str|null  fixed_quantity | dollar_amount | risk_dollar_amount | risk_percent |
                              percent_of_equity | percent_of_position   ("fixed_quantity" when quantity
                              is given without a type; the risk types need a stopLoss; the worker
                              sizes all but fixed_quantity, see docs/sizing.md)
    orderType       str    market | limit | stop | stop_limit | trailing_stop   (default "market")
    price           num|null  reference price ({{close}}); ``signalPrice`` is accepted as its alias
    limitPrice      num|null  for limit / stop_limit. A ``limit`` order given only ``price`` keeps
                              limitPrice null: the worker uses limitPrice if set, else price.
    stopPrice       num|null  required for stop / stop_limit
    trailAmount     num|null  } exactly one of the two for trailing_stop
    trailPercent    num|null  }
    takeProfit      obj|null  exactly ONE of {"limitPrice"}, {"percent"}, {"amount"}, {"ticks"} (ticks: int)
    takeProfitLevels  list|null  a take-profit in levels: the alert's ``takeProfit`` given as a list
                              is stored here (and ``takeProfit`` is null); each level is a price as
                              above plus at most one of quantity | quantityPercent (only the last
                              may have neither: the rest). docs/positions.md
    stopLoss        obj|null  {"type": "stop"|"stop_limit"|"trailing_stop" (default "stop"),
                               plus its keys among stopPrice, limitPrice, percent, amount, ticks,
                               trailAmount, trailPercent}. stop: exactly one of stopPrice|percent|amount|ticks;
                               stop_limit: that plus limitPrice; trailing_stop: exactly one of
                               trailAmount|trailPercent. Only the keys given are present.
                               ``breakEven`` (a plain stop only): {"percent"|"amount"|"ticks": the
                               distance in favour that moves the stop to the entry, or
                               "afterTakeProfit": the level (1, 2...) whose fill moves it, plus at
                               most one of offsetTicks|offsetPercent|offsetAmount} (worker/decision/break_even.py)
    timeInForce     str|null  day | gtc | opg | cls | ioc | fok  (null: the worker's default)
    extendedHours   bool   default false
    cancel          bool   default false (cancel working orders for the ticker first)
    test            bool   default false: decided, recorded and shown, nothing sent (TradersPost's
                           ``test``; the risk file's ``dry_run`` for one alert: worker/decision/core.py)
    ignoreTradingWindows  bool  default false: skip the risk file's ``trading_hours`` where the risk
                           file allows it (``allow_ignore_trading_windows``), else the opening is refused
    optionType      str|null  call | put | both: trade options on the underlying (the ticker), chosen by
                              the fields below; null for every other alert. All nine option fields
                              are checked together by core/option_fields.py (``option_request``)
    expiration      str|null  normalised: an ISO date ("2026-03-20") or a time from today ("+6 months",
                              "+1 week"), as ``Expiration.describe`` writes it
    intrinsicValue  str|null  itm | otm  (``instrinsicValue``, TradersPost's spelling, is its alias)
    strikesAway     num|null  whole, 1 to 50
    strikeCount     num|null  whole, 1 to 100
    strikePrice     num|null  > 0
    delta           num|null  above 0 and below 1 in size (0.30, -0.30)
    dteMin          num|null  whole, 0 to 3660 (days to expiry)
    dteMax          num|null  whole, 0 to 3660, not below dteMin
    time            str|null  ISO-8601 in UTC with "Z" ("2026-11-22T07:35:25Z"); {{timenow}}
    account         str|null  routing: the rq queue is keys.queue_name(account). Exception: the stored
                              payload of a fan-out PARENT (status fanned_out, never executed) keeps the
                              list of accounts as sent; each child's has one (app/webhook/fanout.py)
    strategy        str|null
    extras          obj|null  free-form JSON object kept with the alert
    id              str|null  the sender's idempotency key

In Python every number is a :class:`~decimal.Decimal` (exact for tick math). In JSON it is an int
when the alert gave a whole number, else a float whose repr is the shortest exact round-trip of
what was sent; the Decimal keeps that distinction in its exponent (``Decimal(2)`` -> ``2``,
``Decimal("2.0")`` -> ``2.0``), so ``from_json(to_json(p)) == p`` and stored rows read the same.
Every number is finite; prices, amounts and quantities are > 0; stop-loss and trailing percents
are in (0, 100), take-profit percents in (0, 1000] and below 100 for a ``sell`` (its target is
below the entry). ``quantity`` and ``positionSize`` have at most 8 decimals (IB's finest size
increment) and 15 significant digits (they travel to IB as floats), and a fixed quantity is at
most ``MAX_ORDER_QUANTITY``. The secret is never part of the payload, and no field holds it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, get_args

from core.option_fields import FIELDS as OPTION_FIELDS
from core.option_fields import Intrinsic, OptionRequest, OptionType, parse_option_request

Action = Literal["buy", "sell", "exit", "cancel", "add", "update"]
Sentiment = Literal["bullish", "bearish", "flat"]
MarketPosition = Literal["long", "short", "flat"]
QuantityType = Literal[
    "fixed_quantity",
    "dollar_amount",
    "risk_dollar_amount",
    "risk_percent",  # percent of NetLiquidation at risk to the stop-loss (issue 11, worker/decision/sizing.py)
    "percent_of_equity",
    "percent_of_position",
]
OrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]
StopType = Literal["stop", "stop_limit", "trailing_stop"]
TimeInForce = Literal["day", "gtc", "opg", "cls", "ioc", "fok"]

# A float's Decimal must keep a negative exponent so it goes back to JSON as a float (2.0, not 2).
_ONE_DECIMAL = Decimal("0.1")


class PayloadError(ValueError):
    """A stored payload that does not fit :class:`AlertPayload` (the message names the field)."""


def json_name(name: str) -> str:
    """The JSON key of a field: its Python name in camelCase (``stop_price`` -> ``stopPrice``)."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def json_names(cls: type) -> tuple[str, ...]:
    """The JSON keys of a payload dataclass, in field order."""
    return tuple(json_name(f.name) for f in dataclasses.fields(cls))


def number_from_json(value: Any, where: str) -> Decimal:
    """A JSON number as a Decimal that remembers whether it was an int or a float."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise PayloadError(f"{where} is not a finite number")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(f"{where} is not a number: {value!r:.40}")
    if isinstance(value, int):
        return Decimal(value)
    number = Decimal(repr(value))  # the shortest exact round-trip: 0.1 stays 0.1
    if not number.is_finite():
        raise PayloadError(f"{where} is not a finite number")
    if number.as_tuple().exponent >= 0:  # a huge float written as 1e+16
        number = number.quantize(_ONE_DECIMAL)
    return number


def number_to_json(number: Decimal) -> int | float:
    """Back to the JSON number the alert gave: an int for a whole number written without a point."""
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(number)
    return float(number)


Loader = Callable[[Any, str], Any]


@dataclass(frozen=True)
class _Slot:
    """One field of a payload dataclass: its attribute, its JSON key and how to load its value."""

    attr: str
    key: str
    load: Loader
    required: bool


@functools.cache
def _slots(cls: type) -> tuple[_Slot, ...]:
    """The fields of ``cls`` with their loaders, worked out once from the annotations."""
    hints = typing.get_type_hints(cls)
    return tuple(
        _Slot(f.name, json_name(f.name), _loader(hints[f.name]), f.default is dataclasses.MISSING)
        for f in dataclasses.fields(cls)
    )


def _loader(hint: Any) -> Loader:
    """How to turn a JSON value into a field of type ``hint`` (raising PayloadError)."""
    options = get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    nullable = type(None) in options
    kind = next(option for option in options if option is not type(None))
    convert: Loader
    if kind is Decimal:
        convert = number_from_json
    elif typing.get_origin(kind) is Literal:
        choices = get_args(kind)

        def convert(value: Any, where: str) -> Any:
            if value not in choices:
                raise PayloadError(f"{where} must be one of {', '.join(choices)}, got {value!r:.40}")
            return value

    elif dataclasses.is_dataclass(kind):
        nested = typing.cast(type, kind)

        def convert(value: Any, where: str) -> Any:
            return _from_doc(nested, value, f"{where}.")

    elif typing.get_origin(kind) is tuple:
        item = typing.cast(type, get_args(kind)[0])

        def convert(value: Any, where: str) -> Any:
            if not isinstance(value, list | tuple):
                raise PayloadError(f"{where} must be a list")
            return tuple(_from_doc(item, one, f"{where}[{n}].") for n, one in enumerate(value))

    elif kind in (bool, str) or typing.get_origin(kind) is dict:
        expected = typing.get_origin(kind) or kind
        wanted = {bool: "true or false", str: "a string", dict: "a JSON object"}[expected]

        def convert(value: Any, where: str) -> Any:
            if not isinstance(value, expected):
                raise PayloadError(f"{where} must be {wanted}")
            return value

    else:
        raise TypeError(f"no JSON conversion for {hint!r}")  # a field type this module forgot

    def load(value: Any, where: str) -> Any:
        if value is None:
            if not nullable:
                raise PayloadError(f"{where} must not be null")
            return None
        return convert(value, where)

    return load


def _from_doc(cls: type[Any], doc: Any, where: str) -> Any:
    """Build a payload dataclass from its JSON object; missing keys take the field's default."""
    if not isinstance(doc, Mapping):
        raise PayloadError(f"{where.rstrip('.') or 'the payload'} is not a JSON object")
    values: dict[str, Any] = {}
    for slot in _slots(cls):
        if slot.key in doc:
            values[slot.attr] = slot.load(doc[slot.key], where + slot.key)
        elif slot.required:
            raise PayloadError(f"{where}{slot.key} is missing")
    return cls(**values)


def _to_doc(item: Any, *, omit_none: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for slot in _slots(type(item)):
        value = getattr(item, slot.attr)
        if value is None:
            if omit_none:
                continue
        elif isinstance(value, Decimal):
            value = number_to_json(value)
        elif isinstance(value, (TakeProfit, StopLoss, BreakEven)):
            value = value.to_json()
        elif isinstance(value, tuple):
            value = [one.to_json() for one in value]
        elif isinstance(value, dict):
            value = dict(value)
        doc[slot.key] = value
    return doc


@dataclass(frozen=True, kw_only=True)
class TakeProfit:
    """Exactly one of the four is set (the schema checks it); ``ticks`` is whole."""

    limit_price: Decimal | None = None
    percent: Decimal | None = None
    amount: Decimal | None = None
    ticks: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        """Only the keys given."""
        return _to_doc(self, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class TakeProfitLevel(TakeProfit):
    """One level of a take-profit in levels (``takeProfitLevels``): a price as :class:`TakeProfit`
    and a size, ``quantity`` (contracts) or ``quantityPercent`` (of the position), at most one; the
    last level may have none (the rest of the position). worker/decision/levels.py"""

    quantity: Decimal | None = None
    quantity_percent: Decimal | None = None


@dataclass(frozen=True, kw_only=True)
class BreakEven:
    """``stopLoss.breakEven``: once the market has gone ``percent`` (of the entry) / ``amount`` /
    ``ticks`` in the position's favour (exactly one), the stop moves to the entry price plus an
    offset in favour (at most one of ``offsetTicks`` / ``offsetPercent`` / ``offsetAmount``; none:
    the entry itself). Once (worker/decision/break_even.py)."""

    percent: Decimal | None = None
    amount: Decimal | None = None
    ticks: Decimal | None = None
    after_take_profit: Decimal | None = None  # instead of a distance: once this level has filled
    offset_ticks: Decimal | None = None
    offset_percent: Decimal | None = None
    offset_amount: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        """Only the keys given."""
        return _to_doc(self, omit_none=True)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BreakEven:
        """Back from :meth:`to_json` (a protection record's copy); raises :class:`PayloadError`."""
        built: BreakEven = _from_doc(cls, doc, "breakEven.")
        return built


@dataclass(frozen=True, kw_only=True)
class StopLoss:
    """The stop-loss child; which prices are set depends on ``type`` (the schema checks it)."""

    type: StopType = "stop"
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    percent: Decimal | None = None
    amount: Decimal | None = None
    ticks: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    break_even: BreakEven | None = None

    def to_json(self) -> dict[str, Any]:
        """``type`` and the keys given."""
        return _to_doc(self, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class AlertPayload:
    """One validated alert; the field order is the JSON key order."""

    ticker: str
    exchange: str | None = None
    action: Action
    sentiment: Sentiment | None = None
    position_size: Decimal | None = None
    prev_market_position: MarketPosition | None = None
    prev_market_position_size: Decimal | None = None
    quantity: Decimal | None = None
    quantity_type: QuantityType | None = None
    order_type: OrderType = "market"
    price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    take_profit: TakeProfit | None = None
    take_profit_levels: tuple[TakeProfitLevel, ...] | None = None
    stop_loss: StopLoss | None = None
    time_in_force: TimeInForce | None = None
    extended_hours: bool = False
    cancel: bool = False
    test: bool = False
    ignore_trading_windows: bool = False
    option_type: OptionType | None = None
    expiration: str | None = None
    intrinsic_value: Intrinsic | None = None
    strikes_away: Decimal | None = None
    strike_count: Decimal | None = None
    strike_price: Decimal | None = None
    delta: Decimal | None = None
    dte_min: Decimal | None = None
    dte_max: Decimal | None = None
    time: str | None = None
    account: str | None = None
    strategy: str | None = None
    extras: dict[str, Any] | None = None
    id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form (``Alert.payload``): every key present, numbers as the alert gave them."""
        return _to_doc(self, omit_none=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AlertPayload:
        """A stored payload back as typed values; raises :class:`PayloadError` naming the field.

        Keys added after a row was stored (``prevMarketPosition``...) take their defaults, so old
        rows load. Decimals are taken as they are (the schema builds the payload through here)."""
        built: AlertPayload = _from_doc(cls, doc, "")
        return built

    def option_request(self) -> OptionRequest | None:
        """The option the alert asks for, None for an alert on the ticker itself (no option field).
        Raises :class:`PayloadError` for option fields that the schema would have refused."""
        doc = _to_doc(self, omit_none=True)
        closes = self.action in ("exit", "cancel") or self.sentiment == "flat" or self.position_size == 0
        fields = {name: doc[name] for name in OPTION_FIELDS if name in doc}
        request, errors = parse_option_request(fields, opens=not closes)
        if errors:
            raise PayloadError("; ".join(str(error) for error in errors))
        return request
