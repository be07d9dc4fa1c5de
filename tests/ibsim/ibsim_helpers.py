"""Helpers shared by the ibsim tests (a unique module name: tests/ibsim is not a package)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from ib_async import IB
from support import end_process, wait_until


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


def start_cli(*args: str) -> tuple[subprocess.Popen[str], int, int]:
    """``python -m ibsim`` on free ports with ``args``: (process, API port, control port)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibsim", "--port", "0", "--control-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ibsim ready"), line
    parts = dict(p.split("=") for p in line.split()[2:])
    return proc, int(parts["port"]), int(parts["control_port"])


def stop_cli(proc: subprocess.Popen[str]) -> None:
    """End a :func:`start_cli` process (by its PID)."""
    end_process(proc, 5)
