"""Fixtures for the worker: ibsim in a thread, a worker running in a thread on SQLite + real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from worker_helpers import IBHandle, WorkerThread

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
def session(sim: SimThread) -> Iterator[IBHandle]:
    """The IB connection and its trading room on the module's ibsim, as the worker wires them."""
    handle = IBHandle(sim.port)
    handle.conn.start()
    assert handle.conn.wait_ready(10)
    yield handle
    handle.conn.stop()
