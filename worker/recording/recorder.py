"""Recording: IB snapshots → Order / Fill / Position rows, alert states, events and notices.

All database writes of the worker run here, on ONE thread, in the order they were submitted. The
IB loop only submits (never waits), so it is never blocked by the database; the single writer
keeps the order of IB's events and avoids write races between the job thread and event handlers.

Each fact is one transaction that also calls ``enqueue_notices`` (so a Telegram notice is durable
exactly when the fact is); after the commit the events go out on Redis pub/sub (best effort:
the dashboard can re-read the database) and the notifier is woken.

What each fact writes, one room per concept: the alert's state as its orders move
(worker/recording/alert_state.py), order rows (order_rows.py), fill rows (fill_rows.py), positions
and the reconciliation after a (re)connect (reconcile.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.events import Event
from core.keys import EVENTS_CHANNEL
from core.models import (
    AlertStatus,
    Order,
)
from worker.recording import alert_state, fill_rows, order_rows, reconcile
from worker.recording.snapshots import (
    FillSnapshot,
    OrderError,
    OrderSnapshot,
    PositionSnapshot,
    Reconciliation,
)
from worker.recording.unit import Fact, PlacementFact, UnitOfWork
from worker.risk.state import CountedRow

log = logging.getLogger(__name__)
# Facts written per transaction at most (a burst of IB events becomes a few commits).
MAX_BATCH = 200
# While the database is unreachable, IB's facts are held and tried again after these waits.
HOLD_FIRST_SECONDS = 0.2
HOLD_MAX_SECONDS = 2.0

# A queued write: the function, its arguments, its future, and whether it is a fact from IB to
# hold while the database is unreachable (True) or a write a caller waits for (False).
Item = tuple[Callable[..., Any], tuple[Any, ...], Future[Any], bool]


@dataclass(frozen=True)
class Direct:
    """A write in a transaction of its own, without the unit of work (:meth:`Recorder.run_direct`):
    ``write(engine)`` commits and returns the events to publish (dashboard-only ones: it adds no
    notice), or None, having written nothing, when ``general(uow, *args)`` must do the write."""

    write: Callable[[Engine], list[Event] | None]
    general: Callable[..., Any]


class _Unreachable(Exception):
    """The database refused a transaction for a reason that passes (``OperationalError``)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


EnqueueNotices = Callable[[Session, Event, Settings], int]


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
        self.engine: Engine | None = sessions.kw.get("bind")  # None: every write takes the unit of work
        self.redis = redis_client
        self.settings = settings
        self.client_id = client_id
        self._enqueue_notices = enqueue_notices
        self._wake = wake
        self._on_committed = on_committed  # counts committed facts for the worker's metrics
        # the risk counters in memory (worker/risk/tally.py), told what each commit wrote that they
        # count, before the writes' futures resolve (a job that awaited its placement sees them)
        self.on_counted: Callable[[list[CountedRow]], None] | None = None
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
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
        return self._put(handlers[type(fact)], fact, held=True)

    def run(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(uow, *args)`` to run on the writer thread, in submission order; wait on the
        future (``.result(timeout)``) when the caller needs the write done."""
        return self._put(fn, *args)

    def run_direct(self, direct: Direct, *args: Any) -> Future[Any]:
        """Queue ``direct`` (in submission order, like :meth:`run`), for the write a trade waits for:
        its own transaction through the DB-API, a fraction of the unit of work's cost."""
        return self._put(direct, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop the writer thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._stopping.set()  # a fact held for an unreachable database is given up now
            self._thread.join(timeout)

    def _put(self, fn: Callable[..., Any], *args: Any, held: bool = False) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((fn, args, future, held))
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
            self._run_in_order(batch)
            if stop:
                return

    def _run_in_order(self, batch: list[Item]) -> None:
        """The batch, in order: a direct write alone, between the batches of what came before and after it."""
        start = 0
        for i, item in enumerate(batch):
            if isinstance(item[0], Direct):
                if start < i:
                    self._run_held(batch[start:i])
                self._run_direct(item)
                start = i + 1
        if start < len(batch):
            self._run_held(batch[start:])

    def _run_direct(self, item: Item) -> None:
        direct, args, future, _held = item
        assert isinstance(direct, Direct)
        if self.engine is None:
            self._run_held([(direct.general, args, future, False)])
            return
        try:
            published = direct.write(self.engine)
        except Exception as exc:  # noqa: BLE001 - its waiter hears of it, as on the general path
            self.errors += 1
            if not isinstance(exc, OperationalError):
                log.exception("recording failed")
            _settle(future, error=exc)
            return
        if published is None:  # not a first write: the unit of work's path
            self._run_held([(direct.general, args, future, False)])
            return
        self.batches += 1
        if self._on_committed is not None and published:
            try:
                self._on_committed(published)
            except Exception:  # noqa: BLE001 - a metric never loses or delays a fact
                log.exception("on_committed failed")
        _settle(future)
        self._publish(published, wake=False)

    def _run_held(self, batch: list[Item]) -> None:
        """Write ``batch``; while the database is unreachable (or a transaction is refused for a
        transient reason: a deadlock, a restart), hold IB's facts and try again, in order, until
        they are written. A fact dropped here would be lost for good: an order's last status, and
        with it the alert's terminal state, arrives only once (found by the chaos run,
        ``bench/chaos.py``). Writes a caller waits for (:meth:`run`) fail at once instead."""
        delay = HOLD_FIRST_SECONDS
        while batch:
            try:
                self._run_batch(batch)
                return
            except _Unreachable as exc:
                for _fn, _args, future, held in batch:
                    if not held or self._stopping.is_set():
                        self.errors += 1
                        _settle(future, error=exc.cause)
                batch = [item for item in batch if item[3] and not self._stopping.is_set()]
                if batch:
                    log.warning("database unreachable (%s): %d fact(s) held, retry in %.1f s",
                                type(exc.cause).__name__, len(batch), delay)  # fmt: skip
                    self._stopping.wait(delay)
                    delay = min(HOLD_MAX_SECONDS, delay * 2)

    def _run_batch(self, batch: list[Item]) -> None:
        results: list[Any] = []
        try:
            with self.sessions.begin() as session:
                uow = UnitOfWork(session)
                for fn, args, _future, _held in batch:
                    results.append(fn(uow, *args))
                notices = self._notices(session, uow.events)
        except OperationalError as exc:
            raise _Unreachable(exc) from exc
        except Exception as exc:
            if len(batch) == 1:
                self.errors += 1
                log.exception("recording failed")
                _settle(batch[0][2], error=exc)
                return
            for item in batch:  # isolate the failing fact; the others are written alone
                self._run_held([item])
            return
        self.batches += 1
        # the risk counters (and metrics) take the committed rows before any waiter goes on (the
        # next job's risk check must count them); the events are published after the waiters are
        # released (a job waiting for its decision's commit does not wait for Redis)
        self._counted(uow.counted)
        if self._on_committed is not None and uow.events:
            try:
                self._on_committed(uow.events)
            except Exception:  # noqa: BLE001 - a metric never loses or delays a fact
                log.exception("on_committed failed")
        for (_fn, _args, future, _held), result in zip(batch, results, strict=True):
            _settle(future, result)
        self._publish(uow.events, wake=notices > 0)

    def _counted(self, rows: list[CountedRow]) -> None:
        if self.on_counted is None or not rows:
            return
        try:
            self.on_counted(rows)
        except Exception:  # noqa: BLE001 - the fact is committed; the counters are rebuilt at the next start
            log.exception("the risk counters could not take %d committed row(s)", len(rows))

    def _notices(self, session: Session, batch: list[Event]) -> int:
        """The batch's notices, added to its transaction; how many (the notifier is woken only for
        some: a wake makes it query the database, beside the next order's hot path)."""
        if self._enqueue_notices is None:
            return 0
        added = 0
        for event in batch:
            try:
                added += self._enqueue_notices(session, event, self.settings) or 0
            except Exception:  # noqa: BLE001 - a notice problem never loses the fact
                log.exception("enqueue_notices failed for %s", event["type"])
        return added

    def _publish(self, batch: list[Event], *, wake: bool) -> None:
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
        if self._wake is not None and wake:
            try:
                self._wake()
            except Exception:  # noqa: BLE001
                log.exception("notifier wake failed")

    # ------------------------------------------------------------------ alerts and facts
    # (each in its room: alert_state.py, order_rows.py, fill_rows.py, reconcile.py)

    def advance(self, uow: UnitOfWork, alert_id: str, status: AlertStatus, message: str, *,
                reason: str | None = None) -> bool:  # fmt: skip
        """Move an alert forward to ``status`` (never backwards), with an audit row and events."""
        return alert_state.advance(uow, alert_id, status, message, reason=reason)

    def note(self, uow: UnitOfWork, alert_id: str, message: str) -> None:
        """An audit line that does not change the state."""
        alert_state.note(uow, alert_id, message)

    def upsert_order(self, uow: UnitOfWork, snap: OrderSnapshot) -> Order:
        return order_rows.upsert_order(uow, snap)

    def record_fill(self, uow: UnitOfWork, snap: FillSnapshot) -> bool:
        return fill_rows.record_fill(uow, snap)

    def _on_placement(self, uow: UnitOfWork, fact: PlacementFact) -> None:
        order_rows.record_placement(uow, fact)

    def _on_order(self, uow: UnitOfWork, snap: OrderSnapshot) -> None:
        order_rows.upsert_order(uow, snap)

    def _on_order_error(self, uow: UnitOfWork, fact: OrderError) -> None:
        order_rows.record_order_error(uow, fact)

    def _on_fill(self, uow: UnitOfWork, snap: FillSnapshot) -> None:
        fill_rows.record_fill(uow, snap)

    def _on_position(self, uow: UnitOfWork, snap: PositionSnapshot) -> None:
        reconcile.record_position(uow, snap)

    def _on_reconcile(self, uow: UnitOfWork, data: Reconciliation) -> dict[str, int]:
        return reconcile.reconcile(uow, data)


def _settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Give a waiter its write's outcome; a waiter that gave up (cancelled its future) is skipped:
    the fact is written either way, and a cancelled future refuses an outcome."""
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
