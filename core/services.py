"""Operator functions shared by the HTTP admin API, the dashboard and the Telegram commands.

Each takes its dependencies explicitly (a session factory, a Redis client) and returns plain
JSON-ready data, so every front end says the same thing.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NotRequired, TypedDict, cast

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from core import keys, routing
from core.models import IB_WORKING_STATUSES, Alert, AlertStatus, Control, Fill, Order, Position, utcnow
from core.performance import execution_of
from core.risk_protections import LOCKS_KEY_PREFIX
from core.slippage import ExecutionDoc

PAUSED_KEY = "paused"
# Job the worker runs for /flatten: cancel every working order, then close every position.
FLATTEN_JOB = keys.FLATTEN_JOB  # kept here for the callers of the operator functions
# IB order states that can still fill (what ``list_orders(working_only=True)`` returns).
# kept under this name for the dashboard and the Telegram commands; defined in core.models
WORKING_ORDER_STATUSES = IB_WORKING_STATUSES


# --- what the operator functions return (the API sends them as JSON) ----------------------------


class OrderDoc(TypedDict):
    """An order as IB last reported it."""

    leg: str
    ib_order_id: int | None
    perm_id: int | None
    order_ref: str
    parent_ib_order_id: int | None
    symbol: str | None
    sec_type: str | None
    action: str
    order_type: str
    quantity: float | None
    limit_price: float | None
    stop_price: float | None
    tif: str | None
    oca_group: str | None
    status: str
    filled_quantity: float | None
    avg_fill_price: float | None
    last_error: str | None
    alert_id: str | None
    updated_at: str | None


class FillDoc(TypedDict):
    """One execution of an alert's order."""

    exec_id: str
    leg: str | None
    symbol: str | None
    side: str
    price: float | None
    quantity: float | None
    commission: float | None
    realized_pnl: float | None
    time: str | None
    alert_id: str | None


class ChildDoc(TypedDict):
    """One child of a fan-out as its parent lists it."""

    id: str
    account: str | None
    status: str
    reason: str | None


class AlertEventDoc(TypedDict):
    """One step of an alert's audit trail."""

    at: str | None
    status: str
    message: str | None


class AlertRow(TypedDict):
    """An alert's own columns, as lists show them."""

    id: str
    status: str
    reason: str | None
    received_at: str | None
    ticker: str | None
    action: str | None
    strategy: str | None
    account: str | None
    parent_id: str | None
    approval_deadline: str | None  # a pending_approval alert's: approve it before this (core/approval.py)
    approved_at: str | None  # when it was approved; its staleness counts from here


class AlertDoc(AlertRow):
    """An alert as lists show it; with ``detail``, everything that is known about it."""

    children: NotRequired[list[ChildDoc]]  # a fan-out parent's
    payload: NotRequired[dict[str, Any] | None]
    raw_body: NotRequired[str | None]
    errors: NotRequired[dict[str, Any] | None]
    duplicate_of: NotRequired[str | None]
    plan: NotRequired[dict[str, Any] | None]
    orders: NotRequired[list[OrderDoc]]
    fills: NotRequired[list[FillDoc]]
    # slippage against the alert's price (positive is a cost) and signal -> fill latency; None
    # before any fill (core/slippage.py)
    execution: NotRequired[ExecutionDoc | None]
    events: NotRequired[list[AlertEventDoc]]


class PositionDoc(TypedDict):
    """A non-zero position as IB last reported it."""

    account: str
    con_id: int
    symbol: str
    sec_type: str
    local_symbol: str | None
    quantity: float | None
    avg_cost: float | None
    updated_at: str | None


class PnlDoc(TypedDict):
    """Today's (UTC) executions."""

    date: str
    fills: int
    realized_pnl: float
    commissions: float


class PausedDoc(TypedDict):
    paused: bool
    by: str


class FlattenDoc(TypedDict):
    flatten: str
    job_id: str
    account: str | None


class LockDoc(TypedDict):
    """A protection of the risk file locking a strategy's new entries (docs/risk.md "Protections"),
    as the worker announced it."""

    account: str
    strategy: str  # "": alerts without a strategy
    rule: str  # stop_out_cooldown_minutes, stop_loss_guard, drawdown_pause, daily_profit_target
    symbol: str  # "": every ticker of the strategy
    since: str  # ISO 8601
    until: str  # ISO 8601
    why: str  # "AAPL stopped out at 14:02"


class StatusDoc(TypedDict):
    """What an operator checks first. ``workers``: each live worker's heartbeat (the worker's own
    JSON, with ``age_seconds``); ``locks``: the protections' locks that hold; the API adds
    ``pnl_today``, the bot ``notices_pending``."""

    paused: bool
    redis: bool
    workers: list[dict[str, Any]]
    queues: dict[str, int]
    last_alert: AlertDoc | None
    locks: list[LockDoc]
    pnl_today: NotRequired[PnlDoc]
    notices_pending: NotRequired[int]


def _columns(row: object, doc: type) -> dict[str, Any]:
    """The row's columns named as the keys of the TypedDict ``doc`` (in its order), ready for JSON:
    a Decimal as a number, a datetime as ISO text."""
    return {name: _json_value(getattr(row, name)) for name in doc.__annotations__}


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def order_to_dict(order: Order) -> OrderDoc:
    return cast(OrderDoc, _columns(order, OrderDoc))


def fill_to_dict(fill: Fill) -> FillDoc:
    return cast(FillDoc, _columns(fill, FillDoc))


def alert_to_dict(alert: Alert, *, detail: bool = False) -> AlertDoc:
    doc = cast(AlertDoc, _columns(alert, AlertRow))
    if detail:
        doc["payload"] = alert.payload
        doc["raw_body"] = alert.raw_body
        doc["errors"] = alert.errors
        doc["duplicate_of"] = alert.duplicate_of
        doc["children"] = [child_to_dict(c) for c in alert.children]
        doc["plan"] = alert.plan
        doc["orders"] = [order_to_dict(o) for o in alert.orders]
        doc["fills"] = [fill_to_dict(f) for f in alert.fills]
        doc["execution"] = execution_of(alert)
        doc["events"] = [cast(AlertEventDoc, _columns(e, AlertEventDoc)) for e in alert.events]
    return doc


def child_to_dict(alert: Alert) -> ChildDoc:
    """One child of a fan-out as its parent lists it."""
    return cast(ChildDoc, _columns(alert, ChildDoc))


def get_alert(sessions: sessionmaker[Session], alert_id: str) -> AlertDoc | None:
    """One alert with its plan, orders, fills, audit trail and (for a fan-out parent) its children
    ``[{id, account, status, reason}]``; a child has ``parent_id``. None when unknown."""
    with sessions() as session:
        alert = session.scalar(
            select(Alert)
            .where(Alert.id == alert_id)
            .options(
                selectinload(Alert.orders),
                selectinload(Alert.fills),
                selectinload(Alert.events),
                selectinload(Alert.children),
            )
        )
        return None if alert is None else alert_to_dict(alert, detail=True)


def recent_alerts(
    sessions: sessionmaker[Session], limit: int = 20, status: str | None = None
) -> list[AlertDoc]:
    """The newest alerts first (ids are time-ordered). A fan-out parent (``fanned_out``) carries
    its ``children`` ``[{id, account, status, reason}]``; each child is also listed on its own,
    with its ``parent_id``."""
    with sessions() as session:
        query = select(Alert).order_by(Alert.id.desc()).limit(max(1, min(limit, 500)))
        if status:
            query = query.where(Alert.status == status)
        rows = list(session.scalars(query))
        return [_listed(a) for a in rows]


def _listed(alert: Alert) -> AlertDoc:
    doc = alert_to_dict(alert)
    if alert.status == AlertStatus.FANNED_OUT:
        doc["children"] = [child_to_dict(c) for c in alert.children]  # a parent is rare: lazy load
    return doc


def list_orders(
    sessions: sessionmaker[Session], *, working_only: bool = False, limit: int = 100
) -> list[OrderDoc]:
    """Orders as IB last reported them, newest first."""
    with sessions() as session:
        query = select(Order).order_by(Order.id.desc()).limit(max(1, min(limit, 1000)))
        if working_only:
            query = query.where(Order.status.in_(sorted(WORKING_ORDER_STATUSES)))
        return [order_to_dict(o) for o in session.scalars(query)]


def list_positions(sessions: sessionmaker[Session]) -> list[PositionDoc]:
    """Non-zero positions as IB last reported them."""
    with sessions() as session:
        rows = session.scalars(select(Position).where(Position.quantity != 0).order_by(Position.symbol))
        return [cast(PositionDoc, _columns(p, PositionDoc)) for p in rows]


def pnl_today(sessions: sessionmaker[Session], now: datetime | None = None) -> PnlDoc:
    """Today's (UTC) executions: trade count, realized PnL and commissions."""
    now = now or utcnow()
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    with sessions() as session:
        count, realized, fees = session.execute(
            select(
                func.count(Fill.id),
                func.coalesce(func.sum(Fill.realized_pnl), 0),
                func.coalesce(func.sum(Fill.commission), 0),
            ).where(Fill.time >= start, Fill.time < start + timedelta(days=1))
        ).one()
    return {
        "date": start.date().isoformat(),
        "fills": int(count),
        "realized_pnl": float(realized),
        "commissions": float(fees),
    }


def is_paused(session: Session) -> bool:
    """True when an operator paused trading (checked by the worker before every placement)."""
    row = session.get(Control, PAUSED_KEY)
    return row is not None and row.value == "1"


def active_locks(session: Session, now: datetime | None = None) -> list[LockDoc]:
    """The protections' locks that hold at ``now``, as the workers announced them (their
    ``risk:locks:<account>`` rows: worker/risk/lock_watch.py), soonest to end first."""
    now = now or datetime.now(UTC)
    found: list[LockDoc] = []
    rows = session.execute(select(Control.key, Control.value).where(Control.key.startswith(LOCKS_KEY_PREFIX)))
    for key, value in rows:
        account = key.removeprefix(LOCKS_KEY_PREFIX)
        try:
            locks = json.loads(value)
            for lock in locks:
                if datetime.fromisoformat(lock["until"]) > now:
                    found.append(LockDoc(account=account, strategy=str(lock["strategy"]), rule=str(lock["rule"]),
                                         symbol=str(lock["symbol"]), since=str(lock["since"]), until=str(lock["until"]),
                                         why=str(lock["why"])))  # fmt: skip
        except (ValueError, TypeError, KeyError):  # a row no worker wrote as it should: not shown
            continue
    return sorted(found, key=lambda lock: lock["until"])


def set_paused(sessions: sessionmaker[Session], paused: bool, by: str = "api") -> PausedDoc:
    """Pause or resume new entries; durable in the database (Redis keeps nothing on disk)."""
    with sessions.begin() as session:
        row = session.get(Control, PAUSED_KEY)
        if row is None:
            session.add(Control(key=PAUSED_KEY, value="1" if paused else "0"))
        else:
            row.value = "1" if paused else "0"
    return {"paused": paused, "by": by}


def worker_heartbeats(client: redis.Redis) -> list[dict[str, Any]]:
    """Every live worker's heartbeat (JSON written by the worker, expiring after its TTL)."""
    beats = []
    try:
        for key in client.scan_iter(match=keys.HEARTBEAT_PREFIX + "*", count=100):
            raw = client.get(key)
            if raw:
                doc = json.loads(raw)
                doc["age_seconds"] = round(time.time() - float(doc.get("ts", 0)), 1)
                beats.append(doc)
    except redis.RedisError:
        return []
    return beats


class FlattenRefused(ValueError):  # noqa: N818 - an answer to the operator, not a crash
    """The flatten names an account no worker serves, or is not an account id (the message says which)."""


def request_flatten(client: redis.Redis, account: str | None = None, by: str = "api") -> FlattenDoc:
    """Ask the worker of ``account`` to cancel all working orders and close all positions.

    Raises :class:`FlattenRefused` for a malformed account id, or one no live worker serves (when
    no worker heartbeat exists the job is queued anyway: the worker takes it when it starts)."""
    from rq import Queue  # local: rq is only needed by this operator action

    problem = routing.flatten_account_problem(account, routing.read_served(client))
    if problem is not None:
        raise FlattenRefused(problem)
    queue = Queue(keys.queue_name(account), connection=client)
    job = queue.enqueue(FLATTEN_JOB, account, by, job_timeout=300, result_ttl=3600)
    # account None: the worker that takes the alerts naming no account ("default" is no account id)
    return {"flatten": "requested", "job_id": job.id, "account": account}


def status(sessions: sessionmaker[Session], client: redis.Redis) -> StatusDoc:
    """What an operator checks first: paused, workers and IB connection, queue depth, last alert."""
    with sessions() as session:
        paused = is_paused(session)
        last = session.scalar(select(Alert).order_by(Alert.id.desc()).limit(1))
        locks = active_locks(session)
    depth: dict[str, int] = {}
    redis_ok = True
    try:
        for key in client.scan_iter(match=f"rq:queue:{keys.QUEUE_PREFIX}*", count=100):
            name = key.decode() if isinstance(key, bytes) else key
            depth[name.removeprefix("rq:queue:")] = int(client.llen(name))
    except redis.RedisError:
        redis_ok = False
    return {
        "paused": paused,
        "redis": redis_ok,
        "workers": worker_heartbeats(client) if redis_ok else [],
        "queues": depth,
        "last_alert": None if last is None else alert_to_dict(last),
        "locks": locks,
    }
