"""Positions as IB reports them, and the reconciliation after a (re)connect (the recorder thread)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.models import IB_WORKING_STATUSES, Order, Position, utcnow
from worker.recording.alert_state import note
from worker.recording.fill_rows import record_fill
from worker.recording.order_rows import upsert_order
from worker.recording.snapshots import PositionSnapshot, Reconciliation
from worker.recording.unit import UnitOfWork

log = logging.getLogger(__name__)


def record_position(uow: UnitOfWork, snap: PositionSnapshot) -> None:
    """The position as IB last reported it: one upsert, since IB reports every position of an
    account to every worker connected to it, and a look-then-insert lost the race when two
    workers recorded the same new position ("UNIQUE constraint failed")."""
    values = {"symbol": snap.symbol, "sec_type": snap.sec_type, "local_symbol": snap.local_symbol,
              "quantity": snap.quantity, "avg_cost": snap.avg_cost, "updated_at": utcnow()}  # fmt: skip
    upsert_position(uow.session, snap.account, snap.con_id, values)


def reconcile(uow: UnitOfWork, data: Reconciliation) -> dict[str, int]:
    """After a (re)connect: IB's orders, executions and positions; mark what vanished."""
    session = uow.session
    seen_refs = set()
    for snap in data.orders:
        row = upsert_order(uow, snap)
        seen_refs.add(row.order_ref)
    new_fills = sum(record_fill(uow, f) for f in data.fills)
    account = data.account
    reported = set()
    for position in data.positions:
        record_position(uow, position)
        reported.add(position.con_id)
    if account:
        # populate_existing: the upserts above went to the database, not to rows this session
        # may hold from earlier in the transaction
        query = select(Position).where(Position.account == account).execution_options(populate_existing=True)
        for row in session.scalars(query):
            if row.con_id not in reported and row.quantity != 0:
                row.quantity = Decimal(0)
                row.updated_at = utcnow()
    vanished = 0
    stale = session.scalars(
        select(Order).where(Order.client_id == data.client_id, Order.status.in_(sorted(IB_WORKING_STATUSES)))
    )
    for row in stale:
        if row.order_ref in seen_refs:
            continue
        vanished += 1
        when = datetime.now(UTC).strftime("%H:%M:%S")
        row.status = "Unknown"
        row.last_error = f"not reported by IB after reconnect at {when} UTC (never transmitted, or purged)"
        items = list((row.status_history or {}).get("items", []))
        items.append([utcnow().isoformat(), "Unknown"])
        row.status_history = {"items": items}
        if row.alert_id:
            note(uow, row.alert_id, f"{row.leg} order #{row.ib_order_id} vanished: {row.last_error}")
    log.info("reconciled (%s): %d orders, %d new fills, %d positions, %d vanished", data.why,
             len(data.orders), new_fills, len(data.positions), vanished)  # fmt: skip
    return {"orders": len(data.orders), "new_fills": new_fills, "vanished": vanished}


def upsert_position(session: Session, account: str, con_id: int, values: dict[str, Any]) -> None:
    """Insert or update the ``positions`` row of (account, con_id) in one statement, race-free
    between concurrent writers (PostgreSQL and SQLite: INSERT ... ON CONFLICT DO UPDATE)."""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(Position).values(account=account, con_id=con_id, **values)
        session.execute(stmt.on_conflict_do_update(index_elements=["account", "con_id"], set_=values))
        return
    # other databases: look, then insert in a savepoint; a concurrent insert turns into an update
    where = (Position.account == account, Position.con_id == con_id)
    if session.scalar(select(Position.id).where(*where)) is None:
        try:
            with session.begin_nested():
                session.add(Position(account=account, con_id=con_id, **values))
            return
        except IntegrityError:
            pass
    session.execute(update(Position).where(*where).values(**values))
