"""Server-sent events: the ``GET /api/events`` stream (``event: <kind>`` + ``data: <json>`` messages)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """Yield ``(kind, data)`` per message; data is parsed JSON (the raw text when it is not JSON).

    Follows the SSE rules that matter here: a blank line ends a message, several ``data:`` lines are
    joined with newlines, ``:`` lines are comments (keep-alives), the kind defaults to ``message``.
    """
    kind, data = "message", []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                yield kind, payload
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value or "message"
        elif name == "data":
            data.append(value)


def describe(kind: str, data: Any) -> str:
    """One readable line for an event (fields the worker publishes: alert_id, status, symbol, ...)."""
    if not isinstance(data, dict):
        return f"{kind} {data}"
    parts = [kind]
    for key in (
        "alert_id",
        "order_ref",
        "symbol",
        "leg",
        "side",
        "action",
        "status",
        "quantity",
        "price",
        "reason",
    ):
        if data.get(key) not in (None, ""):
            parts.append(f"{key}={data[key]}")
    return " ".join(parts)
