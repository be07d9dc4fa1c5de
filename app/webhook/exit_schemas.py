"""The schemas of an alert's exits: ``takeProfit``, ``stopLoss`` and its ``breakEven`` (marshmallow).

The payload's dataclasses (core/payload.py: TakeProfit, StopLoss, BreakEven) list the fields; the
schema module (app/webhook/schema.py) checks that these rules cover exactly those fields.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, get_args

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validates_schema

from app.webhook.fields import Choice, Number
from core.payload import StopType

STOP_TYPES: tuple[str, ...] = get_args(StopType)
BREAK_EVEN_TRIGGERS = ("percent", "amount", "ticks", "afterTakeProfit")
TAKE_PROFIT_PRICES = ("limitPrice", "percent", "amount", "ticks")
TAKE_PROFIT_SIZES = ("quantity", "quantityPercent")
MAX_TAKE_PROFIT_LEVELS = 10
BREAK_EVEN_OFFSETS = ("offsetTicks", "offsetPercent", "offsetAmount")


class BreakEvenSchema(Schema):
    """``stopLoss.breakEven``: the distance in favour that moves the stop to the entry (exactly one
    of percent / amount / ticks) and an offset in favour (at most one)."""

    class Meta:
        unknown = RAISE  # one level deeper than check_unknown looks: marshmallow names the key

    percent = Number(below=Decimal(100))
    amount = Number()
    ticks = Number(integer=True)
    afterTakeProfit = Number(integer=True)  # noqa: N815 - the level whose fill moves the stop
    offsetTicks = Number(integer=True, positive=False, at_least=Decimal(0))  # noqa: N815
    offsetPercent = Number(below=Decimal(100))  # noqa: N815
    offsetAmount = Number()  # noqa: N815

    @validates_schema
    def forms(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len([k for k in BREAK_EVEN_TRIGGERS if k in data]) != 1:
            raise ValidationError(
                "give exactly one of percent, amount or ticks (the distance in favour that moves the stop) "
                "or afterTakeProfit (the take-profit level whose fill moves it)"
            )
        if len([k for k in BREAK_EVEN_OFFSETS if k in data]) > 1:
            raise ValidationError("give at most one of offsetTicks, offsetPercent or offsetAmount")


class TakeProfitSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # unknown keys are reported by check_unknown with a hint

    limitPrice = Number()  # noqa: N815 - the payload's own spelling
    percent = Number(max_value=Decimal(1000))
    amount = Number()
    ticks = Number(integer=True)

    @validates_schema
    def exactly_one(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len([k for k in TAKE_PROFIT_PRICES if k in data]) != 1:
            raise ValidationError(
                "give exactly one of limitPrice, percent, amount or ticks", field_name="_schema"
            )


class TakeProfitLevelSchema(TakeProfitSchema):
    """One level of a take-profit in levels: a price, and its size (contracts, or a percent of the
    position; at most one)."""

    class Meta:
        unknown = RAISE  # inside a list check_unknown does not look: marshmallow names the key

    quantity = Number()
    quantityPercent = Number(max_value=Decimal(100))  # noqa: N815

    @validates_schema
    def one_size(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len([k for k in TAKE_PROFIT_SIZES if k in data]) > 1:
            raise ValidationError("give at most one of quantity or quantityPercent", field_name="_schema")


class TakeProfitField(fields.Field):
    """``takeProfit``: one take-profit for the whole position (an object, sizes refused), or a
    take-profit in levels (a list of 2 to 10 objects, each with its size: ``quantity`` or
    ``quantityPercent``, the same way for every level; only the last may omit it: the rest)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, dict):
            if any(k in value for k in TAKE_PROFIT_SIZES):
                raise ValidationError(
                    "a single takeProfit covers the whole position: quantity / quantityPercent size the "
                    "levels of a takeProfit list"
                )
            return _TAKE_PROFIT.load(value)
        if not isinstance(value, list):
            raise ValidationError("an object, or a list of levels")
        if not 2 <= len(value) <= MAX_TAKE_PROFIT_LEVELS:
            raise ValidationError(f"a list of 2 to {MAX_TAKE_PROFIT_LEVELS} levels (one level: an object)")
        levels, errors = [], {}
        for n, item in enumerate(value):
            try:
                levels.append(_LEVEL.load(item) if isinstance(item, dict) else _not_object())
            except ValidationError as exc:
                errors[n] = exc.messages
        if errors:
            raise ValidationError(errors)
        _check_sizes(levels)
        return levels


# one instance each, made once: a marshmallow Schema deep-copies its fields when it is built (on
# intake's hot path that doubled the cost of reading an alert), and loading keeps no state in it
_TAKE_PROFIT = TakeProfitSchema()
_LEVEL = TakeProfitLevelSchema()


def _not_object() -> dict[str, Any]:
    raise ValidationError("each level is an object")


def _check_sizes(levels: list[dict[str, Any]]) -> None:
    """Every level but the last has a size, all given the same way; percents add up to 100 at most
    (quantities are checked against the position by the worker)."""
    for n, level in enumerate(levels[:-1], start=1):
        if not any(k in level for k in TAKE_PROFIT_SIZES):
            raise ValidationError(f"level {n} needs quantity or quantityPercent (only the last may omit it)")
    kinds = {k for level in levels for k in TAKE_PROFIT_SIZES if k in level}
    if len(kinds) > 1:
        raise ValidationError("size every level the same way: quantity, or quantityPercent")
    total = sum((Decimal(str(level.get("quantityPercent", 0))) for level in levels), Decimal(0))
    if total > 100:
        raise ValidationError(f"the levels' quantityPercent add up to {total}: at most 100")


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
    breakEven = fields.Nested(BreakEvenSchema)  # noqa: N815

    @validates_schema
    def forms(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "breakEven" in data and data.get("type", "stop") != "stop":
            raise ValidationError(f"breakEven moves a plain stop: not made for type {data.get('type')}")
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
