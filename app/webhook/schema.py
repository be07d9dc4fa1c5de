"""Alert validation and normalisation (marshmallow): what the worker plans from.

The normalised payload contract (``Alert.payload``, written by intake, read by the worker) is
:class:`core.payload.AlertPayload`: its docstring lists every field. The fields accepted here, the
JSON keys and the choices are derived from it; this module adds only the validation rules.

Input rules: numbers may arrive as numeric strings; enums are case-insensitive; unknown fields
(top level and inside takeProfit/stopLoss) are refused with a "did you mean" hint; any string
still holding a TradingView placeholder ``{{...}}`` is refused naming the placeholder.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema

from core.account_ids import account_id_problem
from core.payload import (
    Action,
    AlertPayload,
    MarketPosition,
    OrderType,
    QuantityType,
    Sentiment,
    StopLoss,
    StopType,
    TakeProfit,
    TimeInForce,
    json_names,
    number_from_json,
)

MAX_ABS_NUMBER = Decimal("1e12")
# Order sizes: IB's finest size increment is 0.00000001 (crypto); sizes travel to IB as floats,
# exact to 15 significant digits.
SIZE_DECIMALS = 8
SIZE_DIGITS = 15
MAX_NESTING = 16
# Bounds on the work and the size of error reports an authenticated but broken alert can cause.
MAX_REPORTED_UNKNOWN = 20
MAX_HINTED_NAME = 64
PLACEHOLDER_RE = re.compile(r"\{\{[^{}]{0,200}\}\}")
# \Z, not $: "$" also matches before a trailing newline, so "NASDAQ\n" would pass as an exchange.
TICKER_RE = re.compile(r"^[A-Z0-9][A-Z0-9._!/&-]{0,31}\Z")
EXCHANGE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,31}\Z")
# A fan-out writes one child row per account before the answer: a bound on that work.
MAX_FANOUT_ACCOUNTS = 20

ACTIONS: tuple[str, ...] = get_args(Action)
SENTIMENTS: tuple[str, ...] = get_args(Sentiment)
SENTIMENT_ALIASES = {"long": "bullish", "short": "bearish"}
MARKET_POSITIONS: tuple[str, ...] = get_args(MarketPosition)
QUANTITY_TYPES: tuple[str, ...] = get_args(QuantityType)
ORDER_TYPES: tuple[str, ...] = get_args(OrderType)
STOP_TYPES: tuple[str, ...] = get_args(StopType)
TIME_IN_FORCE: tuple[str, ...] = get_args(TimeInForce)

# Every field list comes from core.payload's dataclasses.
PAYLOAD_KEYS = json_names(AlertPayload)
# Accepted names that are not payload keys: an alias, folded into the payload key it names.
INPUT_ALIASES = {"signalPrice": "price"}
# Payload keys an alert does not send: ``exchange`` is the prefix of ``ticker``.
DERIVED_KEYS = frozenset({"exchange"})
TOP_LEVEL_FIELDS = (
    "secret",
    *(
        name
        for key in PAYLOAD_KEYS
        if key not in DERIVED_KEYS
        for name in (key, *(alias for alias, target in INPUT_ALIASES.items() if target == key))
    ),
)
TAKE_PROFIT_FIELDS = json_names(TakeProfit)
STOP_LOSS_FIELDS = json_names(StopLoss)


def decimal_places(number: Decimal) -> int:
    """Decimals of ``number`` as written, trailing zeros aside ("1.50" -> 1); exact at any size."""
    _, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing)


def significant_digits(number: Decimal) -> int:
    """Digits between the first and the last non-zero digit ("0.00120" -> 2; "1200" -> 2)."""
    text = "".join(map(str, number.as_tuple().digits)).strip("0")
    return len(text)


class Number(fields.Field):
    """A finite number from a JSON number or a numeric string; booleans are refused.

    Returns a Decimal that remembers the JSON number the payload stores (an int when a whole
    number was written without a point, else the float's shortest round-trip; see core.payload).
    ``below`` is a strict upper bound, ``max_value`` and ``at_least`` inclusive bounds; ``max_decimals`` (with
    :data:`SIZE_DIGITS` significant digits) is for order sizes, which IB takes with limited
    precision."""

    def __init__(
        self,
        *,
        positive: bool = True,
        max_value: Decimal | None = None,
        below: Decimal | None = None,
        at_least: Decimal | None = None,
        integer: bool = False,
        max_decimals: int | None = None,
        **kw: Any,
    ):
        super().__init__(**kw)
        self.positive = positive
        self.max_value = max_value
        self.below = below
        self.at_least = at_least
        self.integer = integer
        self.max_decimals = max_decimals

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValidationError("must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"must be a finite number of at most {MAX_ABS_NUMBER:,.0f}")
        text = value.strip().replace("_", "x") if isinstance(value, str) else repr(value)
        try:
            # via the text, so a float keeps the digits that were sent (0.1, not 0.1000000000000000055)
            number = Decimal(text)
        except (InvalidOperation, ValueError):
            raise ValidationError(f"must be a number, got {value!r:.40}") from None
        if not number.is_finite() or abs(number) > MAX_ABS_NUMBER:
            raise ValidationError(f"must be a finite number of at most {MAX_ABS_NUMBER:,.0f}")
        if self.positive and number <= 0:
            raise ValidationError("must be greater than 0")
        if self.at_least is not None and number < self.at_least:
            raise ValidationError(f"must be at least {self.at_least}")
        if self.max_value is not None and number > self.max_value:
            raise ValidationError(f"must be at most {self.max_value}")
        if self.below is not None and number >= self.below:
            raise ValidationError(f"must be below {self.below}")
        if self.max_decimals is not None:
            if decimal_places(number) > self.max_decimals:
                raise ValidationError(
                    f"has more than {self.max_decimals} decimals; IB takes sizes to "
                    f"{self.max_decimals} decimals at most"
                )
            if significant_digits(number) > SIZE_DIGITS:
                raise ValidationError(f"has more than {SIZE_DIGITS} significant digits")
        whole = number == number.to_integral_value()
        if self.integer and not whole:
            raise ValidationError("must be a whole number")
        if whole and (self.integer or "." not in text and "e" not in text.lower()):
            return number_from_json(int(number), self.name or "number")
        result = float(number)
        if number != 0 and result == 0:  # "1e-400": a tiny exponent that no float can hold
            raise ValidationError("is too close to 0 to be a price or a size")
        # what the stored JSON will say (a float), as a Decimal that goes back to it exactly
        return number_from_json(result, self.name or "number")


class Choice(fields.Field):
    """A case-insensitive enum value, returned lower-case."""

    def __init__(self, choices: tuple[str, ...], aliases: Mapping[str, str] | None = None, **kw: Any):
        super().__init__(**kw)
        self.choices = choices
        self.aliases = aliases or {}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"must be one of {', '.join(self.choices)}")
        lowered = value.strip().lower()
        lowered = self.aliases.get(lowered, lowered)
        if lowered not in self.choices:
            hint = []
            if len(lowered) <= MAX_HINTED_NAME:
                hint = difflib.get_close_matches(lowered, self.choices, n=1, cutoff=0.6)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValidationError(f"must be one of {', '.join(self.choices)}, got {value!r:.40}{extra}")
        return lowered


class Flag(fields.Field):
    """A boolean from true/false or the strings TradingView users quote ("true", "1", "yes")."""

    TRUE = {"true", "1", "yes", "on"}
    FALSE = {"false", "0", "no", "off", ""}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in self.TRUE | self.FALSE:
            return value.strip().lower() in self.TRUE
        raise ValidationError("must be true or false")


class Text(fields.Field):
    """A short string (numbers are accepted and turned into strings, e.g. an ``id`` of 42)."""

    def __init__(self, *, max_length: int, pattern: re.Pattern[str] | None = None, **kw: Any):
        super().__init__(**kw)
        self.max_length = max_length
        self.pattern = pattern

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError("must be a string")
        text = str(value).strip()
        if not text:
            raise ValidationError("must not be empty")
        if len(text) > self.max_length:
            raise ValidationError(f"must be at most {self.max_length} characters")
        if self.pattern is not None and not self.pattern.match(text):
            raise ValidationError("contains characters that are not allowed (letters, digits, _ . - only)")
        return text


class Accounts(fields.Field):
    """``account``: one IB account id, or a list of them (a fan-out: one child alert per account).

    Returns the string, or a tuple of distinct ids for a list. A one-element list is that account
    (no fan-out). Each id is an account id by core/account_ids.py (``default`` is not one); an
    account named twice is refused rather than guessed at (two orders for one account, or one?)."""

    def __init__(self, *, max_accounts: int, **kw: Any):
        super().__init__(**kw)
        self.max_accounts = max_accounts

    def one(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError("must be a string")
        text = str(value).strip()
        problem = account_id_problem(text)
        if problem is not None:
            raise ValidationError(problem)
        return text

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | tuple[str, ...]:
        if not isinstance(value, list):
            return self.one(value)
        if not value:
            raise ValidationError("an empty list names no account; give one account or several")
        if len(value) > self.max_accounts:
            raise ValidationError(f"at most {self.max_accounts} accounts in one alert, got {len(value)}")
        accounts: list[str] = []
        for position, item in enumerate(value):
            try:
                account = self.one(item)
            except ValidationError as exc:
                raise ValidationError(f"item {position + 1}: {exc.messages[0]}") from None
            if account in accounts:
                raise ValidationError(f"names account {account} twice; name each account once")
            accounts.append(account)
        return accounts[0] if len(accounts) == 1 else tuple(accounts)


class Ticker(fields.Field):
    """``AAPL`` or ``EXCHANGE:TICKER``; returns (exchange or None, ticker), upper-case."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str | None, str]:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("must be a symbol such as AAPL, NASDAQ:AAPL or ES1!")
        exchange, sep, ticker = value.strip().upper().rpartition(":")
        if sep and not EXCHANGE_RE.match(exchange):
            raise ValidationError(f"exchange prefix {exchange[:40]!r} is not a valid exchange name")
        if not TICKER_RE.match(ticker):
            raise ValidationError(
                "must be a symbol of letters, digits and . _ ! / & - (at most 32 characters), "
                f"got {value.strip()[:40]!r}"
            )
        return (exchange or None), ticker


class Timestamp(fields.Field):
    """ISO-8601 (``{{timenow}}``); returned as UTC ISO text with ``Z``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or len(value) > 64:
            raise ValidationError("must be an ISO-8601 time such as 2026-11-22T07:35:25Z")
        try:
            parsed = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("must be an ISO-8601 time such as 2026-11-22T07:35:25Z") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # TradingView's times are UTC
        return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


class TakeProfitSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # unknown keys are reported by check_unknown with a hint

    limitPrice = Number()  # noqa: N815 - the payload's own spelling
    percent = Number(max_value=Decimal(1000))
    amount = Number()
    ticks = Number(integer=True)

    @validates_schema
    def exactly_one(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len(data) != 1:
            raise ValidationError(
                "give exactly one of limitPrice, percent, amount or ticks", field_name="_schema"
            )


class StopLossSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    type = Choice(STOP_TYPES, load_default="stop")
    stopPrice = Number()  # noqa: N815
    limitPrice = Number()  # noqa: N815
    # 100 % below a long's entry is a stop at 0: never a valid order
    percent = Number(below=Decimal(100))
    amount = Number()
    ticks = Number(integer=True)
    trailAmount = Number()  # noqa: N815
    trailPercent = Number(below=Decimal(100))  # noqa: N815

    @validates_schema
    def forms(self, data: dict[str, Any], **kwargs: Any) -> None:
        stop_forms = [k for k in ("stopPrice", "percent", "amount", "ticks") if k in data]
        trail_forms = [k for k in ("trailAmount", "trailPercent") if k in data]
        kind = data.get("type", "stop")
        if kind == "trailing_stop":
            if len(trail_forms) != 1 or stop_forms or "limitPrice" in data:
                raise ValidationError(
                    "a trailing_stop stop-loss needs exactly one of trailAmount or trailPercent"
                )
            return
        if trail_forms:
            raise ValidationError(f"trailAmount/trailPercent need type trailing_stop, not {kind}")
        if len(stop_forms) != 1:
            raise ValidationError("give exactly one of stopPrice, percent, amount or ticks")
        if kind == "stop_limit" and "limitPrice" not in data:
            raise ValidationError("a stop_limit stop-loss needs limitPrice too")
        if kind == "stop" and "limitPrice" in data:
            raise ValidationError("limitPrice needs type stop_limit")


class AlertSchema(Schema):
    """Validates one alert (the secret already removed) into the normalised payload."""

    class Meta:
        unknown = EXCLUDE  # unknown keys are reported by check_unknown with a hint

    id = Text(max_length=128)
    ticker = Ticker(required=True)
    action = Choice(ACTIONS, required=True)
    sentiment = Choice(SENTIMENTS, aliases=SENTIMENT_ALIASES)
    positionSize = Number(positive=False, max_decimals=SIZE_DECIMALS)  # noqa: N815
    prevMarketPosition = Choice(MARKET_POSITIONS)  # noqa: N815
    prevMarketPositionSize = Number(positive=False, at_least=Decimal(0))  # noqa: N815
    quantity = Number(max_decimals=SIZE_DECIMALS)
    quantityType = Choice(QUANTITY_TYPES)  # noqa: N815
    orderType = Choice(ORDER_TYPES, load_default="market")  # noqa: N815
    price = Number()
    signalPrice = Number()  # noqa: N815
    limitPrice = Number()  # noqa: N815
    stopPrice = Number()  # noqa: N815
    trailAmount = Number()  # noqa: N815
    trailPercent = Number(below=Decimal(100))  # noqa: N815
    takeProfit = fields.Nested(TakeProfitSchema)  # noqa: N815
    stopLoss = fields.Nested(StopLossSchema)  # noqa: N815
    timeInForce = Choice(TIME_IN_FORCE)  # noqa: N815
    extendedHours = Flag(load_default=False)  # noqa: N815
    cancel = Flag(load_default=False)
    time = Timestamp()
    account = Accounts(max_accounts=MAX_FANOUT_ACCOUNTS)
    strategy = Text(max_length=128)
    extras = fields.Dict()

    @validates_schema
    def cross_field(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        kind = data.get("orderType", "market")
        if kind == "limit" and "limitPrice" not in data and "price" not in data and "signalPrice" not in data:
            errors.setdefault("limitPrice", []).append("a limit order needs limitPrice (or price)")
        if kind in ("stop", "stop_limit") and "stopPrice" not in data:
            errors.setdefault("stopPrice", []).append(f"a {kind} order needs stopPrice")
        if kind == "stop_limit" and "limitPrice" not in data:
            errors.setdefault("limitPrice", []).append("a stop_limit order needs limitPrice")
        if kind == "trailing_stop" and ("trailAmount" in data) == ("trailPercent" in data):
            errors.setdefault("trailAmount", []).append(
                "a trailing_stop order needs exactly one of trailAmount or trailPercent"
            )
        qtype = data.get("quantityType")
        if qtype and "quantity" not in data:
            errors.setdefault("quantity", []).append("quantityType needs a quantity")
        if (
            qtype in ("percent_of_equity", "percent_of_position", "risk_percent")
            and data.get("quantity", 0) > 100
        ):
            errors.setdefault("quantity", []).append("a percentage must be at most 100")
        if qtype in ("risk_dollar_amount", "risk_percent") and "stopLoss" not in data:
            # sizing (issue 11): the risk is the distance from the entry to the stop-loss
            errors.setdefault("stopLoss", []).append(
                f"quantityType {qtype} needs a stopLoss to size the risk"
            )
        errors.update(_offsets_past_zero(data))
        if errors:
            raise ValidationError(errors)


def _offsets_past_zero(data: dict[str, Any]) -> dict[str, Any]:
    """Exits that would land at or below 0: a sell's take-profit or a buy's stop-loss (both below
    the entry) given as a percent of 100 or more, or an amount not below the alert's reference
    price (the limit price of a limit entry, else ``price``; the planner's reference)."""
    below_entry = {"sell": "takeProfit", "buy": "stopLoss"}.get(data.get("action", ""))
    spec = data.get(below_entry) if below_entry else None
    if not isinstance(spec, dict):
        return {}
    side = "short's take-profit" if below_entry == "takeProfit" else "long's stop-loss"
    if spec.get("percent", 0) >= 100:
        message = f"a {side} is below the entry: a percent of 100 or more puts it at or below 0"
        return {below_entry: {"percent": [message]}}
    reference = data.get("price", data.get("signalPrice"))
    if data.get("orderType") == "limit":
        reference = data.get("limitPrice", reference)
    amount = spec.get("amount")
    if amount is not None and reference is not None and amount >= reference:
        message = f"a {side} is below the entry: {amount} from {reference} puts it at or below 0"
        return {below_entry: {"amount": [message]}}
    return {}


def _check_fields(schema: type[Schema], expected: tuple[str, ...]) -> None:
    """The marshmallow rules cover exactly the payload's fields (core.payload): a field added there
    without a rule here, or the other way round, stops the import instead of being ignored."""
    declared = set(schema().fields)
    if declared != set(expected):
        raise RuntimeError(
            f"{schema.__name__} does not match core.payload: missing rules for "
            f"{sorted(set(expected) - declared)}, rules for unknown fields {sorted(declared - set(expected))}"
        )


_check_fields(AlertSchema, TOP_LEVEL_FIELDS[1:])
_check_fields(TakeProfitSchema, TAKE_PROFIT_FIELDS)
_check_fields(StopLossSchema, STOP_LOSS_FIELDS)
_SCHEMA = AlertSchema()


# Names other webhook tools use for our fields.
ALIASES = {
    "qty": "quantity",
    "contracts": "quantity",
    "size": "quantity",
    "side": "action",
    "symbol": "ticker",
    "tp": "takeProfit",
    "sl": "stopLoss",
    "type": "orderType",
    "tif": "timeInForce",
}


def _hint(name: str, known: tuple[str, ...], fallback: str = "put free-form data in 'extras'") -> str:
    lowered = {k.lower(): k for k in known}
    match = lowered.get(name.lower().replace("_", "").replace("-", ""))
    if match is None and ALIASES.get(name.lower()) in known:
        match = ALIASES[name.lower()]
    if match is None and len(name) <= MAX_HINTED_NAME:  # difflib's cost grows with the length
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        match = close[0] if close else None
    if match is not None:
        return f"unknown field; did you mean {match!r}?"
    return f"unknown field; {fallback}"


def check_unknown(alert: Mapping[str, Any]) -> dict[str, Any]:
    """Errors for unknown keys at the top level and inside takeProfit / stopLoss."""
    errors: dict[str, Any] = {}
    unknown = [str(key) for key in alert if key not in TOP_LEVEL_FIELDS]
    for key in unknown[:MAX_REPORTED_UNKNOWN]:
        errors[key[:MAX_HINTED_NAME]] = [_hint(key, TOP_LEVEL_FIELDS[1:])]
    if len(unknown) > MAX_REPORTED_UNKNOWN:
        errors["_unknown"] = [f"{len(unknown) - MAX_REPORTED_UNKNOWN} more unknown fields not listed"]
    for parent, known in (("takeProfit", TAKE_PROFIT_FIELDS), ("stopLoss", STOP_LOSS_FIELDS)):
        nested = alert.get(parent)
        if isinstance(nested, Mapping):
            fallback = f"{parent} takes {', '.join(known)}"
            for key in [str(k) for k in nested if k not in known][:MAX_REPORTED_UNKNOWN]:
                errors.setdefault(parent, {})[key[:MAX_HINTED_NAME]] = [_hint(key, known, fallback)]
    return errors


def find_placeholders(value: Any) -> list[str]:
    """TradingView ``{{...}}`` placeholders left unexpanded anywhere in ``value`` (strings only)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.extend(PLACEHOLDER_RE.findall(item))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(set(found))


def nesting_depth(value: Any) -> int:
    """Depth of nested objects/arrays, computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            return deepest
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _add_error(errors: dict[str, Any], key: str, message: str) -> None:
    """Add ``message`` for ``key``; a nested field already holding sub-errors gets it as ``_schema``."""
    current = errors.setdefault(key, [])
    if isinstance(current, dict):
        current.setdefault("_schema", []).append(message)
    else:
        current.append(message)


@dataclass(frozen=True)
class Normalised:
    """A valid alert: its payload, and the accounts it fans out to when it named several.

    ``payload.account`` is None for a fan-out (``accounts`` then holds two or more ids, in the
    order given); a child's payload is ``payload`` with one of them as its account."""

    payload: AlertPayload
    accounts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The stored payload: a fan-out parent keeps the list it was sent (``"account": [..]``), so
        its idempotency key differs from the same alert without an account and a replay fans out again."""
        doc = self.payload.to_json()
        if self.accounts:
            doc["account"] = list(self.accounts)
        return doc


def normalise_alert(
    alert: Mapping[str, Any], *, max_quantity: Decimal | None = None
) -> tuple[Normalised | None, dict[str, Any]]:
    """Validate an alert object (without ``secret``); returns (normalised, {}) or (None, field errors).

    Every problem is reported at once: unknown fields with hints, unfilled placeholders by name,
    then the schema's type, range and cross-field rules for the remaining fields. ``max_quantity``
    (``MAX_ORDER_QUANTITY``) bounds a fixed ``quantity`` and the size of ``positionSize``.
    """
    errors = check_unknown(alert)
    data = {k: v for k, v in alert.items() if k in TOP_LEVEL_FIELDS and k != "secret"}
    for key, value in list(data.items()):
        holders = find_placeholders(value)
        if holders:
            names = ", ".join(holders)
            noun = "placeholder" if len(holders) == 1 else "placeholders"
            verb = "was" if len(holders) == 1 else "were"
            _add_error(errors, key, f"the {noun} {names} {verb} not filled in")
            del data[key]
        elif nesting_depth(value) > MAX_NESTING:
            _add_error(errors, key, f"nested deeper than {MAX_NESTING} levels")
            del data[key]
    try:
        loaded = _SCHEMA.load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        for key, problems in messages.items():
            if key not in errors:
                errors[key] = problems
            elif isinstance(errors[key], list) and isinstance(problems, list):
                errors[key].extend(problems)
            elif isinstance(errors[key], dict) and isinstance(problems, dict):
                errors[key].update(problems)
        loaded = None
    if loaded is not None and max_quantity is not None:
        errors.update(_over_ceiling(loaded, max_quantity))
    required_missing = [k for k in ("ticker", "action") if k in errors and k not in data and k not in alert]
    for key in required_missing:
        errors[key] = ["this field is required"]
    if errors or loaded is None:
        return None, errors
    accounts = loaded.pop("account") if isinstance(loaded.get("account"), tuple) else ()
    return Normalised(_to_payload(loaded), accounts), {}


def normalise(
    alert: Mapping[str, Any], *, max_quantity: Decimal | None = None
) -> tuple[AlertPayload | None, dict[str, Any]]:
    """:func:`normalise_alert` for an alert that goes to one account (or none): the payload the
    worker executes. A list of several accounts is a field error here; only intake fans out."""
    result, errors = normalise_alert(alert, max_quantity=max_quantity)
    if result is None:
        return None, errors
    if result.accounts:
        return None, {"account": ["names several accounts: a fan-out, which only the webhook makes"]}
    return result.payload, {}


def _over_ceiling(loaded: Mapping[str, Any], max_quantity: Decimal) -> dict[str, Any]:
    """Sizes above ``MAX_ORDER_QUANTITY`` (dollar and percent quantities are not sizes)."""
    errors: dict[str, Any] = {}
    message = f"must be at most MAX_ORDER_QUANTITY ({max_quantity}), a guard against absurd sizes"
    fixed = loaded.get("quantityType", "fixed_quantity") == "fixed_quantity"
    if fixed and "quantity" in loaded and Decimal(str(loaded["quantity"])) > max_quantity:
        errors["quantity"] = [message]
    if "positionSize" in loaded and abs(Decimal(str(loaded["positionSize"]))) > max_quantity:
        errors["positionSize"] = ["its size " + message]
    return errors


def _to_payload(loaded: dict[str, Any]) -> AlertPayload:
    exchange, ticker = loaded.pop("ticker")
    for alias, key in INPUT_ALIASES.items():
        if alias in loaded:
            value = loaded.pop(alias)
            loaded.setdefault(key, value)
    if loaded.get("quantity") is not None and not loaded.get("quantityType"):
        loaded["quantityType"] = "fixed_quantity"
    loaded["ticker"], loaded["exchange"] = ticker, exchange
    return AlertPayload.from_json(loaded)


def field_errors_summary(errors: Mapping[str, Any], limit: int = 3) -> str:
    """A one-line human summary of field errors, for ``Alert.reason`` and the error message."""
    parts = []
    for key, problems in list(errors.items())[:limit]:
        if isinstance(problems, Mapping):
            inner = field_errors_summary(problems, limit=1)
            parts.append(f"{key}.{inner}")
        elif isinstance(problems, list) and problems:
            parts.append(f"{key}: {problems[0]}")
        else:
            parts.append(f"{key}: {problems}")
    more = len(errors) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
