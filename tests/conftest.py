"""Fixtures that build real parts: Redis on a private DB number, a private PostgreSQL database,
SQLite files in tmp. Importable helpers (waiting, free ports, the test secret, private databases) live in
tests/support.py.

Several pytest runs may share this machine's Redis and PostgreSQL (developers, CI): each run
claims a Redis DB number with a file lock and creates its own PostgreSQL database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fakes.telegram_api import FakeTelegramAPI
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from support import TEST_ADMIN_TOKEN, TEST_SECRET, claim_redis_db_number, private_pg_database

from config.settings import Settings
from core.models import TERMINAL_STATUSES
from worker.notify import Notifier
from worker.notify.sender import SenderConfig

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
_LOCK_DIR = Path(os.environ.get("TMPDIR", "/tmp"))


# How long a test process waits for one of the 15 Redis DB numbers before it gives up: with
# pytest-xdist every worker process claims its own, so several parallel runs on one machine can
# briefly hold all of them; the next run's workers wait for one to be released rather than fail.
# (Within the first test's own pytest-timeout of 300 s.)
REDIS_DB_WAIT_SECONDS = float(os.environ.get("TEST_REDIS_DB_WAIT_SECONDS", "240"))


@pytest.fixture(scope="session")
def _redis_db_number() -> Iterator[int]:
    # Claimed by an exclusive lock for this whole test process (each xdist worker has its own).
    deadline = time.monotonic() + REDIS_DB_WAIT_SECONDS
    while (claimed := claim_redis_db_number(_LOCK_DIR)) is None:
        if time.monotonic() > deadline:
            pytest.fail(
                f"all Redis test DB numbers 1..15 are claimed by other test processes "
                f"(waited {REDIS_DB_WAIT_SECONDS:.0f} s)"
            )
        time.sleep(0.5)
    number, lock = claimed
    try:
        yield number
    finally:
        os.close(lock)


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
def _pg_session_url() -> Iterator[str]:
    with private_pg_database("tv2ib_test") as url:
        yield url


@pytest.fixture
def pg_url(_pg_session_url: str) -> str:
    """A private PostgreSQL database for this test run (shared by the tests of one xdist worker,
    dropped at the end). Alerts an earlier test left in flight are ended first: a worker's relay
    would otherwise find them without a job (Redis is flushed between tests) and run them again,
    placing their orders at this test's fresh ibsim."""
    engine = create_engine(_pg_session_url)
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT to_regclass('alerts')")).scalar() is not None:
                conn.execute(
                    text("UPDATE alerts SET status = 'cancelled', reason = 'left in flight by an earlier test' "
                         "WHERE status NOT IN :ended").bindparams(bindparam("ended", expanding=True)),
                    {"ended": sorted(s.value for s in TERMINAL_STATUSES)},
                )  # fmt: skip
    finally:
        engine.dispose()
    return _pg_session_url


@pytest.fixture
def own_pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test alone, dropped after it: the session's shared one (pg_url)
    keeps earlier tests' fills and protection, and a test's fresh ibsim reuses the same execution ids."""
    with private_pg_database("tv2ib_own") as url:
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


@pytest.fixture
def fake_tg() -> Iterator[FakeTelegramAPI]:
    """A local fake of the Telegram Bot API (tests/fakes/telegram_api.py), running for one test."""
    api = FakeTelegramAPI().start()
    yield api
    api.stop()


FAST = SenderConfig(poll_seconds=0.2, backoff_first=0.2, backoff_max=1.0)


@pytest.fixture
def start_notifier() -> Iterator[Callable[..., Notifier]]:
    """Build and start notifiers (fast polling and backoff); all are stopped at teardown."""
    started: list[Notifier] = []

    def start(
        settings: Settings, sessions: sessionmaker[Session], redis_client: Any = None, **kw: Any
    ) -> Notifier:
        kw.setdefault("sender_config", FAST)
        kw.setdefault("poll_timeout", 1.0)
        notifier = Notifier(settings, sessions, redis_client, **kw)
        notifier.start()
        started.append(notifier)
        return notifier

    yield start
    for notifier in started:
        notifier.stop(timeout=2.0)


def _run_order(item: pytest.Item) -> int:
    """Where a test goes in a parallel run: the slow ones first, then the other end-to-end ones."""
    if item.get_closest_marker("slow"):
        return 0
    if item.get_closest_marker("e2e"):
        return 1
    return 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``scripts/test`` runs several workers), hand out the longest tests first.

    xdist deals the collected tests to its workers in collection order; a minute-long end-to-end test
    dealt last would run alone while the other workers idle. Sorting is stable (each module's tests
    keep their order within a group) and the same in every worker, as xdist requires. A serial run
    keeps the plain file order, so module-scoped fixtures start once per module there.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=_run_order)
