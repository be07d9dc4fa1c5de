"""Numbers as a trader reads them in refusals, plans and notices (one place, so the risk gate
and the margin check write ``57,000``, ``25,000`` and ``190.00`` the same way)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def money(value: Decimal) -> str:
    """57,000 / 1,234.50 / -2,150 (thousands separators; cents only when there are some)."""
    value = Decimal(value)
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def price(value: Decimal) -> str:
    """190.00 / 0.6512 / 6,000.25: at least two decimals, never fewer than IB sent."""
    value = Decimal(value).normalize()
    exponent = int(value.as_tuple().exponent)  # type: ignore[arg-type]
    places = max(2, -exponent)
    return f"{value:,.{places}f}"


def qty(value: Decimal) -> str:
    """52 / 0.5 / 25,000."""
    value = Decimal(value).normalize()
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return format(value, ",f")


def decimal_of(value: Any) -> Decimal | None:
    """A stored number (its text, or a JSON number) as a Decimal with the same digits; None stays None."""
    return None if value is None else Decimal(str(value))
