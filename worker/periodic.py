"""The housekeeping thread's periodic checks (worker/housekeeping.py), built from the worker's parts:
the option expiry alarm (worker/expiry_watch.py), the session-end flatten
(worker/session_flatten.py) and the break-even stop (worker/break_even_watch.py). Each reads the time from the trading room's clock (tests set it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from config.settings import Settings
from core.context import AppContext
from worker.break_even_watch import BreakEvenWatch
from worker.execution.guard import Guard
from worker.expiry_watch import OptionExpiryWatch
from worker.ib.trading import Trading
from worker.notify import Notifier
from worker.recording.protection import ProtectionRegistry
from worker.recording.recorder import Recorder
from worker.risk.gate import RiskGate
from worker.session_flatten import SessionFlatten


class Parts(Protocol):
    """What the checks use of the worker (worker/runtime.py)."""

    ctx: AppContext
    settings: Settings
    trading: Trading
    notifier: Notifier
    guard: Guard
    protection: ProtectionRegistry
    risk: RiskGate
    recorder: Recorder
    run_lock: threading.Lock


def periodic_checks(worker: Parts) -> list[Callable[[], object]]:
    """The checks, in the order the housekeeping thread runs them."""
    expiry = OptionExpiryWatch(worker.trading, worker.notifier, worker.settings.option_expiry_alarm_time)
    flatten = SessionFlatten(worker.trading, worker.guard, worker.protection, worker.risk, worker.recorder,
                             worker.ctx.sessions, worker.notifier, worker.run_lock)  # fmt: skip
    break_even = BreakEvenWatch(
        worker.trading, worker.guard, worker.protection, worker.recorder, worker.notifier
    )
    return [expiry.check, flatten.check, break_even.check]
