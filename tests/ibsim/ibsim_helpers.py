"""Helpers shared by the ibsim tests (a unique module name: tests/ibsim is not a package)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ib_async import IB
from support import wait_until


def wait_for(ib: IB, predicate: Callable[[], object], timeout: float = 3.0) -> None:
    """Let the client loop run until predicate() holds (ib_async's or ib_insync's ``IB``: both
    have ``sleep``, which runs the client's loop)."""

    def pump(seconds: float) -> None:
        try:
            ib.sleep(seconds)
        except ConnectionError:
            # a dropped connection surfaces here; the predicate decides whether that was expected
            time.sleep(seconds)

    wait_until(predicate, timeout, "condition not reached in time", interval=0.02, sleep=pump)


class FakeClock:
    """A clock the test moves by hand (``clock.now += 1``); pass it where ibsim takes a clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
