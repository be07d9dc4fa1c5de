"""Fill rows from IB's executions (the recorder thread): insert-or-ignore by exec id, the ``fill``
event once, with its commission."""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select

from core import events
from core.events import Event
from core.ids import exit_leg_parts
from core.models import Fill, Order, utcnow
from worker.recording.alert_state import note, qty_text
from worker.recording.order_rows import alert_of
from worker.recording.snapshots import FillSnapshot
from worker.recording.unit import UnitOfWork
from worker.risk.state import ClosedFillRow, RealizedFillRow

log = logging.getLogger(__name__)


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def record_fill(uow: UnitOfWork, snap: FillSnapshot) -> bool:
    """Insert-or-ignore by exec id; the "fill" event goes out once, with its commission."""
    session = uow.session
    row = session.scalar(select(Fill).where(Fill.exec_id == snap.exec_id))
    alert, leg = alert_of(session, snap.order_ref)
    order = session.scalar(select(Order).where(Order.order_ref == snap.order_ref)) if snap.order_ref else None
    if row is not None and not same_execution(row, snap):
        _conflict(uow, row, snap, alert.id if alert else None)
        return False
    new = row is None
    if row is None:
        row = Fill(exec_id=snap.exec_id, alert_id=alert.id if alert else None, order_id=order.id if order else None,
                   order_ref=snap.order_ref or None, leg=leg, account=snap.account, perm_id=snap.perm_id,
                   ib_order_id=snap.ib_order_id, symbol=snap.local_symbol or snap.symbol, sec_type=snap.sec_type,
                   side=snap.side, price=snap.price, quantity=snap.quantity, time=snap.time,
                   recorded_at=utcnow())  # fmt: skip
        session.add(row)
        session.flush()
    # one event per execution, carrying its commission: when the report arrives, or when a
    # reconciliation finds an execution we never saw together with its report
    if snap.commission is not None and row.commission is None:
        row.commission = snap.commission
        row.commission_currency = snap.commission_currency
        row.realized_pnl = snap.realized_pnl
        uow.emit(_fill_event(row, snap, alert.strategy if alert else None, order))
    if row.realized_pnl is not None and row.time is not None:  # also a row another worker wrote
        uow.count(RealizedFillRow(row.exec_id, row.account or "", row.time, row.realized_pnl))
    if (
        (exit_leg_parts(row.leg) or ("",))[0] == "sl" or row.realized_pnl is not None
    ) and row.time is not None:  # the protections'
        symbol = (order.symbol if order is not None else None) or snap.symbol or row.symbol or ""
        uow.count(ClosedFillRow(row.exec_id, row.account or "", (alert.strategy if alert else None) or "", symbol,
                                row.leg or "", row.order_ref or "", row.time, row.realized_pnl))  # fmt: skip
    if new and alert is not None:
        note(uow, alert.id, f"fill {row.leg}: {row.side} {qty_text(row.quantity)} @ {qty_text(row.price)}"
                  f" (exec {row.exec_id})")  # fmt: skip
    return new


def same_execution(row: Fill, snap: FillSnapshot) -> bool:
    """Whether the stored fill ``row`` is the execution ``snap`` reports (same exec id, and the
    same order and account where both say). IB's exec ids are unique; a simulator restarted
    without its state, or a database shared by two simulators, can repeat one for another fill."""
    pairs = (
        (row.perm_id, snap.perm_id),
        (row.account, snap.account),
        (row.order_ref, snap.order_ref or None),
    )
    return all(a is None or b is None or a == b for a, b in pairs)


def _conflict(uow: UnitOfWork, row: Fill, snap: FillSnapshot, alert_id: str | None) -> None:
    """An execution whose exec id is already stored for another fill: not recorded, and said loudly
    (the fill row cannot take a second execution under the same id)."""
    text = (f"execution {snap.exec_id} ({snap.side} {qty_text(snap.quantity)} @ {qty_text(snap.price)},"
            f" order {snap.order_ref or snap.perm_id}) not recorded: that exec id is already stored for"
            f" another fill (order {row.order_ref or row.perm_id}); IB's exec ids are unique, so the"
            " gateway was replaced or reset under a database that kept its fills")  # fmt: skip
    log.error("%s", text)
    if alert_id is not None:
        note(uow, alert_id, text)


def _fill_event(row: Fill, snap: FillSnapshot, strategy: str | None, order: Order | None) -> Event:
    """The ``fill`` event of one execution with its commission (for the notice and the dashboard)."""
    return events.fill(
        row.exec_id, alert_id=row.alert_id, strategy=strategy, leg=row.leg, symbol=snap.symbol,
        local_symbol=snap.local_symbol, sec_type=snap.sec_type, side=row.side, quantity=_f(row.quantity),
        price=_f(row.price), cum_quantity=_f(snap.cum_quantity),
        order_quantity=_f(snap.order_quantity or (order.quantity if order else None)), order_ref=row.order_ref,
        time=row.time.isoformat() if row.time else None, commission=_f(row.commission),
        commission_currency=row.commission_currency, realized_pnl=_f(row.realized_pnl), account=row.account,
    )  # fmt: skip
