"""Idempotency keys for alerts.

With an ``id`` field the key is that id, scoped by strategy and ticker (so two strategies that
both send ``"id": "long"`` do not swallow each other's alerts). Without one, the key is a hash of
the whole normalised alert: TradingView's resends (after a 5xx, 5 s apart, up to 3 times) carry
the same body, so they share it. Either key holds for ``DEDUP_WINDOW_SECONDS`` (default 60 s).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def idempotency_key(payload: Mapping[str, Any]) -> str:
    """``id:<sha256>`` from the sender's id, else ``body:<sha256>`` of the normalised alert."""
    if payload.get("id"):
        basis = json.dumps([payload.get("strategy"), payload.get("ticker"), payload["id"]])
        return "id:" + hashlib.sha256(basis.encode()).hexdigest()
    basis = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return "body:" + hashlib.sha256(basis.encode()).hexdigest()
