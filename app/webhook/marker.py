"""Recording ``queued`` after the answer, in batches, on one background thread per process.

Why not in the request: by the time intake answers, the alert is committed (``received``) and
its job is on the queue; moving the row to ``queued`` is bookkeeping that costs a transaction per
alert. Doing it here keeps it out of the webhook's latency and lets one commit cover a burst.
If the process dies with marks pending, nothing is lost: the alert stays ``received`` with its
job in Redis, and the relay's next pass finds the job already there and marks the alert.
"""

from __future__ import annotations

import logging
import queue
import threading

from sqlalchemy import Engine

from app.webhook.fast_path import writer_lock
from core import alert_rows

log = logging.getLogger(__name__)

MAX_BATCH = 200
# Gather marks this long before writing: at 200 alerts/s that is one commit per ~10 alerts
# instead of one each, which leaves the database (and its fsyncs) to intake itself.
GATHER_SECONDS = 0.05


class QueuedMarker:
    """Thread-safe: ``mark(alert_id, queue_name)`` returns at once; ``flush()`` waits for the backlog."""

    def __init__(self, engine: Engine, gather_seconds: float = GATHER_SECONDS):
        self._engine = engine
        self._gather_seconds = gather_seconds
        self._hurry = threading.Event()
        self._items: queue.Queue[tuple[str, str]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def mark(self, alert_id: str, queue_name: str) -> None:
        """Schedule ``received -> queued`` for an alert whose job is on ``queue_name``."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:  # started lazily: after gunicorn's fork, never before
                    self._thread = threading.Thread(target=self._run, name="tv2ib-marker", daemon=True)
                    self._thread.start()
        self._items.put((alert_id, queue_name))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every scheduled mark is written (or failed); False on timeout."""
        done = threading.Event()
        self._hurry.set()

        def wait() -> None:
            self._items.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            batch = [self._items.get()]
            if self._hurry.wait(self._gather_seconds):
                self._hurry.clear()
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._items.get_nowait())
                except queue.Empty:
                    break
            try:
                # intake's own writers' lock: SQLite has one write lock, and intake waiting on
                # this one wakes at once (SQLite's busy handler sleeps 1, 2, 5 ms ...)
                with writer_lock(self._engine), self._engine.connect() as conn:
                    alert_rows.mark_queued_many(conn, batch)
            except Exception as exc:  # noqa: BLE001 - the relay marks them later
                log.warning(
                    "could not mark %d alerts queued (%s); the relay will", len(batch), type(exc).__name__
                )
            finally:
                for _ in batch:
                    self._items.task_done()
