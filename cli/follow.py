"""Follow one alert to its outcome by polling ``GET /api/alerts/<id>``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cli import exitcodes
from cli.client import ApiClient
from core.ids import exit_leg_parts

if TYPE_CHECKING:
    from core.services import AlertDoc

# fanned_out: a parent whose children trade on their accounts; the detail lists them
TERMINAL = frozenset({"filled", "cancelled", "rejected", "invalid", "duplicate", "failed", "fanned_out"})
FAILURES = frozenset({"cancelled", "rejected", "invalid", "failed"})
# IB order states of an order that rests at the broker and can still fill.
WORKING_ORDER = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted"})


@dataclass(frozen=True)
class Outcome:
    """Where following stopped: ``state`` is the alert's status or ``working``; ``exit_code`` means it."""

    state: str
    exit_code: int
    alert: AlertDoc


def entry_working(alert: AlertDoc) -> bool:
    """True when the alert's opening order rests at IB (a limit or stop waiting for its price).

    A market entry is never "working" for this purpose: it fills in moments, so we wait for the fill.
    """
    if alert.get("status") not in {"submitted", "partially_filled"}:
        return False
    for order in alert.get("orders") or []:
        if exit_leg_parts(order.get("leg")) is not None:  # tp, sl2, a level's tp.1 / sl.1
            continue
        if order.get("status") in WORKING_ORDER and str(order.get("order_type") or "").upper() not in {
            "MKT",
            "MARKET",
        }:
            return True
    return False


def classify(alert: AlertDoc) -> Outcome | None:
    """The outcome when following can stop, else None."""
    status = str(alert.get("status"))
    if status in FAILURES:
        return Outcome(status, exitcodes.REJECTED, alert)
    if status in TERMINAL:
        return Outcome(status, exitcodes.OK, alert)
    if entry_working(alert):
        return Outcome("working", exitcodes.OK, alert)
    return None


def follow_alert(
    client: ApiClient,
    alert_id: str,
    timeout: float,
    on_update: Callable[[AlertDoc], None] = lambda alert: None,
    interval: float = 0.2,
) -> Outcome:
    """Poll the alert until :func:`classify` says stop or ``timeout`` passes (then state ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        alert: AlertDoc = client.get(f"/api/alerts/{alert_id}")
        on_update(alert)
        outcome = classify(alert)
        if outcome is not None:
            return outcome
        if time.monotonic() >= deadline:
            return Outcome("timeout", exitcodes.TIMEOUT, alert)
        time.sleep(interval)
