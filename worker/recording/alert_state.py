"""An alert's state as its orders move (the recorder thread; no IB).

State only moves forward (``STATUS_RANK``): ``submitted`` when the legs are sent,
``partially_filled`` / ``filled`` as its LAST PRIMARY leg fills (``filled`` = the position reached
the alert's target: the entry complete, or for an alert that only reduces or closes, its ``close``
/ ``exit`` order complete; a reversal is ``filled`` when its ``entry`` -- the opening half -- is,
its close's fill is an audit line; the take-profit and stop-loss live on and are recorded as they
fill), ``cancelled`` when that leg is cancelled, ``rejected`` with IB's text when IB refuses the
entry (or the bracket's last leg). A ``close`` / ``exit`` leg that IB refuses (or that a reversal
gave up waiting for) is the job's to conclude: it puts the old protection back first and then ends
the alert saying so (worker/execution/protocol.py).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text, update

from core import events
from core.alert_rows import ALERTS, INSERT_EVENT
from core.models import IB_ENDED_UNFILLED_STATUSES, STATUS_RANK, Alert, AlertEvent, AlertStatus, Order, utcnow
from worker.decision.stored import position_move_of
from worker.recording.unit import UnitOfWork

log = logging.getLogger(__name__)

# IB error codes that mean "this order was refused" (not warnings, not cancel confirmations).
REJECT_CODES = frozenset(
    {103, 104, 105, 106, 107, 109, 110, 111, 135, 136, 200, 201, 203, 321, 382, 383, 404}
) | {100}  # 100: refused for pacing every time it was sent (worker/ib/paced.py gave up)
PACING = 100


def ib_reason(code: int | str, text: str) -> str:
    """An alert's reason for IB's refusal: ``IB pacing: ...`` for error 100, else ``IB: ...``."""
    return f"IB pacing: {text}" if str(code) == str(PACING) else f"IB: {text}"


# Legs whose refusal means the alert did not trade: the entry, an exit, and the leg that transmits
# a bracket (IB never transmits the staged parent when it refuses the last leg).
PRIMARY_LEGS = frozenset({"entry", "exit", "close"})
# The closing legs of a position plan (the protocol follows them and concludes their failures).
CLOSING_LEGS = frozenset({"exit", "close"})


def advance(
    uow: UnitOfWork,
    alert_id: str,
    status: AlertStatus,
    message: str,
    *,
    reason: str | None = None,
) -> bool:
    """Move an alert forward to ``status`` (never backwards), with an audit row and events."""
    session = uow.session
    alert = session.get(Alert, alert_id)
    if alert is None:
        return False
    current = AlertStatus(alert.status)
    if STATUS_RANK[status] <= STATUS_RANK[current]:
        return False
    alert.status = status
    if reason is not None or status.is_terminal:
        alert.reason = reason or message
    session.add(AlertEvent(alert_id=alert_id, status=status.value, message=message, at=utcnow()))
    uow.emit(events.alert_status(alert_id, status.value, alert.reason))
    if status in (AlertStatus.REJECTED, AlertStatus.FAILED):
        uow.emit(
            events.alert_rejected(
                alert_id,
                strategy=alert.strategy,
                ticker=alert.ticker,
                action=alert.action,
                status=status.value,
                reason=alert.reason,
                account=alert.fanout_account,  # fan-out (issue 11): a child's notice names its account
            )
        )
    log.info("alert %s -> %s: %s", alert_id, status.value, message)
    return True


# the states an alert leaves when a job first writes about it (picked up -> processing)
_BEFORE_PROCESSING = tuple(s for s in AlertStatus if STATUS_RANK[s] < STATUS_RANK[AlertStatus.PROCESSING])
PICKED_UP = "picked up by the worker"


# built once (a statement built per call costs its cache key every time); the states it moves from
# are literals (constants of the code), so that the DB-API's copy of it (worker/recording/
# decision_row.py) needs no expanding list
_BEFORE = ", ".join(f"'{status.value}'" for status in _BEFORE_PROCESSING)
STORE_DECISION = (
    update(ALERTS)
    .where(ALERTS.c.id == bindparam("alert_id"), text(f"alerts.status IN ({_BEFORE})"))
    .values(plan=bindparam("new_plan"), status=AlertStatus.PROCESSING, updated_at=bindparam("at"))
    .returning(ALERTS.c.reason)
)


def store_decision(uow: UnitOfWork, alert_id: str, plan: dict[str, Any], message: str) -> bool:
    """The job's decision on an alert not yet picked up: its plan stored and the alert moved to
    ``processing``, with the two audit lines (picked up, ``message``), as plain SQL statements.

    This is the write every order waits for, so it skips the ORM's unit of work (about three
    quarters of its cost): one conditional UPDATE and one INSERT. Returns False, having written
    nothing, when the alert is not in a state before ``processing`` (a rerun, or a job that waited
    for IB and said so): the caller then takes the general path, :func:`advance` and :func:`note`.
    """
    session = uow.session
    if session.new or session.dirty:  # an earlier fact of this batch: its rows go first
        session.flush()
    now = utcnow()
    moved = (
        session.connection()
        .execute(STORE_DECISION, {"alert_id": alert_id, "new_plan": plan, "at": now})
        .first()
    )
    if moved is None:
        return False
    loaded = session.identity_map.get(session.identity_key(Alert, alert_id))
    if loaded is not None:  # an earlier fact of this batch read the row: it must read it again
        session.expire(loaded)
    session.connection().execute(INSERT_EVENT, [
        {"alert_id": alert_id, "status": AlertStatus.PROCESSING.value, "message": PICKED_UP, "at": now},
        {"alert_id": alert_id, "status": AlertStatus.PROCESSING.value, "message": message, "at": now},
    ])  # fmt: skip
    uow.emit(events.alert_status(alert_id, AlertStatus.PROCESSING.value, moved[0]))
    log.info("alert %s -> %s: %s", alert_id, AlertStatus.PROCESSING.value, PICKED_UP)
    return True


def note(uow: UnitOfWork, alert_id: str, message: str) -> None:
    """An audit line that does not change the state."""
    alert = uow.session.get(Alert, alert_id)
    if alert is not None:
        uow.session.add(AlertEvent(alert_id=alert_id, status=alert.status, message=message, at=utcnow()))


def follow(uow: UnitOfWork, alert: Alert, row: Order) -> None:
    """Alert state from its primary leg's order state."""
    if row.leg not in PRIMARY_LEGS:
        return
    filled, total = row.filled_quantity or Decimal(0), row.quantity or Decimal(0)
    label = f"{row.leg} #{row.ib_order_id} {row.action} {qty_text(total)} {row.symbol or ''}".rstrip()
    position = position_move_of(alert.plan)
    # a reversal's close (or one whose opening part was refused): the job concludes the alert
    opens_after = position is not None and position.reversal
    if row.leg in CLOSING_LEGS and position is not None:
        if row.status == "Filled" or (total and filled >= total):
            if opens_after:  # a reversal's first half: the entry's fill decides the alert
                note(uow, alert.id, f"{label} filled; the opening order follows")
                return
        elif row.status in IB_ENDED_UNFILLED_STATUSES:
            code = (row.last_error or "").partition(" ")[0]
            if opens_after or (code.isdigit() and int(code) in REJECT_CODES):
                # the job concludes: it puts the old protection back, then ends the alert
                note(uow, alert.id, f"{label} ended: {row.last_error or row.status}")
                return
    if row.status == "Filled" or (total and filled >= total):
        price = f" @ {qty_text(row.avg_fill_price)}" if row.avg_fill_price else ""
        advance(uow, alert.id, AlertStatus.FILLED, f"{label} filled{price}")
    elif row.status in IB_ENDED_UNFILLED_STATUSES:
        why = row.last_error or f"{row.status} at IB"
        code, _, text = why.partition(" ")
        if code.isdigit() and int(code) in REJECT_CODES and not filled:
            advance(uow, alert.id, AlertStatus.REJECTED, f"IB refused the {row.leg} order: {why}",
                         reason=f"{ib_reason(code, text)}{after_close(alert, row.leg)}")  # fmt: skip
            return
        done = f" after {qty_text(filled)}/{qty_text(total)} filled" if filled else ""
        advance(uow, alert.id, AlertStatus.CANCELLED, f"{label} cancelled{done}: {why}",
                     reason=f"{row.leg} cancelled{done}: {why}")  # fmt: skip
    elif filled > 0:
        advance(uow, alert.id, AlertStatus.PARTIALLY_FILLED,
                     f"{label} partially filled {qty_text(filled)}/{qty_text(total)}")  # fmt: skip
    elif row.status in ("Submitted", "PreSubmitted"):
        advance(uow, alert.id, AlertStatus.SUBMITTED, f"{label} working at IB")


def explain_cancel(uow: UnitOfWork, alert: Alert, leg: str | None, why: str) -> None:
    """IB's 202 ("Order Canceled - reason:...") for a primary leg, after its Cancelled status
    already ended the alert without a reason (ib_async reports the status first): the alert's
    reason takes IB's words. Nothing else changes."""
    if leg not in PRIMARY_LEGS or alert.status != AlertStatus.CANCELLED or not alert.reason:
        return
    head, sep, tail = alert.reason.rpartition(": ")
    if not sep or not head.startswith(f"{leg} cancelled") or not tail.endswith(" at IB"):
        return
    alert.reason = f"{head}: {why}"
    note(uow, alert.id, f"IB's reason for the {leg} cancel: {why}")
    uow.emit(events.alert_status(alert.id, AlertStatus(alert.status).value, alert.reason))


def after_close(alert: Alert, leg: str | None) -> str:
    """For a reversal whose opening order IB refused: the close went through, so say where the
    position is (flat, not on the old side without its exits)."""
    position = position_move_of(alert.plan)
    if leg != "entry" or position is None or position.kind != "reverse":
        return ""
    return " (the close went through: the position is flat, not reversed)"


def qty_text(value: Decimal | None) -> str:
    return "?" if value is None else format(value.normalize(), "f")
