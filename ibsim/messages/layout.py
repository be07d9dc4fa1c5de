"""Field-table helpers for message layouts: a long layout is written as a table of (wire name,
source) rows in wire order, so each field is named once and the encoder is one line.

A source is a constant (sent as it is) or a function of the record being encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from ibsim.framing import UNSET_DOUBLE

Fields = list[object]
#: one row of a layout table: the field's name in the protocol reference, and its source
Row = tuple[str, Any]


def num(value: float | None) -> object:
    """A float field where UNSET / None is sent as ""."""
    if value is None or value >= UNSET_DOUBLE:
        return ""
    return float(value)


def attr(name: str) -> Callable[[Any], Any]:
    """Source: the record's attribute as it is."""
    return attrgetter(name)


def as_float(name: str) -> Callable[[Any], float]:
    """Source: the record's attribute as a float."""
    return lambda record: float(getattr(record, name))


def unset_blank(name: str) -> Callable[[Any], object]:
    """Source: the record's float attribute, "" when unset."""
    return lambda record: num(getattr(record, name))


def encode(rows: tuple[Row, ...], record: object) -> Fields:
    """The fields of a layout table for one record, in wire order."""
    return [source(record) if callable(source) else source for _, source in rows]


def blanks(*names: str) -> tuple[Row, ...]:
    """Rows of fields ibsim always sends empty."""
    return tuple((name, "") for name in names)
