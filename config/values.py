"""How each kind of setting is read from its text (the environment's or ``.env``'s): on/off, whole
numbers and numbers with their bounds, order quantities, rate limits, lists, per-strategy secrets,
notice modes, market data types, times of day. A value that cannot be read is a
:class:`SettingsError` whose message names the variable and the fix."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TypeVar

MIN_SECRET_LENGTH = 16
# IB's finest size increment (crypto at PAXOS: 0.00000001); a quantity with more decimals can
# never be a valid IB order size.
MAX_QUANTITY_DECIMALS = 8

N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


def boolean(name: str, raw: str) -> bool:
    """true / false, also 1 / 0, yes / no, on / off (an empty value is false)."""
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _bounded(name: str, raw: str, convert: Callable[[str], N], what: str, minimum: N | None) -> N:
    try:
        value = convert(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def whole_number(name: str, raw: str, minimum: int | None = None) -> int:
    """A whole number, at least ``minimum``."""
    return _bounded(name, raw, int, "a whole number", minimum)


def number(name: str, raw: str, minimum: float | None = None) -> float:
    """A finite number, at least ``minimum`` (``nan`` compares false with every bound and ``inf``
    never elapses: either would quietly switch a limit off)."""
    value = _bounded(name, raw, float, "a number", minimum)
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, got {raw!r}")
    return value


def quantity(name: str, raw: str) -> Decimal:
    """A positive order quantity with at most :data:`MAX_QUANTITY_DECIMALS` decimals."""
    try:
        value = Decimal(raw.strip())
    except (InvalidOperation, ValueError):
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value.is_finite() or value <= 0 or value > Decimal("1e12"):
        raise SettingsError(f"{name} must be above 0 and at most 1000000000000, got {raw!r}")
    if value != value.quantize(Decimal(1).scaleb(-MAX_QUANTITY_DECIMALS)):
        raise SettingsError(f"{name} may have at most {MAX_QUANTITY_DECIMALS} decimals, got {raw!r}")
    return value


def check_rate(name: str, raw: str) -> None:
    """Refuse a rate limit the limiter could not parse (``120/minute``, ``5 per second``)."""
    from limits import parse  # local: only this check needs it

    try:
        parse(raw)
    except ValueError:
        raise SettingsError(f"{name} must look like 120/minute or 5/second, got {raw!r}") from None


def optional(raw: str | None) -> str | None:
    if raw is None:
        return None
    raw = raw.strip()
    return raw or None


def csv_items(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def strategy_secrets(raw: str | None) -> dict[str, str]:
    """Parse ``STRATEGY_SECRETS`` = ``name=secret,other=secret2``."""
    secrets: dict[str, str] = {}
    for item in csv_items(raw):
        name, sep, secret = item.partition("=")
        if not sep or not name.strip() or not secret.strip():
            raise SettingsError("STRATEGY_SECRETS must look like 'strategy=secret,other=secret2'")
        if len(secret.strip()) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"STRATEGY_SECRETS: the secret for strategy {name.strip()!r} must be at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        secrets[name.strip()] = secret.strip()
    return secrets


NOTIFY_MODES = ("on", "silent", "off")


def notify_modes(env: Mapping[str, str]) -> dict[str, str]:
    """Per-kind notice modes from ``NOTIFY=kind=mode,...`` (one variable on purpose: a prefix scan of
    ``NOTIFY_*`` would trip over unrelated variables such as systemd's ``NOTIFY_SOCKET``).

    ``*`` (or ``default``) sets the mode of every kind not named. Kinds are not checked here (new
    alarm kinds must not need a settings change); the notifier warns about kinds it does not know.
    """
    modes: dict[str, str] = {}

    def put(name: str, kind: str, mode: str) -> None:
        kind = kind.strip().lower()
        mode = mode.strip().lower()
        if kind == "default":
            kind = "*"
        if not kind or not (kind == "*" or kind.replace("_", "").isalnum()):
            raise SettingsError(f"{name}: {kind!r} is not a notice kind")
        if mode not in NOTIFY_MODES:
            raise SettingsError(f"{name}: the mode of {kind!r} must be on, silent or off, got {mode!r}")
        modes[kind] = mode

    for item in csv_items(env.get("NOTIFY")):
        kind, sep, mode = item.partition("=")
        if not sep:
            raise SettingsError("NOTIFY must look like 'fill=on,order_rejected=silent,daily_summary=off'")
        put("NOTIFY", kind, mode)
    return modes


MARKET_DATA_TYPES = ("live", "frozen", "delayed", "delayed-frozen")  # IB's reqMarketDataType 1-4


def market_data_type(raw: str) -> str:
    """``IB_MARKET_DATA_TYPE``: a name (``delayed_frozen`` accepted) or IB's number 1-4."""
    value = raw.strip().lower().replace("_", "-")
    if value in ("1", "2", "3", "4"):
        return MARKET_DATA_TYPES[int(value) - 1]
    if value not in MARKET_DATA_TYPES:
        raise SettingsError(
            f"IB_MARKET_DATA_TYPE must be one of {', '.join(MARKET_DATA_TYPES)} (or 1-4), got {raw!r}"
        )
    return value


def time_of_day(name: str, raw: str | None, zone: str = "UTC") -> str | None:
    """A time of day ``HH:MM`` in ``zone`` (normalised to two digits each), or None when unset."""
    raw = optional(raw)
    if raw is None:
        return None
    hours, sep, minutes = raw.partition(":")
    try:
        h, m = int(hours), int(minutes)
    except ValueError:
        h = m = -1
    if not sep or not (0 <= h < 24 and 0 <= m < 60):
        raise SettingsError(f"{name} must be a {zone} time of day HH:MM, got {raw!r}")
    return f"{h:02d}:{m:02d}"
