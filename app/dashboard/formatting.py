"""How the dashboard shows values: its Jinja filters (times in UTC, ages, numbers, money, JSON, the
colour class of an alert's and an order's status). Pure functions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from core import services
from core.models import IB_ENDED_UNFILLED_STATUSES
from core.services import OrderDoc

STATUS_CLASS = {
    "received": "st-pending",
    "queued": "st-pending",
    "pending_approval": "st-working",  # waits for the trader: worth a look
    "processing": "st-pending",
    "submitted": "st-working",
    "partially_filled": "st-working",
    "filled": "st-ok",
    "cancelled": "st-muted",
    "duplicate": "st-muted",
    "rejected": "st-bad",
    "invalid": "st-bad",
    "failed": "st-bad",
    "fanned_out": "st-muted",  # a fan-out parent: its children carry the trading states
}


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_iso(value: str | datetime | None) -> str:
    """``2026-11-22T08:55:01Z`` (seconds precision, always UTC)."""
    moment = _parse(value)
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def age(value: str | datetime | None, now: datetime | None = None) -> str:
    """A short relative age such as ``42 s ago``, ``3 min ago``, ``5 h ago``, ``2 d ago``."""
    moment = _parse(value)
    if moment is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _as_float(value: Any) -> float | str:
    """``value`` as a number, or as the text to show when it is none (empty for None)."""
    if value is None or value == "":
        return ""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def number(value: Any) -> str:
    """Numbers without float noise (``10`` not ``10.0``); empty for None."""
    as_float = _as_float(value)
    if isinstance(as_float, str):
        return as_float
    return f"{as_float:.10f}".rstrip("0").rstrip(".") if as_float != int(as_float) else str(int(as_float))


def money(value: Any) -> str:
    """Money with thousands separators (``4,123,456`` / ``1,234.50``); empty for None."""
    amount = _as_float(value)
    if isinstance(amount, str):
        return amount
    return f"{amount:,.0f}" if amount == int(amount) else f"{amount:,.2f}"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def status_class(value: str | None) -> str:
    return STATUS_CLASS.get(value or "", "st-muted")


def order_class(order: OrderDoc) -> str:
    """Colour of an IB order status: working blue, filled green, refused red, else grey."""
    if order.get("status") in services.WORKING_ORDER_STATUSES:
        return "st-working"
    if order.get("status") == "Filled":
        return "st-ok"
    if order.get("status") in (IB_ENDED_UNFILLED_STATUSES - {"Cancelled"}) | {"Unknown"} or (
        order.get("last_error") and order.get("status") != "Cancelled"
    ):
        return "st-bad"
    return "st-muted"


FILTERS: dict[str, Callable[..., str]] = {
    "utc_iso": utc_iso,
    "age": age,
    "number": number,
    "money": money,
    "pretty_json": pretty_json,
    "status_class": status_class,
    "order_class": order_class,
}
