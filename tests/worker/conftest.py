"""Fixtures for the worker: ibsim in a thread, a worker running in a thread on SQLite + real Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.context import AppContext
from config.settings import Settings
from ibsim.testing import SimThread, run_in_thread
from worker.runtime import Worker


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with run_in_thread(port=0, control_port=None, farm_notices=False) as handle:
        yield handle


@pytest.fixture
def worker_env(base_env: dict[str, str], sim: SimThread) -> dict[str, str]:
    return {**base_env, "IB_PORT": str(sim.port), "IB_CLIENT_ID": "7", "STALE_ALERT_SECONDS": "30"}


class WorkerThread:
    """A :class:`Worker` consuming in a background thread (no signal handlers)."""

    def __init__(self, env: dict[str, str], probe_interval: float = 1.0) -> None:
        self.ctx = AppContext.build(Settings.from_mapping(env))
        self.worker = Worker(self.ctx, probe_interval=probe_interval)
        self.thread = threading.Thread(target=self.worker.run, name="worker-main", daemon=True)

    def start(self, wait_ready: bool = True) -> WorkerThread:
        self.thread.start()
        if wait_ready:
            assert self.worker.ib.wait_ready(10), "worker did not connect to ibsim"
        return self

    def stop(self) -> None:
        self.worker.stopping.set()
        self.thread.join(15)
        self.ctx.close()
        assert not self.thread.is_alive(), "the worker thread did not stop"


@pytest.fixture
def running_worker(worker_env: dict[str, str]) -> Iterator[WorkerThread]:
    handle = WorkerThread(worker_env).start()
    yield handle
    handle.stop()
