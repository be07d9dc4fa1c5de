"""What an alert is refused for before its fields are read: keys it may not use (with a "did you
mean" hint, also for the names other webhook tools use), TradingView placeholders ``{{...}}`` left
unfilled (named), and values nested too deep.

The keys an alert may use come from :class:`core.payload.AlertPayload` and its parts, as the
schema's fields do (:mod:`app.webhook.schema` checks that the two agree when it is imported).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from app.webhook.fields import MAX_HINTED_NAME
from core.payload import AlertPayload, StopLoss, TakeProfit, json_names

MAX_NESTING = 16
MAX_REPORTED_UNKNOWN = 20
PLACEHOLDER_RE = re.compile(r"\{\{[^{}]{0,200}\}\}")
# JSON values that hold no other value (exact types: subclasses take the general walk)
_FLAT = frozenset({str, int, float, bool, type(None)})

# Every field list comes from core.payload's dataclasses.
PAYLOAD_KEYS = json_names(AlertPayload)
# Accepted names that are not payload keys: an alias, folded into the payload key it names
# (``instrinsicValue``: TradersPost's own examples spell it so).
INPUT_ALIASES = {"signalPrice": "price", "instrinsicValue": "intrinsicValue"}
# Payload keys an alert does not send: ``exchange`` is the prefix of ``ticker``.
DERIVED_KEYS = frozenset({"exchange"})
TOP_LEVEL_FIELDS = (
    "secret",
    *(
        name
        for key in PAYLOAD_KEYS
        if key not in DERIVED_KEYS
        for name in (key, *(alias for alias, target in INPUT_ALIASES.items() if target == key))
    ),
)
TAKE_PROFIT_FIELDS = json_names(TakeProfit)
STOP_LOSS_FIELDS = json_names(StopLoss)


# Names other webhook tools use for our fields.
ALIASES = {
    "qty": "quantity",
    "contracts": "quantity",
    "size": "quantity",
    "side": "action",
    "symbol": "ticker",
    "tp": "takeProfit",
    "sl": "stopLoss",
    "type": "orderType",
    "tif": "timeInForce",
}


def _hint(name: str, known: tuple[str, ...], fallback: str = "put free-form data in 'extras'") -> str:
    lowered = {k.lower(): k for k in known}
    match = lowered.get(name.lower().replace("_", "").replace("-", ""))
    if match is None and ALIASES.get(name.lower()) in known:
        match = ALIASES[name.lower()]
    if match is None and len(name) <= MAX_HINTED_NAME:  # difflib's cost grows with the length
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        match = close[0] if close else None
    if match is not None:
        return f"unknown field; did you mean {match!r}?"
    return f"unknown field; {fallback}"


def check_unknown(alert: Mapping[str, Any]) -> dict[str, Any]:
    """Errors for unknown keys at the top level and inside takeProfit / stopLoss."""
    errors: dict[str, Any] = {}
    unknown = [str(key) for key in alert if key not in TOP_LEVEL_FIELDS]
    for key in unknown[:MAX_REPORTED_UNKNOWN]:
        errors[key[:MAX_HINTED_NAME]] = [_hint(key, TOP_LEVEL_FIELDS[1:])]
    if len(unknown) > MAX_REPORTED_UNKNOWN:
        errors["_unknown"] = [f"{len(unknown) - MAX_REPORTED_UNKNOWN} more unknown fields not listed"]
    for parent, known in (("takeProfit", TAKE_PROFIT_FIELDS), ("stopLoss", STOP_LOSS_FIELDS)):
        nested = alert.get(parent)
        if isinstance(nested, Mapping):
            fallback = f"{parent} takes {', '.join(known)}"
            for key in [str(k) for k in nested if k not in known][:MAX_REPORTED_UNKNOWN]:
                errors.setdefault(parent, {})[key[:MAX_HINTED_NAME]] = [_hint(key, known, fallback)]
    return errors


def find_placeholders(value: Any) -> list[str]:
    """TradingView ``{{...}}`` placeholders left unexpanded anywhere in ``value`` (strings only)."""
    if type(value) in _FLAT:  # most fields: nothing to walk
        return sorted(set(PLACEHOLDER_RE.findall(value))) if type(value) is str and "{{" in value else []
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.extend(PLACEHOLDER_RE.findall(item))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(set(found))


def nesting_depth(value: Any) -> int:
    """Depth of nested objects/arrays, computed without recursion."""
    if type(value) in _FLAT:
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            return deepest
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest
