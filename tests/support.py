"""Helpers any test module can import (``from support import ...``; tests/ is on ``sys.path``):
waiting for a condition, free loopback ports, the test secret and admin token, private PostgreSQL
databases, a Redis DB number of one's own, an alert queued as the web app queues it.

``wait_until`` and ``free_port`` are the ones ``tv2ib replay`` and ``bench/`` use (``cli/stack.py``:
the product cannot import the tests), so there is one polling loop and one port finder in the tree.

Several pytest runs share this machine's PostgreSQL; each creates databases with random names, so
no run sees another's rows. They share its Redis too: each test process claims one of the DB
numbers 1..15 by a lock file in the temporary directory, whichever user runs the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy.orm import sessionmaker

from cli import stack
from cli.stack import end_process, free_port, wait_until
from core import keys
from core.enqueue import enqueue_alert
from core.ids import new_alert_id
from core.models import Alert, AlertStatus, utcnow

__all__ = [
    "PG_ADMIN_URL",
    "alert_status",
    "claim_redis_db_number",
    "end_process",
    "queue_alert",
    "TEST_ADMIN_TOKEN",
    "TEST_SECRET",
    "free_port",
    "private_pg_database",
    "wait_until",
]

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_SECRET = "test-webhook-secret-0123456789"
TEST_ADMIN_TOKEN = "test-admin-token-0123456789"


def private_pg_database(prefix: str = "tv2ib_test") -> contextlib.AbstractContextManager[str]:
    """A new, empty database on the test PostgreSQL server (``TEST_PG_URL``); yields its URL and
    drops it on exit (see :func:`cli.stack.private_pg_database`)."""
    return stack.private_pg_database(PG_ADMIN_URL, prefix)


def _open_lock(path: Path) -> int | None:
    """A descriptor to ``flock`` the lock file on, whoever created it; None when this user may not
    open it (another user's file it cannot read, or a folder it cannot write): a number taken.

    Read-only on purpose: ``flock`` needs no write access, and a file another user created (the
    suite run as root before) is one this user can read but not write. A file this process creates
    is made readable by everyone, whatever the umask, so that other users can lock it in turn."""
    for _ in range(2):
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        except PermissionError:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another process created it in between: open that one
            continue
        except PermissionError:
            return None
        os.fchmod(fd, 0o644)
        return fd
    return None


def claim_redis_db_number(lock_dir: Path) -> tuple[int, int] | None:
    """Lock the first free Redis DB number 1..15 (DB 0 is the developer's own) for as long as the
    returned descriptor stays open: ``(number, descriptor)``; None when all are held.

    One lock file per number, shared by every user of the machine (they share its Redis): a number
    is free when nobody holds its lock, whoever created the file; one whose file this user cannot
    open counts as taken, never as free."""
    for number in range(1, 16):
        fd = _open_lock(lock_dir / f"tv2ib-test-redis-db-{number}.lock")
        if fd is None:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return number, fd
    return None


def queue_alert(
    sessions: sessionmaker, client: redis.Redis, payload: dict[str, Any], *,
    received_at: datetime | None = None, enqueue: bool = True,
) -> str:  # fmt: skip
    """Commit an alert the way the web app does (status queued, default queue) and enqueue its job
    (unless ``enqueue`` is false: an alert Redis lost); returns its id."""
    alert_id = new_alert_id()
    with sessions.begin() as session:
        session.add(
            Alert(
                id=alert_id,
                status=AlertStatus.QUEUED.value,
                received_at=received_at or utcnow(),
                payload=payload,
                ticker=payload.get("ticker"),
                action=payload.get("action"),
                strategy=payload.get("strategy"),
                queue_name=keys.queue_name(None),
                enqueued_at=utcnow() if enqueue else None,
            )
        )
    if enqueue:  # the web's own enqueue: job id ``alert-<id>``, which the relay checks for
        enqueue_alert(client, alert_id, None)
    return alert_id


def alert_status(sessions: sessionmaker, alert_id: str) -> str:
    """The stored status of an alert."""
    with sessions() as session:
        return session.get(Alert, alert_id).status


def stop_problem(state: dict[str, Any], symbol: str = "AAPL") -> str | None:
    """Invariant 7 extended, on one ibsim ``/state``: tv2ib's exits on the closing side, the
    take-profits together at most the position, and the stops together EXACTLY the position (while
    it is open and has a stop at all). Exits are the transmitted working ``tp`` / ``sl`` legs (a
    level's ``tp.1`` / ``sl.1`` too) whose entry has filled."""
    from decimal import Decimal

    from core.ids import exit_leg_parts
    from worker.decision.positions import WorkingExit, exits_fit

    position = sum(
        (Decimal(str(p["position"])) for p in state["positions"] if p["symbol"] == symbol), Decimal(0)
    )
    by_id = {(o["clientId"], o["orderId"]): o for o in state["orders"]}
    exits = []
    for o in state["orders"]:
        parts = (
            exit_leg_parts(o["orderRef"].rsplit(":", 1)[-1]) if o["orderRef"].startswith("tv2ib:") else None
        )
        if parts is None or o["status"] not in WORKING_AT_IB or not o["transmit"]:
            continue
        parent = by_id.get((o["clientId"], o["parentId"])) if o["parentId"] else None
        if parent is not None and parent["status"] != "Filled":
            continue  # a child waiting for its entry: not an exit yet
        exits.append(
            WorkingExit(o["orderRef"], parts[0], o["action"], Decimal(str(o["remaining"])), parts[1])
        )  # type: ignore[arg-type]
    problem = exits_fit(position, exits)
    stops = sum((e.quantity for e in exits if e.role == "sl"), Decimal(0))
    if problem is None and stops and stops != abs(position):
        problem = f"stops {stops} for a position of {position}"
    return problem


WORKING_AT_IB = frozenset({"ApiPending", "PendingSubmit", "PreSubmitted", "Submitted"})


class StateWatcher:
    """Polls ibsim's ``/state`` at ``url`` in a thread and keeps the first five problems ``check``
    finds in a snapshot (an invariant checked all along a test, not only at its end); a failed
    poll is a problem too (ibsim is never restarted where it is used). A context manager."""

    def __init__(self, url: str, check: Callable[[dict[str, Any]], str | None]) -> None:
        self.url, self.check = url, check
        self.stop = threading.Event()
        self.snapshots = 0
        self.broken: list[str] = []
        self.thread = threading.Thread(target=self._run, name="ib-state-watcher", daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                try:
                    state = client.get(self.url).json()
                except httpx.HTTPError as exc:
                    self.broken.append(f"ibsim /state failed: {exc!r}")
                    self.stop.wait(0.1)
                    continue
                self.snapshots += 1
                problem = self.check(state)
                if problem and len(self.broken) < 5:
                    self.broken.append(problem)
                self.stop.wait(0.03)

    def start(self) -> StateWatcher:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)

    def __enter__(self) -> StateWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.finish()
