"""One value of the risk file, from its YAML node to the number, list or switch the rules use.

Pure functions of one node (core/risk_file.py walks the file and adds the file and the line to the
reason a parser gives). Numbers are read from the text the trader wrote, not from what YAML made
of it: YAML 1.1 reads ``1,5`` as the string "1,5", ``1_5`` as 15, ``017`` as 15 (octal) and
``1:30`` as 90, and a float goes through binary. Here a number is decimal digits with an optional
sign, fraction and exponent; commas (or underscores) only between groups of three digits
(``1,000``, ``1,000,000.5``); anything else is an error, never a guess.

Every number is bounded (finite, at most :data:`MAX_AMOUNT`, at most :data:`MAX_DECIMALS`
decimals): a limit of ``1e5000`` would load and then fail every alert (formatting it needs more
digits than Python converts), ``1e1000000`` would freeze the worker on each one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from core.account_ids import CHARACTERS, RESERVED, account_id_problem

# The alert schema's bound on every number (app/webhook/fields.py MAX_ABS_NUMBER): money in the
# account's base currency and quantities in contract units, a trillion is beyond any account.
MAX_AMOUNT = Decimal("1e12")
MAX_DECIMALS = 8  # quantities go to IB with at most 8 decimals; a limit finer than that means nothing
MAX_ORDER_COUNT = 10_000  # max_open_orders, max_orders_per_minute: IB accepts far fewer per account
MAX_BEFORE_CLOSE = 720  # flatten_before_close: minutes (12 hours: longer than most sessions)
MAX_SHOWN = 40  # characters of a bad value repeated in the error (the file may hold a megabyte of digits)

TRADING_HOURS = ("regular", "extended", "always")
SIZING_TYPES = (
    "fixed_quantity",
    "dollar_amount",
    "risk_dollar_amount",
    "risk_percent",
    "percent_of_equity",
)
PERCENT_SIZING = ("risk_percent", "percent_of_equity")  # a share of NetLiquidation: at most 100

_TAG = "tag:yaml.org,2002:"
_NUMBER_TAGS = (_TAG + "int", _TAG + "float", _TAG + "str")
_NUMBER_RE = re.compile(r"([+-]?)(\d[\d,_]*)?(\.\d*)?([eE][+-]?\d+)?")
_GROUPED = {",": re.compile(r"\d{1,3}(?:,\d{3})+"), "_": re.compile(r"\d{1,3}(?:_\d{3})+")}
GROUPING_HINT = "commas only as thousands separators: 1,000 or 1,000,000.5"

Construct = Callable[[yaml.Node], Any]  # a node to its plain Python value (YAML's safe constructor)


@dataclass(frozen=True)
class DefaultSizing:
    """``default_sizing: {quantity_type: risk_percent, quantity: 1}``: how to size an alert that
    names no quantity (and no ``positionSize``)."""

    quantity_type: str
    quantity: Decimal

    def to_json(self) -> dict[str, str]:
        return {"quantity_type": self.quantity_type, "quantity": str(self.quantity)}


def shown(value: Any) -> str:
    """A value as the error repeats it: quoted and cut when long; a list or a mapping is never
    written out (a few YAML aliases make one of a billion items)."""
    if isinstance(value, (list, dict, tuple, set)):
        return "a list or a mapping"
    text = str(value)
    return repr(text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...")


def _number_text(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise ValueError("must be a number, got a list or a mapping")
    if node.tag not in _NUMBER_TAGS:
        raise ValueError(f"must be a number, got {shown(node.value) if node.value else 'nothing'}")
    return str(node.value).strip()


number_text = _number_text  # a number's text as written (core/risk_protections.py reads its own keys)


def parse_number(text: str) -> Decimal:
    """``text`` as written in the file (``50,000``, ``0.5``, ``1e6``); ValueError says why not."""
    match = _NUMBER_RE.fullmatch(text)
    whole = match.group(2) if match else None
    if match is None or not (whole or (match.group(3) or "")[1:]):
        hint = f" ({GROUPING_HINT})" if "," in text else ""
        raise ValueError(f"must be a number, got {shown(text)}{hint}")
    for sep, grouped in _GROUPED.items():
        if whole and sep in whole and not grouped.fullmatch(whole):
            which = "commas" if sep == "," else "underscores"
            raise ValueError(
                f"must be a number with {which} only as thousands separators "
                f"(1{sep}000 or 1{sep}000{sep}000.5), got {shown(text)}"
            )
    digits = match.group(1) + (whole or "0").replace(",", "").replace("_", "")
    try:
        number = Decimal(digits + (match.group(3) or "") + (match.group(4) or ""))
    except (InvalidOperation, ValueError):  # an exponent beyond what Decimal holds
        raise ValueError(f"must be a number of at most {MAX_AMOUNT:,.0f}, got {shown(text)}") from None
    return number


def _decimals(number: Decimal) -> int:
    """Decimal places, trailing zeros aside (1.50 has 1), without rounding to the context."""
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite: parse_number never makes inf or nan
    if exponent >= 0:
        return 0
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - zeros)


def bounded(text: str, *, above_zero: bool = True, maximum: Decimal = MAX_AMOUNT) -> Decimal:
    """A number of the file within its bounds (0 excluded when ``above_zero``)."""
    number = parse_number(text)
    if number < 0 or (above_zero and number == 0):
        raise ValueError(f"must be {'above' if above_zero else 'at least'} 0, got {text[:MAX_SHOWN]}")
    if number > maximum:
        raise ValueError(f"must be at most {maximum:,.0f}, got {text[:MAX_SHOWN]}")
    if _decimals(number) > MAX_DECIMALS:
        raise ValueError(f"must have at most {MAX_DECIMALS} decimals, got {text[:MAX_SHOWN]}")
    # 50,000 and 5e4 and 50000.00 are all 50000 in the plan, the log and a refusal
    if number == number.to_integral_value():
        return number.quantize(Decimal(1)) if number else Decimal(0)
    return number


def amount(above_zero: bool = True) -> Callable[[yaml.Node, Construct], Decimal]:
    """Money (base currency) or a quantity (contract units)."""

    def parse(node: yaml.Node, _construct: Construct) -> Decimal:
        return bounded(_number_text(node), above_zero=above_zero)

    return parse


def count(node: yaml.Node, _construct: Construct) -> int:
    """Orders: a whole number from 0 to :data:`MAX_ORDER_COUNT`."""
    text = _number_text(node)
    number = bounded(text, above_zero=False, maximum=Decimal(MAX_ORDER_COUNT))
    if number != number.to_integral_value():
        raise ValueError(f"must be a whole number, got {text[:MAX_SHOWN]}")
    return int(number)


def percent(node: yaml.Node, _construct: Construct) -> Decimal:
    return bounded(_number_text(node), maximum=Decimal(100))


def switch(node: yaml.Node, construct: Construct) -> bool:
    value = construct(node)
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {shown(value)}")
    return value


def before_close(node: yaml.Node, construct: Construct) -> int:
    """``flatten_before_close``: whole minutes from 1 to :data:`MAX_BEFORE_CLOSE`, or ``false``
    (0: never; a strategy's section turns a default off with it)."""
    hint = f" (minutes from 1 to {MAX_BEFORE_CLOSE}, or false: never)"
    if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "bool":
        if construct(node) is False:
            return 0
        raise ValueError(f"must be a number of minutes, got true{hint}")
    try:
        text = _number_text(node)
        number = bounded(text, maximum=Decimal(MAX_BEFORE_CLOSE))
    except ValueError as exc:
        raise ValueError(f"{exc}{hint}") from None
    if number != number.to_integral_value():
        raise ValueError(f"must be a whole number of minutes, got {text[:MAX_SHOWN]}{hint}")
    return int(number)


def symbols(node: yaml.Node, construct: Construct) -> tuple[str, ...]:
    value = construct(node)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("must be a list of symbols (TradingView tickers such as AAPL or ES1!)")
    return tuple(dict.fromkeys(v.strip().upper() for v in value))


def hours(node: yaml.Node, construct: Construct) -> str:
    value = construct(node)
    if value not in TRADING_HOURS:
        raise ValueError(f"must be one of {', '.join(TRADING_HOURS)}, got {shown(value)}")
    return str(value)


def sizing(node: yaml.Node, construct: Construct) -> DefaultSizing:
    """``{quantity_type, quantity}``; a percent of NetLiquidation is at most 100 (checked here, not
    at the first alert: ``risk_percent: 300`` would refuse every alert that names no quantity)."""
    if not isinstance(node, yaml.MappingNode):
        raise ValueError("must be a mapping with exactly quantity_type and quantity")
    fields = {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    if set(fields) != {"quantity_type", "quantity"} or len(node.value) != 2:
        raise ValueError("must be a mapping with exactly quantity_type and quantity")
    qtype = construct(fields["quantity_type"])
    if qtype not in SIZING_TYPES:
        raise ValueError(f"quantity_type must be one of {', '.join(SIZING_TYPES)}, got {shown(qtype)}")
    text = _number_text(fields["quantity"])
    try:
        if qtype in PERCENT_SIZING:
            quantity = bounded(text, maximum=Decimal(100))
        else:
            quantity = bounded(text)
    except ValueError as exc:
        unit = " (a percent of NetLiquidation)" if qtype in PERCENT_SIZING else ""
        raise ValueError(f"quantity of {qtype}{unit} {exc}") from None
    return DefaultSizing(str(qtype), quantity)


def accounts(node: yaml.Node, construct: Construct) -> tuple[str, ...]:
    """A strategy's fan-out accounts: each one names a child alert's queue."""
    value = construct(node)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("must be a non-empty list of IB account ids")
    names = tuple(v.strip() for v in value)
    # fan-out (issue 11): each id names a child alert's rq queue, so it follows the alerts' rule
    for account in names:
        problem = account_id_problem(account)
        if problem == RESERVED:
            raise ValueError(f"names {account!r}: {problem}")
        if problem is not None:
            raise ValueError(f"names {shown(account)}, not an IB account id ({CHARACTERS})")
    if len(set(names)) != len(names):
        raise ValueError("names an account twice")
    return names


MAX_DURATION = Decimal(86400)  # approval_timeout: a day at most (an alert approved later is no signal)
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def duration(node: yaml.Node, _construct: Construct) -> Decimal:
    """A time span with its unit, ``90s``, ``5m`` or ``1h`` (``1.5h``), as seconds: from 1 s to a
    day. A bare number is refused (seconds or minutes? the file must say)."""
    if not isinstance(node, yaml.ScalarNode):
        raise ValueError("must be a time span such as 90s, 5m or 1h, got a list or a mapping")
    text = str(node.value).strip()
    match = _DURATION_RE.fullmatch(text.lower())
    if match is None:
        raise ValueError(f"must be a time span with its unit, such as 90s, 5m or 1h, got {shown(text)}")
    seconds = Decimal(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not Decimal(1) <= seconds <= MAX_DURATION:
        raise ValueError(f"must be from 1s to 24h, got {shown(text)}")
    return seconds.quantize(Decimal(1)) if seconds == seconds.to_integral_value() else seconds
