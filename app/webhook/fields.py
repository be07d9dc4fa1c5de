"""The kinds of value an alert's fields hold (marshmallow fields): numbers, choices, flags, short
texts, accounts, tickers and times, each with the rules and messages an alert is refused by.

Input rules: numbers may arrive as numeric strings and keep the digits that were sent; choices are
case-insensitive, with a "did you mean" hint; a ticker may carry its exchange (``NASDAQ:AAPL``) or
name an option (core/option_tickers.py). The option fields' values follow core/option_fields.py.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import ValidationError, fields

from core.account_ids import account_id_problem
from core.option_fields import Expiration, OptionFieldError, parse_option_field
from core.option_tickers import OptionTickerError, parse_option_ticker
from core.payload import number_from_json

MAX_ABS_NUMBER = Decimal("1e12")
# Order sizes: IB's finest size increment is 0.00000001 (crypto); sizes travel to IB as floats,
# exact to 15 significant digits.
SIZE_DECIMALS = 8
SIZE_DIGITS = 15
# Bounds on the work and the size of error reports an authenticated but broken alert can cause.
MAX_HINTED_NAME = 64
# \Z, not $: "$" also matches before a trailing newline, so "NASDAQ\n" would pass as an exchange.
TICKER_RE = re.compile(r"^[A-Z0-9][A-Z0-9._!/&-]{0,31}\Z")
MAX_TICKER_LENGTH = 32  # an option's too (core/option_tickers.py), spaces included
EXCHANGE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,31}\Z")


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
        # adjusted() (the exponent of the first digit) before any arithmetic: abs() of "1e+999999999"
        # overflows the decimal context, which would end the request in a 500
        if (
            not number.is_finite()
            or (number.adjusted() > MAX_ABS_NUMBER.adjusted() and not number.is_zero())
            or abs(number) > MAX_ABS_NUMBER
        ):
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
    """``AAPL`` or ``EXCHANGE:TICKER``, or an option's ticker (core/option_tickers.py: OCC's
    ``AAPL250117C00150000``, space-padded or not, TradersPost's ``SPY 250624C596``); returns
    (exchange or None, ticker), upper-case, an option's spaces kept."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str | None, str]:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("must be a symbol such as AAPL, NASDAQ:AAPL or ES1!")
        exchange, sep, ticker = value.strip().upper().rpartition(":")
        if sep and not EXCHANGE_RE.match(exchange):
            raise ValidationError(f"exchange prefix {exchange[:40]!r} is not a valid exchange name")
        try:
            option = parse_option_ticker(ticker) if len(ticker) <= MAX_TICKER_LENGTH else None
        except OptionTickerError as exc:
            raise ValidationError(f"is not an option symbol: {exc}, got {value.strip()[:40]!r}") from None
        if option is None and not TICKER_RE.match(ticker):
            raise ValidationError(
                "must be a symbol of letters, digits and . _ ! / & - (at most 32 characters), or an "
                f"option's (AAPL250117C00150000, SPY 250624C596), got {value.strip()[:40]!r}"
            )
        return (exchange or None), ticker


class OptionValue(fields.Field):
    """One of the option fields (``optionType``, ``expiration``, ...), checked by
    core/option_fields.py with its reasons; returned as the payload stores it: a choice lower-case,
    ``expiration`` normalised (``+6 months``), a number as the alert gave it (see :class:`Number`).
    ``null`` is the field left out. The rules between the fields are the schema's (the same module's)."""

    def __init__(self, option_field: str, **kw: Any):
        super().__init__(allow_none=True, **kw)
        self.option_field = option_field

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            parsed = parse_option_field(self.option_field, value)
        except OptionFieldError as exc:
            raise ValidationError(exc.reason) from None
        if isinstance(parsed, Expiration):
            return parsed.describe()
        if isinstance(parsed, str):
            return parsed
        exponent = Decimal(parsed).as_tuple().exponent
        whole = isinstance(exponent, int) and exponent >= 0
        return number_from_json(int(parsed) if whole else float(parsed), self.option_field)


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
