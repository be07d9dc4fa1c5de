"""Alert identifiers: time-sortable and globally unique (ULID layout, Crockford base32).

Why not an autoincrement integer: the id is part of every IB ``orderRef``
(``tv2ib:<alert id>:<leg>``) and the worker refuses to place a leg whose ref IB already knows.
A fresh database restarting at 1 would collide with refs of an earlier run still in IB's
executions and silently skip real trades. A random, time-ordered id cannot collide.
"""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_alert_id(now: float | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits."""
    ms = int((time.time() if now is None else now) * 1000)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def order_ref(alert_id: str, leg: str) -> str:
    """The IB ``orderRef`` of one leg of one alert; the idempotency tag of invariant 2."""
    return f"tv2ib:{alert_id}:{leg}"


def parse_order_ref(ref: str | None) -> tuple[str, str] | None:
    """``(alert_id, leg)`` from an ``orderRef`` of ours, else None."""
    if not ref or not ref.startswith("tv2ib:"):
        return None
    parts = ref.split(":")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


# A protective leg: the bracket's ``tp`` / ``sl``, re-attached ``tp2`` / ``sl3``; the slices of a
# take-profit in levels ``tp.1`` / ``sl.1`` (level 1), re-attached ``sl.1r2`` (docs/positions.md).
EXIT_LEG = re.compile(r"(tp|sl)(?:\d*|\.(\d+)(?:r\d+)?)")


def exit_leg_parts(leg: str | None) -> tuple[str, str] | None:
    """``(role, slice)`` of a protective leg: ``("sl", "")`` for ``sl`` / ``sl2``, ``("tp", "1")``
    for ``tp.1`` / ``tp.1r2``; None for any other leg."""
    match = EXIT_LEG.fullmatch(leg or "")
    return (match.group(1), match.group(2) or "") if match else None


def slice_leg(role: str, level: int | str) -> str:
    """The leg of one slice's exit: ``tp.1``, ``sl.3``."""
    return f"{role}.{level}"
