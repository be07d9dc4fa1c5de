"""Recording: IB snapshots → Order / Fill / Position rows, alert states, events and notices.

All database writes of the worker run here, on ONE thread, in the order they were submitted. The
IB loop only submits (never waits), so it is never blocked by the database; the single writer
keeps the order of IB's events and avoids write races between the job thread and event handlers.

Each fact is one transaction that also calls ``enqueue_notices`` (so a Telegram notice is durable
exactly when the fact is); after the commit the events go out on Redis pub/sub (best effort:
the dashboard can re-read the database) and the notifier is woken.

Alert state follows its orders and only moves forward (``STATUS_RANK``): ``submitted`` when the
legs are sent, ``partially_filled`` / ``filled`` as its LAST PRIMARY leg fills (``filled`` = the
position reached the alert's target: the entry complete, or for an alert that only reduces or
closes, its ``close`` / ``exit`` order complete; a reversal is ``filled`` when its ``entry`` -- the
opening half -- is, its close's fill is an audit line; the take-profit and stop-loss live on and
are recorded as they fill), ``cancelled`` when that leg is cancelled, ``rejected`` with IB's text
when IB refuses the entry (or the bracket's last leg). A ``close`` / ``exit`` leg that IB refuses
(or that a reversal gave up waiting for) is the job's to conclude: it puts the old protection back
first and then ends the alert saying so (worker/execution/executor.py).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core import events
from core.events import Event
from core.ids import parse_order_ref
from core.keys import EVENTS_CHANNEL
from core.models import (
    IB_DONE_STATUSES,
    IB_ENDED_UNFILLED_STATUSES,
    IB_WORKING_STATUSES,
    STATUS_RANK,
    Alert,
    AlertEvent,
    AlertStatus,
    Fill,
    Order,
    Position,
    utcnow,
)
from worker.decision.stored import StoredDecision, position_move_of
from worker.recording.snapshots import (
    FillSnapshot,
    IBFact,
    OrderError,
    OrderSnapshot,
    PositionSnapshot,
    Reconciliation,
)

log = logging.getLogger(__name__)
# IB error codes that mean "this order was refused" (not warnings, not cancel confirmations).
REJECT_CODES = frozenset(
    {103, 104, 105, 106, 107, 109, 110, 111, 135, 136, 200, 201, 203, 321, 382, 383, 404}
)
# Legs whose refusal means the alert did not trade: the entry, an exit, and the leg that transmits
# a bracket (IB never transmits the staged parent when it refuses the last leg).
PRIMARY_LEGS = frozenset({"entry", "exit", "close"})
# The closing legs of a position plan (the executor follows them and concludes their failures).
CLOSING_LEGS = frozenset({"exit", "close"})
# Facts written per transaction at most (a burst of IB events becomes a few commits).
MAX_BATCH = 200

EnqueueNotices = Callable[[Session, Event, Settings], int]


@dataclass
class UnitOfWork:
    """One transaction of the writer thread and the events it produced (published after commit)."""

    session: Session
    events: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        """An event for pub/sub and the notifier; goes out only if the transaction commits."""
        self.events.append(event)


@dataclass(frozen=True)
class PlacementFact:
    """Legs just sent to IB (or found there by orderRef) for one alert, with its decision."""

    alert_id: str
    decision: StoredDecision
    placed: list[OrderSnapshot]
    adopted: list[OrderSnapshot]


Fact = IBFact | PlacementFact


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class Recorder:
    """The worker's single database writer (see module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        redis_client: redis.Redis | None,
        settings: Settings,
        client_id: int,
        *,
        enqueue_notices: EnqueueNotices | None = None,
        wake: Callable[[], None] | None = None,
        on_committed: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.redis = redis_client
        self.settings = settings
        self.client_id = client_id
        self._enqueue_notices = enqueue_notices
        self._wake = wake
        self._on_committed = on_committed  # counts committed facts for the worker's metrics
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._writer, name="recorder", daemon=True)
        self._thread.start()
        self.errors = 0
        self.batches = 0

    # ------------------------------------------------------------------ plumbing

    def record(self, fact: Fact) -> Future[Any]:
        """Queue one fact from IB or a placement (thread-safe, never blocks); the future's result
        is what its handler returned. The IB loop hands every event here, in IB's order."""
        handlers: dict[type, Callable[[UnitOfWork, Any], Any]] = {
            OrderSnapshot: self._on_order,
            OrderError: self._on_order_error,
            FillSnapshot: self._on_fill,
            PositionSnapshot: self._on_position,
            Reconciliation: self._on_reconcile,
            PlacementFact: self._on_placement,
        }
        return self._put(handlers[type(fact)], fact)

    def run(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(uow, *args)`` to run on the writer thread, in submission order; wait on the
        future (``.result(timeout)``) when the caller needs the write done."""
        return self._put(fn, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop the writer thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _put(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((fn, args, future))
        return future

    def _writer(self) -> None:
        """Write queued facts in batches: everything waiting goes into one transaction (a burst of
        IB events costs one commit), in order; a failing batch is retried item by item."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            with self.sessions.begin() as session:
                uow = UnitOfWork(session)
                for fn, args, _future in batch:
                    results.append(fn(uow, *args))
                self._notices(session, uow.events)
        except Exception as exc:
            if len(batch) == 1:
                self.errors += 1
                log.exception("recording failed")
                batch[0][2].set_exception(exc)
                return
            for item in batch:  # isolate the failing fact; the others are written alone
                self._run_batch([item])
            return
        self.batches += 1
        if self._on_committed is not None and uow.events:
            try:
                self._on_committed(uow.events)
            except Exception:  # noqa: BLE001 - a metric never loses or delays a fact
                log.exception("on_committed failed")
        self._publish(uow.events)
        for (_fn, _args, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _notices(self, session: Session, batch: list[Event]) -> None:
        if self._enqueue_notices is None:
            return
        for event in batch:
            try:
                self._enqueue_notices(session, event, self.settings)
            except Exception:  # noqa: BLE001 - a notice problem never loses the fact
                log.exception("enqueue_notices failed for %s", event["type"])

    def _publish(self, batch: list[Event]) -> None:
        if not batch:
            return
        if self.redis is not None:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for event in batch:
                    pipe.publish(EVENTS_CHANNEL, json.dumps(event, default=_jsonable))
                pipe.execute()
            except redis.RedisError as exc:
                log.warning("could not publish %d events: %s", len(batch), exc)
        if self._wake is not None:
            try:
                self._wake()
            except Exception:  # noqa: BLE001
                log.exception("notifier wake failed")

    # ------------------------------------------------------------------ alerts

    def advance(
        self,
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

    def note(self, uow: UnitOfWork, alert_id: str, message: str) -> None:
        """An audit line that does not change the state."""
        alert = uow.session.get(Alert, alert_id)
        if alert is not None:
            uow.session.add(AlertEvent(alert_id=alert_id, status=alert.status, message=message, at=utcnow()))

    # ------------------------------------------------------------------ orders

    def _on_placement(self, uow: UnitOfWork, fact: PlacementFact) -> None:
        alert_id = fact.alert_id
        alert = uow.session.get(Alert, alert_id)
        if alert is not None:
            alert.plan = fact.decision.to_json()
        self.advance(uow, alert_id, AlertStatus.PROCESSING, "picked up by the worker")
        for snap in [*fact.placed, *fact.adopted]:
            self.upsert_order(uow, snap)
        if fact.placed:
            parts = [
                f"{s.leg} #{s.ib_order_id} {s.action} {_qty(s.quantity)} {s.order_type}{_price(s)}"
                for s in fact.placed
            ]
            message = "sent to IB: " + "; ".join(parts)
        else:
            message = "IB already had these orders (found by orderRef after a restart); nothing sent again"
        self.advance(uow, alert_id, AlertStatus.SUBMITTED, message)

    def _alert_of(self, session: Session, ref: str) -> tuple[Alert | None, str | None]:
        parsed = parse_order_ref(ref)
        if parsed is None:
            return None, None
        return session.get(Alert, parsed[0]), parsed[1]

    def upsert_order(self, uow: UnitOfWork, snap: OrderSnapshot) -> Order:
        """Create or update the Order row of ``snap`` (keyed by orderRef) and follow the alert."""
        session = uow.session
        ref = snap.order_ref or f"ib:{snap.perm_id or snap.client_id}:{snap.ib_order_id}"
        row = session.scalar(select(Order).where(Order.order_ref == ref))
        alert, leg = self._alert_of(session, ref)
        now = utcnow()
        if row is None:
            row = Order(
                order_ref=ref,
                alert_id=alert.id if alert else None,
                leg=leg or "other",
                action=snap.action,
                order_type=snap.order_type,
                quantity=snap.quantity,
                status="PendingSubmit",
                status_history={"items": []},
                created_at=now,
            )
            session.add(row)
        # a leg re-placed after its staged twin vanished carries a new IB order id
        replaced = bool(snap.ib_order_id and row.ib_order_id and snap.ib_order_id != row.ib_order_id)
        old_status, old_filled = row.status, row.filled_quantity
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
        new_status = snap.status
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
        if row.status != old_status:
            items = list((row.status_history or {}).get("items", []))
            items.append([now.isoformat(), row.status])
            row.status_history = {"items": items}
        row.updated_at = now
        changed = row.status != old_status or row.filled_quantity != old_filled
        if changed and row.alert_id:
            uow.emit(events.order_status(row, snap.remaining))
        if changed and alert is not None:
            self._follow(uow, alert, row)
        return row

    def _follow(self, uow: UnitOfWork, alert: Alert, row: Order) -> None:
        """Alert state from its primary leg's order state."""
        if row.leg not in PRIMARY_LEGS:
            return
        filled, total = row.filled_quantity or Decimal(0), row.quantity or Decimal(0)
        label = f"{row.leg} #{row.ib_order_id} {row.action} {_qty(total)} {row.symbol or ''}".rstrip()
        position = position_move_of(alert.plan)
        # a reversal's close (or one whose opening part was refused): the job concludes the alert
        opens_after = position is not None and position.reversal
        if row.leg in CLOSING_LEGS and position is not None:
            if row.status == "Filled" or (total and filled >= total):
                if opens_after:  # a reversal's first half: the entry's fill decides the alert
                    self.note(uow, alert.id, f"{label} filled; the opening order follows")
                    return
            elif row.status in IB_ENDED_UNFILLED_STATUSES:
                code = (row.last_error or "").partition(" ")[0]
                if opens_after or (code.isdigit() and int(code) in REJECT_CODES):
                    # the job concludes: it puts the old protection back, then ends the alert
                    self.note(uow, alert.id, f"{label} ended: {row.last_error or row.status}")
                    return
        if row.status == "Filled" or (total and filled >= total):
            price = f" @ {_qty(row.avg_fill_price)}" if row.avg_fill_price else ""
            self.advance(uow, alert.id, AlertStatus.FILLED, f"{label} filled{price}")
        elif row.status in IB_ENDED_UNFILLED_STATUSES:
            why = row.last_error or f"{row.status} at IB"
            code, _, text = why.partition(" ")
            if code.isdigit() and int(code) in REJECT_CODES and not filled:
                self.advance(uow, alert.id, AlertStatus.REJECTED, f"IB refused the {row.leg} order: {why}",
                             reason=f"IB: {text}{_after_close(alert, row.leg)}")  # fmt: skip
                return
            done = f" after {_qty(filled)}/{_qty(total)} filled" if filled else ""
            self.advance(uow, alert.id, AlertStatus.CANCELLED, f"{label} cancelled{done}: {why}",
                         reason=f"{row.leg} cancelled{done}: {why}")  # fmt: skip
        elif filled > 0:
            self.advance(uow, alert.id, AlertStatus.PARTIALLY_FILLED,
                         f"{label} partially filled {_qty(filled)}/{_qty(total)}")  # fmt: skip
        elif row.status in ("Submitted", "PreSubmitted"):
            self.advance(uow, alert.id, AlertStatus.SUBMITTED, f"{label} working at IB")

    def _on_order(self, uow: UnitOfWork, snap: OrderSnapshot) -> None:
        self.upsert_order(uow, snap)

    def _on_order_error(self, uow: UnitOfWork, fact: OrderError) -> None:
        code, text = fact.code, fact.text
        row = self.upsert_order(uow, fact.order)
        if code not in REJECT_CODES and code != 202:
            return  # warnings (399, 2109 ...) are not the order's fate
        row.last_error = f"{code} {text}"
        if code not in REJECT_CODES:
            return
        alert, leg = self._alert_of(uow.session, row.order_ref)
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
        last_leg = self._is_last_leg(alert, leg)
        if leg in CLOSING_LEGS and position_move_of(alert.plan) is not None:
            # the job follows its closing order and concludes (old exits back first)
            self.note(uow, alert.id, f"IB refused the {leg} order: {code} {text}")
            return
        if leg in PRIMARY_LEGS or last_leg:
            what = "bracket not transmitted" if last_leg and leg not in PRIMARY_LEGS else "not placed"
            self.advance(uow, alert.id, AlertStatus.REJECTED,
                         f"IB refused the {leg} order ({what}): {code} {text}",
                         reason=f"IB: {text}{_after_close(alert, leg)}")  # fmt: skip
        else:
            self.note(uow, alert.id, f"IB refused the {leg} order: {code} {text}")

    @staticmethod
    def _is_last_leg(alert: Alert, leg: str | None) -> bool:
        legs = StoredDecision.from_json(alert.plan).legs if alert.plan else ()
        return len(legs) > 1 and legs[-1].leg == leg

    # ------------------------------------------------------------------ fills and positions

    def record_fill(self, uow: UnitOfWork, snap: FillSnapshot) -> bool:
        """Insert-or-ignore by exec id; the "fill" event goes out once, with its commission."""
        session = uow.session
        row = session.scalar(select(Fill).where(Fill.exec_id == snap.exec_id))
        alert, leg = self._alert_of(session, snap.order_ref)
        order = (
            session.scalar(select(Order).where(Order.order_ref == snap.order_ref)) if snap.order_ref else None
        )
        new = row is None
        if row is None:
            row = Fill(
                exec_id=snap.exec_id,
                alert_id=alert.id if alert else None,
                order_id=order.id if order else None,
                order_ref=snap.order_ref or None,
                leg=leg,
                account=snap.account,
                perm_id=snap.perm_id,
                ib_order_id=snap.ib_order_id,
                symbol=snap.local_symbol or snap.symbol,
                sec_type=snap.sec_type,
                side=snap.side,
                price=snap.price,
                quantity=snap.quantity,
                time=snap.time,
                recorded_at=utcnow(),
            )
            session.add(row)
            session.flush()
        commission_new = snap.commission is not None and row.commission is None
        if commission_new:
            row.commission = snap.commission
            row.commission_currency = snap.commission_currency
            row.realized_pnl = snap.realized_pnl
        # one event per execution, carrying its commission: when the report arrives, or when a
        # reconciliation finds an execution we never saw together with its report
        if commission_new:
            uow.emit(
                events.fill(
                    row.exec_id,
                    alert_id=row.alert_id,
                    strategy=alert.strategy if alert else None,
                    leg=row.leg,
                    symbol=snap.symbol,
                    local_symbol=snap.local_symbol,
                    sec_type=snap.sec_type,
                    side=row.side,
                    quantity=_f(row.quantity),
                    price=_f(row.price),
                    cum_quantity=_f(snap.cum_quantity),
                    order_quantity=_f(snap.order_quantity or (order.quantity if order else None)),
                    order_ref=row.order_ref,
                    time=row.time.isoformat() if row.time else None,
                    commission=_f(row.commission),
                    commission_currency=row.commission_currency,
                    realized_pnl=_f(row.realized_pnl),
                    account=row.account,
                )
            )
        if new and alert is not None:
            self.note(uow, alert.id, f"fill {row.leg}: {row.side} {_qty(row.quantity)} @ {_qty(row.price)}"
                      f" (exec {row.exec_id})")  # fmt: skip
        return new

    def _on_fill(self, uow: UnitOfWork, snap: FillSnapshot) -> None:
        self.record_fill(uow, snap)

    def _on_position(self, uow: UnitOfWork, snap: PositionSnapshot) -> None:
        """The position as IB last reported it: one upsert, since IB reports every position of an
        account to every worker connected to it, and a look-then-insert lost the race when two
        workers recorded the same new position ("UNIQUE constraint failed")."""
        values = {"symbol": snap.symbol, "sec_type": snap.sec_type, "local_symbol": snap.local_symbol,
                  "quantity": snap.quantity, "avg_cost": snap.avg_cost, "updated_at": utcnow()}  # fmt: skip
        upsert_position(uow.session, snap.account, snap.con_id, values)

    # ------------------------------------------------------------------ reconciliation

    def _on_reconcile(self, uow: UnitOfWork, data: Reconciliation) -> dict[str, int]:
        """After a (re)connect: IB's orders, executions and positions; mark what vanished."""
        session = uow.session
        seen_refs = set()
        for snap in data.orders:
            row = self.upsert_order(uow, snap)
            seen_refs.add(row.order_ref)
        new_fills = sum(self.record_fill(uow, f) for f in data.fills)
        account = data.account
        reported = set()
        for position in data.positions:
            self._on_position(uow, position)
            reported.add(position.con_id)
        if account:
            # populate_existing: the upserts above went to the database, not to rows this session
            # may hold from earlier in the transaction
            query = (
                select(Position).where(Position.account == account).execution_options(populate_existing=True)
            )
            for row in session.scalars(query):
                if row.con_id not in reported and row.quantity != 0:
                    row.quantity = Decimal(0)
                    row.updated_at = utcnow()
        vanished = 0
        stale = session.scalars(
            select(Order).where(
                Order.client_id == data.client_id, Order.status.in_(sorted(IB_WORKING_STATUSES))
            )
        )
        for row in stale:
            if row.order_ref in seen_refs:
                continue
            vanished += 1
            when = datetime.now(UTC).strftime("%H:%M:%S")
            row.status = "Unknown"
            row.last_error = (
                f"not reported by IB after reconnect at {when} UTC (never transmitted, or purged)"
            )
            items = list((row.status_history or {}).get("items", []))
            items.append([utcnow().isoformat(), "Unknown"])
            row.status_history = {"items": items}
            if row.alert_id:
                self.note(uow, row.alert_id, f"{row.leg} order #{row.ib_order_id} vanished: {row.last_error}")
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


def _price(snap: OrderSnapshot) -> str:
    if snap.limit_price is not None:
        return f" {_qty(snap.limit_price)}"
    if snap.stop_price is not None:
        return f" {_qty(snap.stop_price)}"
    return ""


def _qty(value: Decimal | None) -> str:
    if value is None:
        return "?"
    text = format(value.normalize(), "f")
    return text


def _after_close(alert: Alert, leg: str | None) -> str:
    """For a reversal whose opening order IB refused: the close went through, so say where the
    position is (flat, not on the old side without its exits)."""
    position = position_move_of(alert.plan)
    if leg != "entry" or position is None or position.kind != "reverse":
        return ""
    return " (the close went through: the position is flat, not reversed)"
