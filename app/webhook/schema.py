"""Alert validation and normalisation (marshmallow): what the worker plans from.

The normalised payload contract (``Alert.payload``, written by intake, read by the worker) is
:class:`core.payload.AlertPayload`: its docstring lists every field. The fields accepted here, the
JSON keys and the choices are derived from it; this module adds only the validation rules.

Input rules: numbers may arrive as numeric strings; enums are case-insensitive; unknown fields
(top level and inside takeProfit/stopLoss) are refused with a "did you mean" hint; any string
still holding a TradingView placeholder ``{{...}}`` is refused naming the placeholder.

* :mod:`app.webhook.fields`    the kinds of value (numbers, choices, texts, accounts, tickers, times)
* :mod:`app.webhook.screening` unknown keys, unfilled placeholders and deep nesting, before the schema
* this module                  the schemas of an alert and its exits, cross-field rules, the result
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, get_args

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema

from app.webhook.exit_schemas import StopLossSchema, TakeProfitField, TakeProfitLevelSchema, TakeProfitSchema
from app.webhook.fields import (
    SIZE_DECIMALS,
    Accounts,
    Choice,
    Flag,
    Number,
    OptionValue,
    Text,
    Ticker,
    Timestamp,
)
from app.webhook.screening import (
    INPUT_ALIASES,
    MAX_NESTING,
    STOP_LOSS_FIELDS,
    TAKE_PROFIT_FIELDS,
    TOP_LEVEL_FIELDS,
    check_unknown,
    find_placeholders,
    nesting_depth,
)
from core.option_fields import FIELDS as OPTION_FIELDS
from core.option_fields import field_errors, parse_option_request
from core.option_tickers import parse_option_ticker
from core.payload import (
    Action,
    AlertPayload,
    MarketPosition,
    OrderType,
    QuantityType,
    Sentiment,
    StopType,
    TakeProfitLevel,
    TimeInForce,
    json_names,
)

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
    takeProfit = TakeProfitField()  # noqa: N815 - an object, or a list of levels
    # the stored form of a takeProfit list (the intake moves the list here)
    takeProfitLevels = fields.List(fields.Nested(TakeProfitLevelSchema))  # noqa: N815
    stopLoss = fields.Nested(StopLossSchema)  # noqa: N815
    timeInForce = Choice(TIME_IN_FORCE)  # noqa: N815
    extendedHours = Flag(load_default=False)  # noqa: N815
    cancel = Flag(load_default=False)
    test = Flag(load_default=False)  # TradersPost's: decide and record, send nothing
    ignoreTradingWindows = Flag(load_default=False)  # noqa: N815 - honoured where the risk file allows it
    # options on the underlying (core/option_fields.py): each value here, their rules in cross_field
    optionType = OptionValue("optionType")  # noqa: N815
    expiration = OptionValue("expiration")
    intrinsicValue = OptionValue("intrinsicValue")  # noqa: N815
    instrinsicValue = OptionValue("intrinsicValue")  # noqa: N815 - TradersPost's spelling, an alias
    strikesAway = OptionValue("strikesAway")  # noqa: N815
    strikeCount = OptionValue("strikeCount")  # noqa: N815
    strikePrice = OptionValue("strikePrice")  # noqa: N815
    delta = OptionValue("delta")
    dteMin = OptionValue("dteMin")  # noqa: N815
    dteMax = OptionValue("dteMax")  # noqa: N815
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
        errors.update(_level_errors(data))
        errors.update(_option_errors(data))
        errors.update(_update_errors(data))
        if errors:
            raise ValidationError(errors)


def _level_errors(data: Mapping[str, Any]) -> dict[str, Any]:
    """A take-profit in levels opens a position with its sub-brackets: not for an update, nor for
    options chosen by optionType (their exits are priced on the premium); and a break-even after a
    level names one of the levels."""
    levels = data.get("takeProfit")
    count = len(levels) if isinstance(levels, list) else 0
    if count and data.get("action") == "update":
        return {
            "takeProfit": ["an update moves the working exits: give one takeProfit (an object), not levels"]
        }
    if count and data.get("optionType") is not None:
        return {"takeProfit": ["a take-profit in levels is not made for options chosen by optionType"]}
    stop = data.get("stopLoss")
    after = stop.get("breakEven", {}).get("afterTakeProfit") if isinstance(stop, Mapping) else None
    if after is not None and not 1 <= after <= count:
        return {"stopLoss": {"breakEven": {"afterTakeProfit": [
            f"names take-profit level {after}: give takeProfit as a list with that many levels"]}}}  # fmt: skip
    return {}


def _option_errors(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """The option fields' rules between themselves (core/option_fields.py's, its reasons), and with
    the ticker and the action: an option's ticker already names the contract; an exit, a flatten
    or a cancel needs no expiry (it acts on the options held or working on the underlying)."""
    raw = {name: data.get(name) for name in OPTION_FIELDS}
    if raw["intrinsicValue"] is None:
        raw["intrinsicValue"] = data.get("instrinsicValue")
    given = [name for name, value in raw.items() if value is not None]
    if not given:
        return {}
    ticker = data.get("ticker")
    option = parse_option_ticker(ticker[1]) if isinstance(ticker, tuple) else None
    if option is not None:
        return {given[0]: [
            f"the ticker {ticker[1]} already names the contract ({option.describe()}); the option "
            "fields choose one for an alert on the underlying: send its ticker, or leave them out",
        ]}  # fmt: skip
    # an exit, a flatten or a cancel acts on the options held or working: no expiry to choose
    closes = (
        data.get("action") in ("exit", "cancel")
        or data.get("sentiment") == "flat"
        or data.get("positionSize") == 0
    )
    _, problems = parse_option_request(raw, opens=not closes)
    return field_errors(problems)


def _update_errors(data: Mapping[str, Any]) -> dict[str, Any]:
    """``action: update`` (tv2ib's own) moves the position's working exits: it needs a stopLoss or a
    takeProfit and trades nothing, so sizes, entry prices and option fields have no place in it."""
    if data.get("action") != "update":
        return {}
    errors: dict[str, Any] = {}
    if "stopLoss" not in data and "takeProfit" not in data:
        errors["action"] = ["update moves the working stopLoss / takeProfit: give one of them (or both)"]
    trading = (
        "quantity",
        "positionSize",
        "quantityType",
        "limitPrice",
        "stopPrice",
        "trailAmount",
        "trailPercent",
    )
    for key in (*trading, *OPTION_FIELDS):
        if data.get(key) is not None:
            errors[key] = ["is not read with action update: an update moves the exits, it does not trade"]
    stop = data.get("stopLoss")
    if isinstance(stop, Mapping) and stop.get("type", "stop") != "stop":
        errors["stopLoss"] = {
            "type": [f"an update moves a plain stop: {stop.get('type')} is not made yet for update"]
        }
    return errors


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
_check_fields(TakeProfitLevelSchema, json_names(TakeProfitLevel))
_check_fields(StopLossSchema, STOP_LOSS_FIELDS)
_SCHEMA = AlertSchema()


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
            if loaded.get(key) is None:  # the field itself wins; its null is the field left out
                loaded[key] = value
    if isinstance(loaded.get("takeProfit"), list):  # a take-profit in levels: stored apart
        loaded["takeProfitLevels"] = loaded.pop("takeProfit")
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
