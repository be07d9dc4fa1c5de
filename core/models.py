"""The domain tables shared by the web app and the worker (SQLAlchemy 2 typed declarative).

Every schema change goes through an Alembic migration in ``core/migrations``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset by itself)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        Decimal: Numeric(24, 10),
    }


class AlertStatus(enum.StrEnum):
    """Life of an alert. Terminal states end it; a state only ever moves forward."""

    RECEIVED = "received"  # committed, not yet on a queue (Redis down: the relay will enqueue it)
    QUEUED = "queued"
    # The strategy requires approval (the risk file's ``require_approval``): the worker took the
    # alert and decided nothing; an approval puts it back on its queue (``received``, then
    # ``queued``), a rejection or the end of its ``approval_timeout`` ends it ``rejected``.
    PENDING_APPROVAL = "pending_approval"
    PROCESSING = "processing"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    # A fan-out parent: the alert named several accounts (or its strategy has ``accounts`` in the
    # risk file), so intake made one child alert per account in the same transaction. The parent
    # itself trades nothing and ends here at once; each child lives the trading lifecycle above.
    FANNED_OUT = "fanned_out"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        AlertStatus.FILLED,
        AlertStatus.CANCELLED,
        AlertStatus.REJECTED,
        AlertStatus.INVALID,
        AlertStatus.DUPLICATE,
        AlertStatus.FAILED,
        AlertStatus.FANNED_OUT,
    }
)
# Every alert state's name, in lifecycle order (the admin API's and the CLI's ``status`` filter).
ALERT_STATUSES: tuple[str, ...] = tuple(status.value for status in AlertStatus)
# IB's order states (``Order.status``), defined once for the web app and the worker. "Unknown" is
# ours: a working order IB no longer reported after a reconnect.
IB_WORKING_STATUSES = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted", "PendingCancel"})
IB_ENDED_UNFILLED_STATUSES = frozenset({"Cancelled", "ApiCancelled", "Inactive"})
IB_DONE_STATUSES = frozenset({"Filled"}) | IB_ENDED_UNFILLED_STATUSES
# Forward order used to refuse moving an alert backwards (e.g. a late 'submitted' after 'filled').
STATUS_RANK = {
    AlertStatus.RECEIVED: 0,
    AlertStatus.QUEUED: 1,
    AlertStatus.PENDING_APPROVAL: 1,  # left only by an approval or a rejection (core/approval.py)
    AlertStatus.PROCESSING: 2,
    AlertStatus.SUBMITTED: 3,
    AlertStatus.PARTIALLY_FILLED: 4,
    AlertStatus.FILLED: 5,
    AlertStatus.CANCELLED: 5,
    AlertStatus.REJECTED: 5,
    AlertStatus.INVALID: 5,
    AlertStatus.DUPLICATE: 5,
    AlertStatus.FAILED: 5,
    AlertStatus.FANNED_OUT: 5,
}


class AlertStatusType(TypeDecorator[AlertStatus]):
    """``AlertStatus`` in a plain ``VARCHAR(20)`` column (the schema is unchanged: no enum type, no
    CHECK). Query filters may still pass plain strings (``?status=`` from the API): an unknown one
    simply matches nothing, as before."""

    impl = String(20)
    cache_ok = True

    def process_bind_param(self, value: AlertStatus | str | None, dialect: Any) -> str | None:
        return None if value is None else str(value)  # a StrEnum's str is its value

    def process_result_value(self, value: str | None, dialect: Any) -> AlertStatus | None:
        return None if value is None else AlertStatus(value)


class Alert(Base):
    """One webhook request that passed authentication, valid or not."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_idem_received", "idempotency_key", "received_at"),
        Index("ix_alerts_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    status: Mapped[AlertStatus] = mapped_column(AlertStatusType(), default=AlertStatus.RECEIVED)
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    # The body exactly as sent, with the secret removed, so a trader sees what TradingView sent.
    raw_body: Mapped[str | None] = mapped_column(Text)
    # The normalised alert (schema output) or None when invalid.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    errors: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    duplicate_of: Mapped[str | None] = mapped_column(String(26))
    strategy: Mapped[str | None] = mapped_column(String(128))
    account: Mapped[str | None] = mapped_column(String(64))
    ticker: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(16))
    queue_name: Mapped[str | None] = mapped_column(String(128))
    enqueued_at: Mapped[datetime | None] = mapped_column()
    enqueue_attempts: Mapped[int] = mapped_column(Integer, default=0)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # TradingView's {{timenow}} when given: staleness checks and end-to-end latency.
    signal_time: Mapped[datetime | None] = mapped_column()
    # Approval (core/approval.py): until when a ``pending_approval`` alert may be approved, and when
    # it was; the staleness limit then counts from the approval, not from the arrival.
    approval_deadline: Mapped[datetime | None] = mapped_column()
    approved_at: Mapped[datetime | None] = mapped_column()
    # A child alert of a fan-out (one per account) points at its parent; None for every other alert.
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("alerts.id"), index=True)

    children: Mapped[list[Alert]] = relationship(order_by="Alert.id", viewonly=True)
    orders: Mapped[list[Order]] = relationship(back_populates="alert", order_by="Order.id")
    fills: Mapped[list[Fill]] = relationship(back_populates="alert", order_by="Fill.id")
    events: Mapped[list[AlertEvent]] = relationship(back_populates="alert", order_by="AlertEvent.id")

    @property
    def fanout_account(self) -> str | None:
        """The account of a fan-out child, which its notices name (one alert, several accounts:
        the trader must see which account refused or filled); None for any other alert."""
        return self.account if self.parent_id else None


def staleness_start() -> ColumnElement[datetime]:
    """Where an alert's ``STALE_ALERT_SECONDS`` count from: its approval when it waited for one
    (core/approval.py), else its arrival."""
    # the table's columns, not the ORM's: usable in Core statements too (the job's first read)
    table = Alert.__table__
    return func.coalesce(table.c.approved_at, table.c.received_at)


class AlertEvent(Base):
    """Audit trail: every state change of an alert with the reason, in order."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text)

    alert: Mapped[Alert] = relationship(back_populates="events")


class Order(Base):
    """One order leg sent to IB, as last reported by IB."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    leg: Mapped[str] = mapped_column(String(16))  # entry, tp, sl, exit, ...
    order_ref: Mapped[str] = mapped_column(String(64), unique=True)
    account: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[int | None] = mapped_column(Integer)
    ib_order_id: Mapped[int | None] = mapped_column(Integer)
    perm_id: Mapped[int | None] = mapped_column(Integer, index=True)
    parent_ib_order_id: Mapped[int | None] = mapped_column(Integer)
    oca_group: Mapped[str | None] = mapped_column(String(64))
    con_id: Mapped[int | None] = mapped_column(Integer)
    symbol: Mapped[str | None] = mapped_column(String(64))
    sec_type: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(8))  # BUY / SELL
    order_type: Mapped[str] = mapped_column(String(16))  # MKT LMT STP STP LMT TRAIL
    quantity: Mapped[Decimal] = mapped_column()
    limit_price: Mapped[Decimal | None] = mapped_column()
    stop_price: Mapped[Decimal | None] = mapped_column()
    tif: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(24), default="PendingSubmit")
    filled_quantity: Mapped[Decimal] = mapped_column(default=Decimal(0))
    avg_fill_price: Mapped[Decimal | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    status_history: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"items": [[iso, status], ...]}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    alert: Mapped[Alert | None] = relationship(back_populates="orders")


class Fill(Base):
    """One execution reported by IB; ``exec_id`` makes recording idempotent."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("exec_id", name="uq_fills_exec_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exec_id: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[str | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    order_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    leg: Mapped[str | None] = mapped_column(String(16))
    account: Mapped[str | None] = mapped_column(String(64))
    perm_id: Mapped[int | None] = mapped_column(Integer)
    ib_order_id: Mapped[int | None] = mapped_column(Integer)
    symbol: Mapped[str | None] = mapped_column(String(64))
    sec_type: Mapped[str | None] = mapped_column(String(16))
    side: Mapped[str] = mapped_column(String(8))  # BOT / SLD
    price: Mapped[Decimal] = mapped_column()
    quantity: Mapped[Decimal] = mapped_column()
    commission: Mapped[Decimal | None] = mapped_column()
    commission_currency: Mapped[str | None] = mapped_column(String(8))
    realized_pnl: Mapped[Decimal | None] = mapped_column()
    time: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    alert: Mapped[Alert | None] = relationship(back_populates="fills")


class Position(Base):
    """A position as IB last reported it (snapshot written by the worker)."""

    __tablename__ = "positions"
    __table_args__ = (UniqueConstraint("account", "con_id", name="uq_positions_account_conid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    con_id: Mapped[int] = mapped_column(Integer)
    symbol: Mapped[str] = mapped_column(String(64))
    sec_type: Mapped[str] = mapped_column(String(16))
    local_symbol: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column()
    avg_cost: Mapped[Decimal | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Notice(Base):
    """Durable outbox of messages to the trader (Telegram or the log), sent in id order per chat."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_pending", "chat_id", "sent_at", "id"),
        UniqueConstraint("dedup_key", name="uq_notices_dedup_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    silent: Mapped[bool] = mapped_column(default=False)
    # e.g. "fill:<exec_id>": the same event never produces the notice twice.
    dedup_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class Control(Base):
    """Durable operator switches (e.g. ``paused``); Redis keeps nothing across its restarts."""

    __tablename__ = "control"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DedupClaim(Base):
    """Who owns an idempotency key right now: the first alert seen with it, until ``expires_at``.

    Inserted in the same transaction as that alert, so the primary key makes two identical
    requests arriving at the same instant resolve to ONE alert on SQLite and PostgreSQL alike;
    an expired claim is taken over by a conditional UPDATE (see app/webhook/store.py).
    """

    __tablename__ = "dedup_claims"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(26))
    expires_at: Mapped[datetime] = mapped_column(index=True)
