"""Order rows from IB's order snapshots (the recorder thread): one row per orderRef, created or
updated as IB reports the order, and the alert followed from its primary leg (alert_state.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import events
from core.ids import parse_order_ref
from core.models import (
    IB_DONE_STATUSES,
    IB_ENDED_UNFILLED_STATUSES,
    IB_WORKING_STATUSES,
    Alert,
    AlertStatus,
    Order,
    utcnow,
)
from worker.decision.stored import StoredDecision, position_move_of
from worker.recording.alert_state import (
    CLOSING_LEGS,
    PRIMARY_LEGS,
    REJECT_CODES,
    advance,
    after_close,
    explain_cancel,
    follow,
    note,
    qty_text,
)
from worker.recording.snapshots import OrderError, OrderSnapshot
from worker.recording.unit import PlacementFact, UnitOfWork
from worker.risk.state import EntryOrderRow


def record_placement(uow: UnitOfWork, fact: PlacementFact) -> None:
    alert_id = fact.alert_id
    alert = uow.session.get(Alert, alert_id)
    if alert is not None:
        alert.plan = fact.decision.to_json()
    advance(uow, alert_id, AlertStatus.PROCESSING, "picked up by the worker")
    for snap in [*fact.placed, *fact.adopted]:
        upsert_order(uow, snap)
    if fact.placed:
        parts = [
            f"{s.leg} #{s.ib_order_id} {s.action} {qty_text(s.quantity)} {s.order_type}{_price(s)}"
            for s in fact.placed
        ]
        message = "sent to IB: " + "; ".join(parts)
    else:
        message = "IB already had these orders (found by orderRef after a restart); nothing sent again"
    advance(uow, alert_id, AlertStatus.SUBMITTED, message)


def alert_of(session: Session, ref: str) -> tuple[Alert | None, str | None]:
    parsed = parse_order_ref(ref)
    if parsed is None:
        return None, None
    return session.get(Alert, parsed[0]), parsed[1]


def upsert_order(uow: UnitOfWork, snap: OrderSnapshot) -> Order:
    """Create or update the Order row of ``snap`` (keyed by orderRef) and follow the alert."""
    session = uow.session
    ref = snap.order_ref or f"ib:{snap.perm_id or snap.client_id}:{snap.ib_order_id}"
    row = session.scalar(select(Order).where(Order.order_ref == ref))
    alert, leg = alert_of(session, ref)
    now = utcnow()
    if row is None:
        row = Order(order_ref=ref, alert_id=alert.id if alert else None, leg=leg or "other", action=snap.action,
                    order_type=snap.order_type, quantity=snap.quantity, status="PendingSubmit",
                    status_history={"items": []}, created_at=now)  # fmt: skip
        session.add(row)
    # a leg re-placed after its staged twin vanished carries a new IB order id
    replaced = bool(snap.ib_order_id and row.ib_order_id and snap.ib_order_id != row.ib_order_id)
    old_status, old_filled = row.status, row.filled_quantity
    _copy_terms(row, snap)
    _take_status(row, snap, replaced)
    if row.status != old_status:
        items = list((row.status_history or {}).get("items", []))
        items.append([now.isoformat(), row.status])
        row.status_history = {"items": items}
    row.updated_at = now
    if row.leg == "entry":  # an opening order (the risk rules' orders per minute)
        uow.count(EntryOrderRow(row.order_ref, row.account or "", row.created_at))
    changed = row.status != old_status or row.filled_quantity != old_filled
    if changed and row.alert_id:
        uow.emit(events.order_status(row, snap.remaining))
    if changed and alert is not None:
        follow(uow, alert, row)
    return row


def _copy_terms(row: Order, snap: OrderSnapshot) -> None:
    """The order's identity and terms as IB reports them (what IB left unset is kept)."""
    for attr in ("ib_order_id", "perm_id", "parent_ib_order_id", "account", "con_id", "symbol",
                 "sec_type", "tif", "oca_group"):  # fmt: skip
        value = getattr(snap, attr)
        if value not in (None, ""):
            setattr(row, attr, value)
    row.client_id = snap.client_id
    row.action, row.order_type = snap.action, snap.order_type
    if snap.quantity:
        row.quantity = snap.quantity
    if snap.limit_price is not None:
        row.limit_price = snap.limit_price
    if snap.stop_price is not None:
        row.stop_price = snap.stop_price


def _take_status(row: Order, snap: OrderSnapshot, replaced: bool) -> None:
    """IB's status, fills and refusal, unless the report is stale or a step back (``replaced``:
    the order carries a new IB order id, a re-placed leg)."""
    new_status, old_status = snap.status, row.status
    # a late, stale report must not revive a finished order (unless IB gave it a new id), and
    # the placement's own "PendingSubmit" must not overwrite what IB already reported
    stale = old_status in IB_DONE_STATUSES and new_status in IB_WORKING_STATUSES
    regress = new_status == "PendingSubmit" and old_status != "PendingSubmit"
    if replaced or not (stale or regress):
        row.status = new_status
    if snap.filled is not None and snap.filled >= (row.filled_quantity or 0):
        row.filled_quantity = snap.filled
    if snap.avg_fill_price:
        row.avg_fill_price = snap.avg_fill_price
    error = snap.last_error()
    if error is not None and (error[0] in REJECT_CODES or error[0] == 202):
        # ib_async reports a refusal as a status change first, the error event after it
        row.last_error = f"{error[0]} {error[1]}"


def record_order_error(uow: UnitOfWork, fact: OrderError) -> None:
    code, text = fact.code, fact.text
    row = upsert_order(uow, fact.order)
    if code not in REJECT_CODES and code != 202:
        return  # warnings (399, 2109 ...) are not the order's fate
    row.last_error = f"{code} {text}"
    if code not in REJECT_CODES:
        alert, leg = alert_of(uow.session, row.order_ref)
        if alert is not None:
            explain_cancel(uow, alert, leg, row.last_error)
        return
    alert, leg = alert_of(uow.session, row.order_ref)
    uow.emit(
        events.order_rejected(
            alert.id if alert else None,
            strategy=alert.strategy if alert else None,
            leg=leg or row.leg,
            symbol=row.symbol,
            order_ref=row.order_ref,
            error_code=code,
            reason=text,
            account=alert.fanout_account if alert else None,  # fan-out (issue 11)
        )
    )
    if row.status not in IB_ENDED_UNFILLED_STATUSES:
        row.status = "Inactive"
    if alert is None:
        return
    last_leg = _is_last_leg(alert, leg)
    if leg in CLOSING_LEGS and position_move_of(alert.plan) is not None:
        # the job follows its closing order and concludes (old exits back first)
        note(uow, alert.id, f"IB refused the {leg} order: {code} {text}")
        return
    if leg in PRIMARY_LEGS or last_leg:
        what = "bracket not transmitted" if last_leg and leg not in PRIMARY_LEGS else "not placed"
        advance(uow, alert.id, AlertStatus.REJECTED,
                     f"IB refused the {leg} order ({what}): {code} {text}",
                     reason=f"IB: {text}{after_close(alert, leg)}")  # fmt: skip
    else:
        note(uow, alert.id, f"IB refused the {leg} order: {code} {text}")


def _is_last_leg(alert: Alert, leg: str | None) -> bool:
    legs = StoredDecision.from_json(alert.plan).legs if alert.plan else ()
    return len(legs) > 1 and legs[-1].leg == leg


def _price(snap: OrderSnapshot) -> str:
    if snap.limit_price is not None:
        return f" {qty_text(snap.limit_price)}"
    if snap.stop_price is not None:
        return f" {qty_text(snap.stop_price)}"
    return ""
