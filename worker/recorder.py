"""Recording: IB snapshots → Order / Fill / Position rows, alert states, events and notices.

All database writes of the worker run here, on ONE thread, in the order they were submitted. The
IB loop only submits (never waits), so it is never blocked by the database; the single writer
keeps the order of IB's events and avoids write races between the job thread and event handlers.

Each fact is one transaction that also calls ``enqueue_notices`` (so a Telegram notice is durable
exactly when the fact is); after the commit the events go out on Redis pub/sub (best effort:
the dashboard can re-read the database) and the notifier is woken.

Alert state follows its orders and only moves forward (``STATUS_RANK``): ``submitted`` when the
legs are sent, ``partially_filled`` / ``filled`` as the ENTRY fills (``filled`` = entry complete;
the take-profit and stop-loss live on and are recorded as they fill), ``cancelled`` when the entry
is cancelled, ``rejected`` with IB's text when IB refuses the entry (or the bracket's last leg).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.ids import parse_order_ref
from app.keys import EVENTS_CHANNEL
from app.models import STATUS_RANK, Alert, AlertEvent, AlertStatus, Fill, Order, Position, utcnow
from config.settings import Settings

log = logging.getLogger(__name__)

WORKING = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted", "PendingCancel"})
DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
# IB error codes that mean "this order was refused" (not warnings, not cancel confirmations).
REJECT_CODES = frozenset(
    {103, 104, 105, 106, 107, 109, 110, 111, 135, 136, 200, 201, 203, 321, 382, 383, 404}
)
# Legs whose refusal means the alert did not trade: the entry, an exit, and the leg that transmits
# a bracket (IB never transmits the staged parent when it refuses the last leg).
PRIMARY_LEGS = frozenset({"entry", "exit"})
# Facts written per transaction at most (a burst of IB events becomes a few commits).
MAX_BATCH = 200

EnqueueNotices = Callable[[Session, dict[str, Any], Settings], int]


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
        on_committed: Callable[[list[dict[str, Any]]], None] | None = None,
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

    def submit(self, kind: str, data: dict[str, Any]) -> Future[Any]:
        """Queue an IB snapshot for recording (thread-safe, never blocks)."""
        handler = {
            "order": self._on_order,
            "order_error": self._on_order_error,
            "fill": self._on_fill,
            "position": self._on_position,
            "reconcile": self._on_reconcile,
        }[kind]
        return self._put(handler, data)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
        """Run ``fn(session, events, *args)`` on the writer thread and wait for its result."""
        return self._put(fn, *args).result(timeout)

    def put(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(session, events, *args)`` without waiting (written in submission order)."""
        return self._put(fn, *args)

    def submit_placement(
        self, alert_id: str, plan: dict[str, Any], placed: list[dict[str, Any]], adopted: list[dict[str, Any]]
    ) -> Future[Any]:
        """Queue the record of legs just sent (or found at IB); called on the IB loop right after
        the sends, so it is written before any IB event about those orders."""
        return self._put(self._on_placement, alert_id, plan, placed, adopted)

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
        events: list[dict[str, Any]] = []
        results: list[Any] = []
        try:
            with self.sessions.begin() as session:
                for fn, args, _future in batch:
                    results.append(fn(session, events, *args))
                self._notices(session, events)
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
        if self._on_committed is not None and events:
            try:
                self._on_committed(events)
            except Exception:  # noqa: BLE001 - a metric never loses or delays a fact
                log.exception("on_committed failed")
        self._publish(events)
        for (_fn, _args, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _notices(self, session: Session, events: list[dict[str, Any]]) -> None:
        if self._enqueue_notices is None:
            return
        for event in events:
            try:
                self._enqueue_notices(session, event, self.settings)
            except Exception:  # noqa: BLE001 - a notice problem never loses the fact
                log.exception("enqueue_notices failed for %s", event.get("type"))

    def _publish(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        if self.redis is not None:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for event in events:
                    pipe.publish(EVENTS_CHANNEL, json.dumps(event, default=_jsonable))
                pipe.execute()
            except redis.RedisError as exc:
                log.warning("could not publish %d events: %s", len(events), exc)
        if self._wake is not None:
            try:
                self._wake()
            except Exception:  # noqa: BLE001
                log.exception("notifier wake failed")

    # ------------------------------------------------------------------ alerts

    def advance(
        self,
        session: Session,
        events: list[dict[str, Any]],
        alert_id: str,
        status: AlertStatus,
        message: str,
        *,
        reason: str | None = None,
    ) -> bool:
        """Move an alert forward to ``status`` (never backwards), with an audit row and events."""
        alert = session.get(Alert, alert_id)
        if alert is None:
            return False
        current = AlertStatus(alert.status)
        if STATUS_RANK[status] <= STATUS_RANK[current]:
            return False
        alert.status = status.value
        if reason is not None or status.is_terminal:
            alert.reason = reason or message
        session.add(AlertEvent(alert_id=alert_id, status=status.value, message=message, at=utcnow()))
        events.append(
            {"type": "alert_status", "alert_id": alert_id, "status": status.value, "reason": alert.reason}
        )
        if status in (AlertStatus.REJECTED, AlertStatus.FAILED):
            events.append(
                {
                    "type": "alert_rejected",
                    "alert_id": alert_id,
                    "strategy": alert.strategy,
                    "ticker": alert.ticker,
                    "action": alert.action,
                    "status": status.value,
                    "reason": alert.reason,
                }
            )
        log.info("alert %s -> %s: %s", alert_id, status.value, message)
        return True

    def note(self, session: Session, alert_id: str, message: str) -> None:
        """An audit line that does not change the state."""
        alert = session.get(Alert, alert_id)
        if alert is not None:
            session.add(AlertEvent(alert_id=alert_id, status=alert.status, message=message, at=utcnow()))

    # ------------------------------------------------------------------ orders

    def _on_placement(
        self,
        session: Session,
        events: list[dict[str, Any]],
        alert_id: str,
        plan: dict[str, Any],
        placed: list[dict[str, Any]],
        adopted: list[dict[str, Any]],
    ) -> None:
        alert = session.get(Alert, alert_id)
        if alert is not None:
            alert.plan = plan
        self.advance(session, events, alert_id, AlertStatus.PROCESSING, "picked up by the worker")
        for snap in [*placed, *adopted]:
            self.upsert_order(session, events, snap)
        if placed:
            parts = [
                f"{s['order_ref'].rsplit(':', 1)[-1]} #{s['ib_order_id']} {s['action']} {_qty(s['quantity'])} "
                f"{s['order_type']}{_price(s)}"
                for s in placed
            ]
            message = "sent to IB: " + "; ".join(parts)
        else:
            message = "IB already had these orders (found by orderRef after a restart); nothing sent again"
        self.advance(session, events, alert_id, AlertStatus.SUBMITTED, message)

    def _alert_of(self, session: Session, ref: str) -> tuple[Alert | None, str | None]:
        parsed = parse_order_ref(ref)
        if parsed is None:
            return None, None
        return session.get(Alert, parsed[0]), parsed[1]

    def upsert_order(self, session: Session, events: list[dict[str, Any]], snap: dict[str, Any]) -> Order:
        """Create or update the Order row of ``snap`` (keyed by orderRef) and follow the alert."""
        ref = (
            snap["order_ref"]
            or f"ib:{snap.get('perm_id') or snap.get('client_id')}:{snap.get('ib_order_id')}"
        )
        row = session.scalar(select(Order).where(Order.order_ref == ref))
        alert, leg = self._alert_of(session, ref)
        now = utcnow()
        if row is None:
            row = Order(
                order_ref=ref,
                alert_id=alert.id if alert else None,
                leg=leg or "other",
                action=snap["action"],
                order_type=snap["order_type"],
                quantity=snap["quantity"],
                status="PendingSubmit",
                status_history={"items": []},
                created_at=now,
            )
            session.add(row)
        # a leg re-placed after its staged twin vanished carries a new IB order id
        replaced = bool(
            snap.get("ib_order_id") and row.ib_order_id and snap["ib_order_id"] != row.ib_order_id
        )
        old_status, old_filled = row.status, row.filled_quantity
        for attr in ("ib_order_id", "perm_id", "parent_ib_order_id", "account", "con_id", "symbol",
                     "sec_type", "tif", "oca_group"):  # fmt: skip
            value = snap.get(attr)
            if value not in (None, ""):
                setattr(row, attr, value)
        row.client_id = snap.get("client_id")
        row.action, row.order_type = snap["action"], snap["order_type"]
        if snap["quantity"]:
            row.quantity = snap["quantity"]
        if snap.get("limit_price") is not None:
            row.limit_price = snap["limit_price"]
        if snap.get("stop_price") is not None:
            row.stop_price = snap["stop_price"]
        new_status = snap["status"]
        # a late, stale report must not revive a finished order (unless IB gave it a new id), and
        # the placement's own "PendingSubmit" must not overwrite what IB already reported
        stale = old_status in DONE and new_status in WORKING
        regress = new_status == "PendingSubmit" and old_status != "PendingSubmit"
        if replaced or not (stale or regress):
            row.status = new_status
        if snap.get("filled") is not None and snap["filled"] >= (row.filled_quantity or 0):
            row.filled_quantity = snap["filled"]
        if snap.get("avg_fill_price"):
            row.avg_fill_price = snap["avg_fill_price"]
        error = _log_error(snap)
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
            events.append(
                {
                    "type": "order_status",
                    "alert_id": row.alert_id,
                    "leg": row.leg,
                    "order_ref": row.order_ref,
                    "ib_order_id": row.ib_order_id,
                    "perm_id": row.perm_id,
                    "status": row.status,
                    "filled": _f(row.filled_quantity),
                    "remaining": _f(snap.get("remaining")),
                    "avg_fill_price": _f(row.avg_fill_price),
                }
            )
        if changed and alert is not None:
            self._follow(session, events, alert, row)
        return row

    def _follow(self, session: Session, events: list[dict[str, Any]], alert: Alert, row: Order) -> None:
        """Alert state from its primary leg's order state."""
        if row.leg not in PRIMARY_LEGS:
            return
        filled, total = row.filled_quantity or Decimal(0), row.quantity or Decimal(0)
        label = f"{row.leg} #{row.ib_order_id} {row.action} {_qty(total)} {row.symbol or ''}".rstrip()
        if row.status == "Filled" or (total and filled >= total):
            price = f" @ {_qty(row.avg_fill_price)}" if row.avg_fill_price else ""
            self.advance(session, events, alert.id, AlertStatus.FILLED, f"{label} filled{price}")
        elif row.status in ("Cancelled", "ApiCancelled", "Inactive"):
            why = row.last_error or f"{row.status} at IB"
            code, _, text = why.partition(" ")
            if code.isdigit() and int(code) in REJECT_CODES and not filled:
                self.advance(session, events, alert.id, AlertStatus.REJECTED,
                             f"IB refused the {row.leg} order: {why}", reason=f"IB: {text}")  # fmt: skip
                return
            done = f" after {_qty(filled)}/{_qty(total)} filled" if filled else ""
            self.advance(session, events, alert.id, AlertStatus.CANCELLED, f"{label} cancelled{done}: {why}",
                         reason=f"{row.leg} cancelled{done}: {why}")  # fmt: skip
        elif filled > 0:
            self.advance(session, events, alert.id, AlertStatus.PARTIALLY_FILLED,
                         f"{label} partially filled {_qty(filled)}/{_qty(total)}")  # fmt: skip
        elif row.status in ("Submitted", "PreSubmitted"):
            self.advance(session, events, alert.id, AlertStatus.SUBMITTED, f"{label} working at IB")

    def _on_order(self, session: Session, events: list[dict[str, Any]], snap: dict[str, Any]) -> None:
        self.upsert_order(session, events, snap)

    def _on_order_error(self, session: Session, events: list[dict[str, Any]], snap: dict[str, Any]) -> None:
        code, text = snap["error_code"], snap["error_text"]
        row = self.upsert_order(session, events, snap)
        if code not in REJECT_CODES and code != 202:
            return  # warnings (399, 2109 ...) are not the order's fate
        row.last_error = f"{code} {text}"
        if code not in REJECT_CODES:
            return
        alert, leg = self._alert_of(session, row.order_ref)
        events.append(
            {
                "type": "order_rejected",
                "alert_id": alert.id if alert else None,
                "strategy": alert.strategy if alert else None,
                "leg": leg or row.leg,
                "symbol": row.symbol,
                "order_ref": row.order_ref,
                "error_code": code,
                "reason": text,
            }
        )
        if row.status not in ("Cancelled", "Inactive", "ApiCancelled"):
            row.status = "Inactive"
        if alert is None:
            return
        last_leg = self._is_last_leg(alert, leg)
        if leg in PRIMARY_LEGS or last_leg:
            what = "bracket not transmitted" if last_leg and leg not in PRIMARY_LEGS else "not placed"
            self.advance(session, events, alert.id, AlertStatus.REJECTED,
                         f"IB refused the {leg} order ({what}): {code} {text}", reason=f"IB: {text}")  # fmt: skip
        else:
            self.note(session, alert.id, f"IB refused the {leg} order: {code} {text}")

    @staticmethod
    def _is_last_leg(alert: Alert, leg: str | None) -> bool:
        legs = (alert.plan or {}).get("legs") or []
        return bool(legs) and legs[-1].get("leg") == leg and len(legs) > 1

    # ------------------------------------------------------------------ fills and positions

    def record_fill(
        self,
        session: Session,
        events: list[dict[str, Any]],
        snap: dict[str, Any],
        *,
        reconciling: bool = False,
    ) -> bool:
        """Insert-or-ignore by exec id; the "fill" event goes out once, with its commission."""
        row = session.scalar(select(Fill).where(Fill.exec_id == snap["exec_id"]))
        alert, leg = self._alert_of(session, snap["order_ref"])
        order = (
            session.scalar(select(Order).where(Order.order_ref == snap["order_ref"]))
            if snap["order_ref"]
            else None
        )
        new = row is None
        if row is None:
            row = Fill(
                exec_id=snap["exec_id"],
                alert_id=alert.id if alert else None,
                order_id=order.id if order else None,
                order_ref=snap["order_ref"] or None,
                leg=leg,
                account=snap.get("account"),
                perm_id=snap.get("perm_id"),
                ib_order_id=snap.get("ib_order_id"),
                symbol=snap.get("local_symbol") or snap.get("symbol"),
                sec_type=snap.get("sec_type"),
                side=snap["side"],
                price=snap["price"],
                quantity=snap["quantity"],
                time=snap["time"],
                recorded_at=utcnow(),
            )
            session.add(row)
            session.flush()
        commission_new = snap.get("commission") is not None and row.commission is None
        if commission_new:
            row.commission = snap["commission"]
            row.commission_currency = snap.get("commission_currency")
            row.realized_pnl = snap.get("realized_pnl")
        # one event per execution, carrying its commission: when the report arrives, or when a
        # reconciliation finds an execution we never saw together with its report
        if commission_new:
            events.append(
                {
                    "type": "fill",
                    "exec_id": row.exec_id,
                    "alert_id": row.alert_id,
                    "strategy": alert.strategy if alert else None,
                    "leg": row.leg,
                    "symbol": snap.get("symbol"),
                    "local_symbol": snap.get("local_symbol"),
                    "sec_type": snap.get("sec_type"),
                    "side": row.side,
                    "quantity": _f(row.quantity),
                    "price": _f(row.price),
                    "cum_quantity": _f(snap.get("cum_quantity")),
                    "order_quantity": _f(snap.get("order_quantity") or (order.quantity if order else None)),
                    "order_ref": row.order_ref,
                    "time": row.time.isoformat() if row.time else None,
                    "commission": _f(row.commission),
                    "commission_currency": row.commission_currency,
                    "realized_pnl": _f(row.realized_pnl),
                    "account": row.account,
                }
            )
        if new and alert is not None:
            self.note(session, alert.id, f"fill {row.leg}: {row.side} {_qty(row.quantity)} @ {_qty(row.price)}"
                      f" (exec {row.exec_id})")  # fmt: skip
        return new

    def _on_fill(self, session: Session, events: list[dict[str, Any]], snap: dict[str, Any]) -> None:
        self.record_fill(session, events, snap)

    def upsert_position(self, session: Session, snap: dict[str, Any]) -> None:
        """The position as IB last reported it."""
        row = session.scalar(
            select(Position).where(Position.account == snap["account"], Position.con_id == snap["con_id"])
        )
        if row is None:
            row = Position(account=snap["account"], con_id=snap["con_id"], symbol=snap["symbol"],
                           sec_type=snap["sec_type"], quantity=snap["quantity"])  # fmt: skip
            session.add(row)
        row.symbol, row.sec_type, row.local_symbol = (
            snap["symbol"],
            snap["sec_type"],
            snap.get("local_symbol"),
        )
        row.quantity, row.avg_cost = snap["quantity"], snap.get("avg_cost")
        row.updated_at = utcnow()

    def _on_position(self, session: Session, events: list[dict[str, Any]], snap: dict[str, Any]) -> None:
        self.upsert_position(session, snap)

    # ------------------------------------------------------------------ reconciliation

    def _on_reconcile(
        self, session: Session, events: list[dict[str, Any]], data: dict[str, Any]
    ) -> dict[str, int]:
        """After a (re)connect: IB's orders, executions and positions; mark what vanished."""
        seen_refs = set()
        for snap in data["orders"]:
            row = self.upsert_order(session, events, snap)
            seen_refs.add(row.order_ref)
        new_fills = sum(self.record_fill(session, events, f, reconciling=True) for f in data["fills"])
        account = data.get("account")
        reported = set()
        for snap in data["positions"]:
            self.upsert_position(session, snap)
            reported.add(snap["con_id"])
        if account:
            for row in session.scalars(select(Position).where(Position.account == account)):
                if row.con_id not in reported and row.quantity != 0:
                    row.quantity = Decimal(0)
                    row.updated_at = utcnow()
        vanished = 0
        stale = session.scalars(
            select(Order).where(Order.client_id == data["client_id"], Order.status.in_(sorted(WORKING)))
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
                self.note(
                    session, row.alert_id, f"{row.leg} order #{row.ib_order_id} vanished: {row.last_error}"
                )
        log.info("reconciled (%s): %d orders, %d new fills, %d positions, %d vanished", data["why"],
                 len(data["orders"]), new_fills, len(data["positions"]), vanished)  # fmt: skip
        return {"orders": len(data["orders"]), "new_fills": new_fills, "vanished": vanished}


def _log_error(snap: dict[str, Any]) -> tuple[int, str] | None:
    """The IB error carried by the order's last log entry (ib_async: "Error 201, reqId 6: text")."""
    for _at, _status, message, code in snap.get("log") or ():
        if code:
            return int(code), (message or "").split(": ", 1)[-1]
    return None


def _price(snap: dict[str, Any]) -> str:
    if snap.get("limit_price") is not None:
        return f" {_qty(snap['limit_price'])}"
    if snap.get("stop_price") is not None:
        return f" {_qty(snap['stop_price'])}"
    return ""


def _qty(value: Decimal | None) -> str:
    if value is None:
        return "?"
    text = format(value.normalize(), "f")
    return text
