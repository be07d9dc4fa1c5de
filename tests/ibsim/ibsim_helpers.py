"""Helpers shared by the ibsim tests (a unique module name: tests/ibsim is not a package)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from ib_async import IB


def wait_for(ib: IB, predicate: Callable[[], object], timeout: float = 3.0) -> None:
    """Let the client loop run until predicate() holds (ib_async's or ib_insync's ``IB``: both
    have ``sleep``, which runs the client's loop)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        try:
            ib.sleep(0.02)
        except ConnectionError:
            # a dropped connection surfaces here; the predicate decides whether that was expected
            time.sleep(0.02)


@contextlib.contextmanager
def connected(ib_class: type[Any], port: int, client_id: int) -> Iterator[Any]:
    """A client of ``ib_class`` (ib_async's or ib_insync's ``IB``) connected to ibsim, disconnected
    at the end."""
    client = ib_class()
    client.connect("127.0.0.1", port, clientId=client_id, timeout=5)
    try:
        yield client
    finally:
        client.disconnect()
