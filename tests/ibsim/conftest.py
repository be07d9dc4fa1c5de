"""Fixtures for ibsim tests: one simulator per module in a background thread, real clients."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from ib_async import IB
from ibsim_helpers import connected

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
def client_id() -> int:
    """A client id no other test in this run uses."""
    return next(_client_ids)


@pytest.fixture
def ib(fresh: SimThread, client_id: int) -> Iterator[IB]:
    """An ib_async client connected to the fresh simulator (ib_insync's tests define their own)."""
    with connected(IB, fresh.port, client_id) as client:
        yield client
