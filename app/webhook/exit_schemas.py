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
BREAK_EVEN_TRIGGERS = ("percent", "amount", "ticks")
BREAK_EVEN_OFFSETS = ("offsetTicks", "offsetPercent", "offsetAmount")


class BreakEvenSchema(Schema):
    """``stopLoss.breakEven``: the distance in favour that moves the stop to the entry (exactly one
    of percent / amount / ticks) and an offset in favour (at most one)."""

    class Meta:
        unknown = RAISE  # one level deeper than check_unknown looks: marshmallow names the key

    percent = Number(below=Decimal(100))
    amount = Number()
    ticks = Number(integer=True)
    offsetTicks = Number(integer=True, positive=False, at_least=Decimal(0))  # noqa: N815
    offsetPercent = Number(below=Decimal(100))  # noqa: N815
    offsetAmount = Number()  # noqa: N815

    @validates_schema
    def forms(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len([k for k in BREAK_EVEN_TRIGGERS if k in data]) != 1:
            raise ValidationError(
                "give exactly one of percent, amount or ticks: the distance in favour that moves the stop"
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
