"""Helpers any test module can import (``from support import ...``; tests/ is on ``sys.path``):
waiting for a condition, free loopback ports, the test secret and admin token, private PostgreSQL
databases, an alert queued as the web app queues it.

``wait_until`` and ``free_port`` are the ones ``tv2ib replay`` and ``bench/`` use (``cli/stack.py``:
the product cannot import the tests), so there is one polling loop and one port finder in the tree.

Several pytest runs share this machine's PostgreSQL; each creates databases with random names, so
no run sees another's rows.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from typing import Any

import redis
from rq import Queue
from sqlalchemy.orm import sessionmaker

from cli import stack
from cli.stack import end_process, free_port, wait_until
from core import keys
from core.ids import new_alert_id
from core.models import Alert, AlertStatus, utcnow

__all__ = [
    "PG_ADMIN_URL",
    "alert_status",
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
            )
        )
    if enqueue:
        Queue(keys.queue_name(None), connection=client).enqueue(keys.EXECUTE_ALERT_JOB, alert_id)
    return alert_id


def alert_status(sessions: sessionmaker, alert_id: str) -> str:
    """The stored status of an alert."""
    with sessions() as session:
        return session.get(Alert, alert_id).status
