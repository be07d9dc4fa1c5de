"""Helpers shared by the ibsim tests (a unique module name: tests/ibsim is not a package)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

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


def reconnected_after_a_fill(
    lib: ModuleType, port: int, client_id: int, contract_of: Callable[[Any], Any], ref: str, tp: float
) -> Any:
    """With ``lib``'s client (ib_async or ib_insync): a market entry of 3 that fills and a take-profit
    at ``tp`` that rests (orderRefs ``<ref>:entry`` and ``<ref>:tp``), then a disconnect. A new ``IB``
    connected again with the same client id: what it rebuilds is the test's to check."""
    ib = lib.IB()
    ib.connect("127.0.0.1", port, clientId=client_id, timeout=5)
    contract = contract_of(ib)
    ib.placeOrder(contract, lib.MarketOrder("BUY", 3, orderRef=f"{ref}:entry"))
    ib.placeOrder(contract, lib.LimitOrder("SELL", 3, tp, orderRef=f"{ref}:tp"))
    wait_for(ib, lambda: len(ib.fills()) == 1 and len(ib.openTrades()) == 1)
    ib.disconnect()
    again = lib.IB()
    again.connect("127.0.0.1", port, clientId=client_id, timeout=5)
    return again


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
