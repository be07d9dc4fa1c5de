"""Fixtures for ibsim tests: one simulator per module in a background thread, real clients."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from ibsim.testing import SimThread, run_in_thread

_client_ids = itertools.count(100)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    """A running simulator with the HTTP control API, shared by a test module."""
    with run_in_thread(port=0, control_port=0) as handle:
        yield handle


@pytest.fixture
def fresh(sim: SimThread) -> SimThread:
    """The module's simulator, reset (no orders, fills, positions or faults)."""
    sim.reset()
    return sim


@pytest.fixture
def ib(request: pytest.FixtureRequest, fresh: SimThread, client_id: int) -> Iterator[Any]:
    """A client connected to the fresh simulator: the ``IB`` class the test module imports
    (ib_async's, or ib_insync's in test_sim_ib_insync.py), so one fixture serves both libraries."""
    client = request.module.IB()
    client.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=5)
    yield client
    client.disconnect()


@pytest.fixture
def client_id() -> int:
    """A client id no other test in this run uses."""
    return next(_client_ids)
