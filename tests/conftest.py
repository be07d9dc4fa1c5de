"""Fixtures that build real parts: Redis on a private DB number, a private PostgreSQL database,
SQLite files in tmp. Importable helpers (waiting, free ports, the test secret, private databases) live in
tests/support.py.

Several pytest runs may share this machine's Redis and PostgreSQL (developers, CI): each run
claims a Redis DB number with a file lock and creates its own PostgreSQL database.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support import TEST_ADMIN_TOKEN, TEST_SECRET, private_pg_database

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
_LOCK_DIR = Path(os.environ.get("TMPDIR", "/tmp"))


@pytest.fixture(scope="session")
def _redis_db_number() -> Iterator[int]:
    # DB 0 is the developer's own; 1..15 are claimed by an exclusive lock for this whole run.
    for number in range(1, 16):
        handle = open(_LOCK_DIR / f"tv2ib-test-redis-db-{number}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        try:
            yield number
        finally:
            handle.close()
        return
    pytest.fail("all Redis test DB numbers 1..15 are claimed by other test runs")


@pytest.fixture
def redis_url(_redis_db_number: int) -> Iterator[str]:
    """URL of a real Redis DB that only this test uses; flushed before and after."""
    url = f"{REDIS_BASE}/{_redis_db_number}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not running at {REDIS_BASE}; start it (see .ci/run)")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A private PostgreSQL database for this test run, dropped at the end."""
    with private_pg_database("tv2ib_test") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tv2ib.db'}"


@pytest.fixture
def base_env(redis_url: str, sqlite_url: str) -> dict[str, str]:
    """A complete settings environment on SQLite and the test Redis DB."""
    return {
        "WEBHOOK_SECRET": TEST_SECRET,
        "ADMIN_TOKEN": TEST_ADMIN_TOKEN,
        "DATABASE_URL": sqlite_url,
        "REDIS_URL": redis_url,
    }
