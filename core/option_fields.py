"""The option fields of an alert on the underlying: the request, parsed and checked (pure, typed).

The alert names the underlying (``AAPL``) and says which option to trade with TradersPost's fields
(``optionType``, ``expiration``, ``intrinsicValue``, ``strikesAway``, ``strikeCount``,
``strikePrice``) and tv2ib's own (``delta``, ``dteMin``, ``dteMax``). :func:`parse_option_request`
turns the raw alert values into an :class:`OptionRequest` or into errors that each name the field
and the reason, as the webhook's field errors do (``{"strikesAway": ["needs intrinsicValue ..."]}``
via :func:`field_errors`); :func:`parse_option_field` checks one value alone.

Shared by both sides: the webhook's schema (app/webhook/schema.py) validates the fields with it and
stores them in the payload (core/payload.py, ``AlertPayload.option_request`` reads them back); the
worker's option rules (worker/decision/options.py: the direction table, option_choice.py,
option_prices.py) take the :class:`OptionRequest`. docs/contracts.md, "Options from the
underlying's alert".
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

OptionType = Literal["call", "put", "both"]
Intrinsic = Literal["itm", "otm"]
Unit = Literal["days", "weeks", "months", "years"]

# the alert's JSON names, in the order the errors and the JSON form list them
FIELDS = (
    "optionType", "expiration", "intrinsicValue", "strikesAway", "strikeCount", "strikePrice",
    "delta", "dteMin", "dteMax",
)  # fmt: skip
MAX_STRIKES = 100  # strikeCount: the contracts whose quotes and greeks the worker would ask IB for
MAX_DTE = 3660  # ten years of days: no listed option is further out
# a relative expiration's largest amount per unit (about ten years each)
MAX_RELATIVE = {"days": 3660, "weeks": 522, "months": 120, "years": 10}
# ASCII digits and spaces only: Python's \d also takes other scripts' digits, which int() reads
# but JSON Schema's patterns (app/openapi) do not describe
_RELATIVE_RE = re.compile(r"^\+?\s*(\d{1,5})\s*(day|week|month|year)s?\Z", re.IGNORECASE | re.ASCII)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_MAX_NUMBER = Decimal("1e12")
_MIN_NUMBER = Decimal("1e-12")  # in size, but 0: a float holds it, and no strike or delta is finer


class OptionFieldError(ValueError):
    """One alert field's problem: ``field`` is its JSON name, ``reason`` what is wrong with it."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Expiration:
    """``expiration``: an exact date, or an amount of days, weeks, months or years from today."""

    on: date | None = None
    amount: int = 0
    unit: Unit = "days"

    def target(self, today: date) -> date:
        """The date the first expiry must be on or after. Months and years keep the day of the
        month, clamped to the month's last day (Jan 31 + 1 month is Feb 28, or 29)."""
        if self.on is not None:
            return self.on
        if self.unit in ("days", "weeks"):
            return today + timedelta(days=self.amount * (7 if self.unit == "weeks" else 1))
        months = self.amount * (12 if self.unit == "years" else 1)
        year, month = divmod(today.month - 1 + months, 12)
        year += today.year
        day = min(today.day, calendar.monthrange(year, month + 1)[1])
        return date(year, month + 1, day)

    def describe(self) -> str:
        """As the alert wrote it, normalised: ``2026-03-20`` or ``+6 months``."""
        if self.on is not None:
            return self.on.isoformat()
        unit = self.unit if self.amount != 1 else self.unit[:-1]
        return f"+{self.amount} {unit}"


@dataclass(frozen=True, kw_only=True)
class OptionRequest:
    """Which option the alert asks for; the parser has checked every value and combination."""

    option_type: OptionType
    expiration: Expiration | None = None
    intrinsic_value: Intrinsic | None = None
    strikes_away: int | None = None
    strike_count: int | None = None
    strike_price: Decimal | None = None
    delta: Decimal | None = None  # its size is the target: 0.30 and -0.30 both ask for a 30-delta
    dte_min: int | None = None
    dte_max: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The alert's fields that were given, by their JSON names (numbers as text when decimal)."""
        values: dict[str, Any] = {
            "optionType": self.option_type,
            "expiration": None if self.expiration is None else self.expiration.describe(),
            "intrinsicValue": self.intrinsic_value,
            "strikesAway": self.strikes_away,
            "strikeCount": self.strike_count,
            "strikePrice": None if self.strike_price is None else str(self.strike_price),
            "delta": None if self.delta is None else str(self.delta),
            "dteMin": self.dte_min,
            "dteMax": self.dte_max,
        }
        return {key: value for key, value in values.items() if value is not None}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> OptionRequest:
        """Back from :meth:`to_json`; raises the first :class:`OptionFieldError` of a bad document."""
        request, errors = parse_option_request(doc)
        if errors:
            raise errors[0]
        if request is None:
            raise OptionFieldError("optionType", "is missing")
        return request


def parse_option_request(
    raw: Mapping[str, Any], *, opens: bool = True
) -> tuple[OptionRequest | None, tuple[OptionFieldError, ...]]:
    """The alert's option fields as a request: ``(None, ())`` when it names none (a stock alert),
    ``(request, ())`` when all are good, else ``(None, errors)`` with one error per problem.
    ``opens`` false (an exit, a flatten, a cancel: they act on the options held or working, and
    choose no contract): ``optionType`` alone is enough, no expiry is needed.

    Values may be JSON numbers or numeric strings (as TradingView placeholders send them); choices
    are case-insensitive; ``null`` counts as absent."""
    given = {name: raw[name] for name in FIELDS if raw.get(name) is not None}
    if not given:
        return None, ()
    values: dict[str, Any] = {}
    errors: list[OptionFieldError] = []
    for name, value in given.items():
        try:
            values[name] = _PARSERS[name](value)
        except OptionFieldError as error:
            errors.append(error)
    errors.extend(_combination_errors(given, values, opens))
    if errors:
        return None, tuple(errors)
    request = OptionRequest(
        option_type=values["optionType"],
        expiration=values.get("expiration"),
        intrinsic_value=values.get("intrinsicValue"),
        strikes_away=values.get("strikesAway"),
        strike_count=values.get("strikeCount"),
        strike_price=values.get("strikePrice"),
        delta=values.get("delta"),
        dte_min=values.get("dteMin"),
        dte_max=values.get("dteMax"),
    )
    return request, ()


def field_errors(errors: tuple[OptionFieldError, ...]) -> dict[str, list[str]]:
    """The webhook's shape of field errors: ``{"strikesAway": ["needs intrinsicValue ..."]}``."""
    shaped: dict[str, list[str]] = {}
    for error in errors:
        shaped.setdefault(error.field, []).append(error.reason)
    return shaped


def parse_option_field(name: str, value: Any) -> Any:
    """One field's value alone, as :class:`OptionRequest` holds it (``"CALL"`` -> ``"call"``,
    ``"2"`` -> ``2``, ``"+6 Months"`` -> an :class:`Expiration`); raises :class:`OptionFieldError`.
    The rules between fields are :func:`parse_option_request`'s."""
    return _PARSERS[name](value)


def _combination_errors(
    given: Mapping[str, Any], values: Mapping[str, Any], opens: bool = True
) -> list[OptionFieldError]:
    """The rules between fields (checked on the fields given, even when a value was bad)."""
    errors: list[OptionFieldError] = []
    if "optionType" not in given:
        names = ", ".join(given)
        errors.append(OptionFieldError("optionType", f"is needed with {names}: call, put or both"))
    elif opens and not {"expiration", "dteMin", "dteMax"} & given.keys():
        errors.append(OptionFieldError(
            "expiration", "is needed with optionType: a date (2026-03-20) or a time from today "
            "(+30 days, +2 weeks, +6 months), or a dteMin/dteMax window of days to expiry",
        ))  # fmt: skip
    exclusive = {
        "strikePrice": ("strikesAway", "intrinsicValue", "strikeCount", "delta"),
        "delta": ("strikesAway", "intrinsicValue"),
    }
    for field, others in exclusive.items():
        clash = [name for name in others if field in given and name in given]
        if clash:
            how = "names the strike itself" if field == "strikePrice" else "picks the strike by itself"
            errors.append(OptionFieldError(field, f"{how}; leave out {' and '.join(clash)}"))
    if "strikesAway" in given and "intrinsicValue" not in given:
        errors.append(OptionFieldError(
            "strikesAway", "needs intrinsicValue (itm or otm): the side of the money to count on",
        ))  # fmt: skip
    away, count = values.get("strikesAway"), values.get("strikeCount")
    if away is not None and count is not None and away > count // 2:
        errors.append(OptionFieldError(
            "strikesAway", f"must be at most half of strikeCount ({away} > {count} // 2): strikeCount "
            f"{count} scans the at-the-money strike and {count // 2} on each side of it",
        ))  # fmt: skip
    low, high = values.get("dteMin"), values.get("dteMax")
    if low is not None and high is not None and low > high:
        errors.append(OptionFieldError("dteMin", f"must not be above dteMax ({low} > {high})"))
    return errors


def _choice(field: str, choices: tuple[str, ...]) -> Any:
    def parse(value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else None
        if text not in choices:
            raise OptionFieldError(field, f"must be one of {', '.join(choices)}, got {value!r:.40}")
        return text

    return parse


def _number(field: str, value: Any) -> Decimal:
    """A finite number from a JSON number or a numeric string (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise OptionFieldError(field, f"must be a number, got {value!r:.40}")
    if isinstance(value, str) and (not value.isascii() or "_" in value):  # Decimal takes "1_0", "١"
        raise OptionFieldError(field, f"must be a number, got {value!r:.40}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError):
        raise OptionFieldError(field, f"must be a number, got {value!r:.40}") from None
    if (
        not number.is_finite()
        or (not number.is_zero() and number.adjusted() > 12)
        or abs(number) > _MAX_NUMBER
    ):
        raise OptionFieldError(field, f"must be a finite number of at most {_MAX_NUMBER:,.0f}")
    if not number.is_zero() and number.adjusted() < _MIN_NUMBER.adjusted():  # no arithmetic: no underflow
        raise OptionFieldError(field, f"is too close to 0 (at least 1e-12 in size), got {value!r:.40}")
    return number


def _whole(field: str, low: int, high: int) -> Any:
    def parse(value: Any) -> int:
        number = _number(field, value)
        if number != number.to_integral_value() or not low <= number <= high:
            raise OptionFieldError(field, f"must be a whole number from {low} to {high}, got {value!r:.40}")
        return int(number)

    return parse


def _strike_price(value: Any) -> Decimal:
    number = _number("strikePrice", value)
    if number <= 0:
        raise OptionFieldError("strikePrice", f"must be above 0, got {value!r:.40}")
    return number


def _delta(value: Any) -> Decimal:
    number = _number("delta", value)
    if not 0 < abs(number) < 1:
        raise OptionFieldError(
            "delta", f"must be above 0 and below 1 in size (0.30, or -0.30 for a put), got {value!r:.40}"
        )
    return number


def _expiration(value: Any) -> Expiration:
    why = "must be a date (2026-03-20) or a time from today (+30 days, +2 weeks, +6 months, +1 year)"
    text = value.strip() if isinstance(value, str) else ""
    if _DATE_RE.match(text):
        try:
            return Expiration(on=date.fromisoformat(text))
        except ValueError:
            raise OptionFieldError("expiration", f"is not a calendar date: {value!r:.40}") from None
    found = _RELATIVE_RE.match(text)
    if found is None:
        raise OptionFieldError("expiration", f"{why}, got {value!r:.40}")
    amount, unit = int(found.group(1)), found.group(2).lower() + "s"
    if amount > MAX_RELATIVE[unit]:
        raise OptionFieldError("expiration", f"is too far out: at most +{MAX_RELATIVE[unit]} {unit}")
    return Expiration(amount=amount, unit=unit)  # type: ignore[arg-type]


_PARSERS: dict[str, Any] = {
    "optionType": _choice("optionType", ("call", "put", "both")),
    "expiration": _expiration,
    "intrinsicValue": _choice("intrinsicValue", ("itm", "otm")),
    "strikesAway": _whole("strikesAway", 1, MAX_STRIKES // 2),
    "strikeCount": _whole("strikeCount", 1, MAX_STRIKES),
    "strikePrice": _strike_price,
    "delta": _delta,
    "dteMin": _whole("dteMin", 0, MAX_DTE),
    "dteMax": _whole("dteMax", 0, MAX_DTE),
}
