"""Helpers any test module can import (``from support import ...``; tests/ is on ``sys.path``):
waiting for a condition, free loopback ports, the test secret and admin token, private PostgreSQL
databases.

``wait_until`` and ``free_port`` are the ones ``tv2ib replay`` and ``bench/`` use (``cli/stack.py``:
the product cannot import the tests), so there is one polling loop and one port finder in the tree.

Several pytest runs share this machine's PostgreSQL; each creates databases with random names, so
no run sees another's rows.
"""

from __future__ import annotations

import contextlib
import os

from cli import stack
from cli.stack import free_port, wait_until

__all__ = [
    "PG_ADMIN_URL",
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
