"""Helpers shared by the ibsim tests (a unique module name: tests/ibsim is not a package)."""

from __future__ import annotations

import time
from collections.abc import Callable

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
