"""Fixtures for the worker: ibsim in a thread, a worker running in a thread on SQLite + real Redis,
and the database on each backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from worker_helpers import IBHandle, WorkerThread

from config.settings import Settings
from core.context import AppContext
from ibsim.testing import SimThread, run_in_thread


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with run_in_thread(port=0, control_port=None, farm_notices=False) as handle:
        yield handle


@pytest.fixture
def worker_env(base_env: dict[str, str], sim: SimThread) -> dict[str, str]:
    return {**base_env, "IB_PORT": str(sim.port), "IB_CLIENT_ID": "7", "STALE_ALERT_SECONDS": "30"}


@pytest.fixture
def running_worker(worker_env: dict[str, str]) -> Iterator[WorkerThread]:
    handle = WorkerThread(worker_env).start()
    yield handle
    handle.stop()


@pytest.fixture
def start_worker(worker_env: dict[str, str]) -> Iterator[Callable[..., WorkerThread]]:
    """``start_worker(**env)``: a worker in a thread on the test's ibsim, stopped at teardown
    (``housekeeping=`` its housekeeping thread's period: the product's 5 s unless given)."""
    handles: list[WorkerThread] = []

    def start(*, housekeeping: float | None = None, **env: str) -> WorkerThread:
        worker = {} if housekeeping is None else {"housekeeping_interval": housekeeping}
        handles.append(WorkerThread({**worker_env, **env}, **worker).start())
        return handles[-1]

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def watching_worker(start_worker: Callable[..., WorkerThread]) -> WorkerThread:
    """A worker whose periodic watchers (break-even, lost brackets, ...) look every 0.2 s."""
    return start_worker(housekeeping=0.2)


@pytest.fixture
def session(sim: SimThread) -> Iterator[IBHandle]:
    """The IB connection and its trading room on the module's ibsim, as the worker wires them."""
    handle = IBHandle(sim.port)
    handle.conn.start()
    assert handle.conn.wait_ready(10)
    yield handle
    handle.conn.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """The test's SQLite file, then the xdist worker's private PostgreSQL database."""
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
def db_ctx(base_env: dict[str, str], database_url: str) -> Iterator[AppContext]:
    """The app context (engine, sessions, Redis) on each database of :func:`database_url`."""
    context = AppContext.build(Settings.from_mapping({**base_env, "DATABASE_URL": database_url}))
    yield context
    context.close()
