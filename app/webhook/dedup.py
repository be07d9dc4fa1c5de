"""Idempotency keys for alerts, stable across releases.

With an ``id`` field the key is that id, scoped by strategy and ticker (so two strategies that
both send ``"id": "long"`` do not swallow each other's alerts). Without one, the key is a hash of
the normalised alert: TradingView's resends (after a 5xx, 5 s apart, up to 3 times) carry the
same body, so they share it. Either key holds for ``DEDUP_WINDOW_SECONDS`` (default 60 s).

Stable across a deploy: a resend can straddle one (the first try reached the old release, the
resend the new one), so the key must not change when a release adds a payload field. The stored
payload has EVERY field, ``null`` or its default when not given (core/payload.py), so hashing it
whole, as the first releases did, changed every key the day a field was added. The key therefore
hashes a fixed canonical form, version 1 (:data:`KEY_FIELDS_V1`):

* the fields of key version 1 (the payload's fields when the version was fixed), each present,
  ``null`` when not given: exactly the document the first releases hashed, so the keys of the
  alerts stored before the change are the keys computed now (no migration, no broken window);
* a field a later release adds only when the alert gives it a value other than ``null`` and the
  field's default: an alert that does not use it keeps its key, one that does is another alert;
* the same inside ``takeProfit`` / ``stopLoss`` (their stored form has only the keys given, plus
  the stop-loss ``type``);
* sorted keys, no spaces, numbers as stored (the alert's spelling), SHA-256.

A release that changes how a version-1 field is normalised must bump the version (a new prefix),
never change this one silently: tests/app/test_dedup_keys.py holds keys of version 1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from core.payload import AlertPayload, StopLoss, TakeProfit, json_name

# The top-level fields of key version 1, and the keys inside its two nested objects (frozen: NOT
# derived from core/payload.py, whose list grows).
KEY_FIELDS_V1 = frozenset(
    {
        "ticker", "exchange", "action", "sentiment", "positionSize", "prevMarketPosition",
        "prevMarketPositionSize", "quantity", "quantityType", "orderType", "price", "limitPrice",
        "stopPrice", "trailAmount", "trailPercent", "takeProfit", "stopLoss", "timeInForce",
        "extendedHours", "cancel", "time", "account", "strategy", "extras", "id",
    }
)  # fmt: skip
NESTED_FIELDS_V1 = {
    "takeProfit": frozenset({"limitPrice", "percent", "amount", "ticks"}),
    "stopLoss": frozenset(
        {"type", "stopPrice", "limitPrice", "percent", "amount", "ticks", "trailAmount", "trailPercent"}
    ),
}


def _defaults(cls: type) -> dict[str, Any]:
    """The JSON name -> default of each field of a payload dataclass that has one."""
    return {
        json_name(f.name): f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
    }


# What a later release's field holds when the alert does not use it (read from core/payload.py).
DEFAULTS: dict[str, dict[str, Any]] = {
    "": _defaults(AlertPayload),
    "takeProfit": _defaults(TakeProfit),
    "stopLoss": _defaults(StopLoss),
}


def _part(
    doc: Mapping[str, Any], fields: frozenset[str], defaults: Mapping[str, Any], *, all_v1: bool
) -> dict[str, Any]:
    """The fields of version 1 (every one when ``all_v1``, else those present) and the later
    fields the alert gave a value of its own."""
    basis = {k: doc.get(k) for k in fields} if all_v1 else {k: v for k, v in doc.items() if k in fields}
    for key, value in doc.items():
        if key not in fields and value is not None and (key not in defaults or value != defaults[key]):
            basis[key] = value
    return basis


def canonical_v1(payload: Mapping[str, Any], defaults: Mapping[str, Mapping[str, Any]] = DEFAULTS) -> str:
    """The text hashed by a version-1 ``body:`` key (see the module docstring). ``defaults``: the
    later fields' defaults (tests pass those of a simulated release)."""
    basis = _part(payload, KEY_FIELDS_V1, defaults.get("", {}), all_v1=True)
    for name, fields in NESTED_FIELDS_V1.items():
        nested = basis.get(name)
        if isinstance(nested, Mapping):
            basis[name] = _part(nested, fields, defaults.get(name, {}), all_v1=False)
    return json.dumps(basis, sort_keys=True, separators=(",", ":"), default=str)


def idempotency_key(payload: Mapping[str, Any], defaults: Mapping[str, Mapping[str, Any]] = DEFAULTS) -> str:
    """``id:<sha256>`` from the sender's id, else ``body:<sha256>`` of the alert's canonical form
    (version 1). ``payload``: the stored form (``AlertPayload.to_json``, secrets masked)."""
    if payload.get("id"):
        basis = json.dumps([payload.get("strategy"), payload.get("ticker"), payload["id"]])
        return "id:" + hashlib.sha256(basis.encode()).hexdigest()
    return "body:" + hashlib.sha256(canonical_v1(payload, defaults).encode()).hexdigest()
