"""What each of the webhook's own marshmallow fields (:mod:`app.webhook.fields`) accepts, as JSON
Schema, read from the field's own settings (bounds, choices, lengths, patterns); apispec's
marshmallow plugin calls :func:`field_schema` for every field it converts.

The fields accept more than one JSON type on purpose (TradingView placeholders fill text: a
number may arrive as ``"4.5"``, a flag as ``"true"``), so most are an ``anyOf``.
"""

from __future__ import annotations

import re
from typing import Any, get_args

from marshmallow import fields

from app.webhook.fields import (
    EXCHANGE_RE,
    MAX_ABS_NUMBER,
    SIZE_DIGITS,
    TICKER_RE,
    Accounts,
    Choice,
    Flag,
    Number,
    OptionValue,
    Text,
    Ticker,
    Timestamp,
)
from core.account_ids import ACCOUNT_ID_RE
from core.account_ids import MAX_LENGTH as ACCOUNT_MAX_LENGTH
from core.option_fields import MAX_DTE, MAX_STRIKES, Intrinsic, OptionType
from core.option_tickers import OPTION_TICKER_RE

JsonSchema = dict[str, Any]
# A number written as text: what Decimal() takes from a TradingView placeholder such as {{close}}.
NUMBER_TEXT = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


def _ecma(pattern: re.Pattern[str], *, any_case: bool = False) -> str:
    """A Python pattern of app/webhook/fields.py as an ECMA-262 one (``\\Z`` -> ``$``), without
    its anchors; ``any_case`` for a field upper-cased before it is checked."""
    text = pattern.pattern.removeprefix("^").removesuffix(r"\Z")
    return text.replace("A-Z", "A-Za-z") if any_case else text


def number_schema(field: Number) -> JsonSchema:
    number: JsonSchema = {"type": "integer" if field.integer else "number"}
    limit = int(MAX_ABS_NUMBER)
    if field.positive:
        number["exclusiveMinimum"] = 0
    else:
        number["minimum"] = -limit
    if field.at_least is not None:
        number["minimum"] = max(number.get("minimum", -limit), float(field.at_least))
    number["maximum"] = limit if field.max_value is None else min(limit, float(field.max_value))
    if field.below is not None:
        number["exclusiveMaximum"] = float(field.below)
    notes = []
    if field.max_decimals is not None:
        notes.append(f"at most {field.max_decimals} decimals and {SIZE_DIGITS} significant digits")
    text = {"type": "string", "pattern": NUMBER_TEXT, "description": "the same number written as text"}
    out: JsonSchema = {"anyOf": [number, text]}
    if notes:
        out["description"] = "; ".join(notes)
    return out


def choice_schema(field: Choice) -> JsonSchema:
    names = list(field.choices) + [a for a in field.aliases if a not in field.choices]
    aliases = ", ".join(f"{a} = {b}" for a, b in field.aliases.items())
    text = "in any letter case" + (f"; {aliases}" if aliases else "")
    return {"type": "string", "enum": names, "description": text}


def flag_schema(field: Flag) -> JsonSchema:
    words = sorted(field.TRUE | field.FALSE)
    return {
        "anyOf": [
            {"type": "boolean"},
            {"type": "integer", "enum": [0, 1]},
            {"type": "string", "enum": words, "description": "in any letter case"},
        ]
    }


def text_schema(field: Text) -> JsonSchema:
    text: JsonSchema = {"type": "string", "minLength": 1, "maxLength": field.max_length}
    if field.pattern is not None:
        text["pattern"] = "^" + _ecma(field.pattern) + "$"
    return {"anyOf": [text, {"type": "integer", "description": "taken as its text"}]}


def accounts_schema(field: Accounts) -> JsonSchema:
    one: JsonSchema = {
        "anyOf": [
            {"type": "string", "pattern": "^" + _ecma(ACCOUNT_ID_RE) + "$", "maxLength": ACCOUNT_MAX_LENGTH},
            {"type": "integer", "minimum": 0},
        ]
    }
    several: JsonSchema = {
        "type": "array",
        "items": one,
        "minItems": 1,
        "maxItems": field.max_accounts,
        "uniqueItems": True,
        "description": "a fan-out: one child alert per account",
    }
    return {"anyOf": [one, several], "description": "an IB account id (not 'default'), or a list of them"}


def ticker_schema(field: Ticker) -> JsonSchema:
    exchange = _ecma(EXCHANGE_RE, any_case=True)
    ticker = _ecma(TICKER_RE, any_case=True)
    option = _ecma(OPTION_TICKER_RE, any_case=True).replace("[CP]", "[CPcp]")
    return {
        "type": "string",
        "pattern": rf"^\s*({exchange}:)?({ticker}|{option})\s*$",
        "description": "AAPL, NASDAQ:AAPL, ES1!, EURUSD, or an option: AAPL250117C00150000 (OCC, the "
        "root may be padded with spaces to 6 characters), SPY 250624C596 (TradersPost); in any letter case",
    }


# ``expiration`` (core/option_fields.py): a date, or an amount of days, weeks, months or years
_UNITS = "|".join("".join(f"[{c.upper()}{c}]" for c in unit) for unit in ("day", "week", "month", "year"))
EXPIRATION_PATTERN = rf"^\s*([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}|\+?\s*[0-9]{{1,5}}\s*({_UNITS})[Ss]?)\s*$"


def _whole_schema(low: int, high: int) -> JsonSchema:
    number = {"type": "integer", "minimum": low, "maximum": high}
    return {"anyOf": [number, {"type": "string", "pattern": NUMBER_TEXT}]}


def option_schema(field: OptionValue) -> JsonSchema:
    """An option field (core/option_fields.py); ``null`` is the field left out. The rules between
    the fields (which go together) are in the description of the webhook, not here."""
    limit = int(MAX_ABS_NUMBER)
    text = {"type": "string", "pattern": NUMBER_TEXT, "description": "the same number written as text"}
    schemas: dict[str, JsonSchema] = {
        "optionType": {
            "type": "string",
            "enum": list(get_args(OptionType)),
            "description": "in any letter case",
        },
        "expiration": {
            "type": "string",
            "pattern": EXPIRATION_PATTERN,
            "description": "a date (2026-03-20) or a time from today (+30 days, +2 weeks, +6 months, +1 year)",
        },
        "intrinsicValue": {
            "type": "string",
            "enum": list(get_args(Intrinsic)),
            "description": "in any letter case",
        },
        "strikesAway": _whole_schema(1, MAX_STRIKES // 2),
        "strikeCount": _whole_schema(1, MAX_STRIKES),
        "strikePrice": {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": limit}, text]},
        "delta": {
            "anyOf": [{"type": "number", "exclusiveMinimum": -1, "exclusiveMaximum": 1}, text],
            "description": "not 0: the size is the target (0.30, or -0.30 for a put)",
        },
        "dteMin": _whole_schema(0, MAX_DTE),
        "dteMax": _whole_schema(0, MAX_DTE),
    }
    kind = schemas[field.option_field]
    null = {"type": "null", "description": "the field left out"}
    out: JsonSchema = (
        {**kind, "anyOf": [*kind["anyOf"], null]} if "anyOf" in kind else {"anyOf": [kind, null]}
    )
    if field.name != field.option_field:
        out["description"] = f"an alias of {field.option_field} (TradersPost's examples spell it so)"
    return out


def timestamp_schema(field: Timestamp) -> JsonSchema:
    return {"type": "string", "format": "date-time", "maxLength": 64, "description": "UTC when no offset"}


_BY_CLASS: tuple[tuple[type[fields.Field], Any], ...] = (
    (Number, number_schema),
    (Choice, choice_schema),
    (Flag, flag_schema),
    (Text, text_schema),
    (Accounts, accounts_schema),
    (Ticker, ticker_schema),
    (OptionValue, option_schema),
    (Timestamp, timestamp_schema),
)


def field_schema(converter: Any, field: fields.Field, ret: JsonSchema, **kwargs: Any) -> JsonSchema:
    """apispec's attribute function: the JSON Schema of one of the webhook's own fields, else {}."""
    for cls, build in _BY_CLASS:
        if isinstance(field, cls):
            return build(field)
    return {}
