"""The housekeeping thread's periodic checks (worker/housekeeping.py), built from the worker's parts:
the brackets lost with a connection (worker/lost_placements.py), the option expiry alarm
(worker/expiry_watch.py), the session-end flatten (worker/session_flatten.py) and the break-even
stop (worker/break_even_watch.py). Each reads the time from the trading room's clock (tests set it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from config.settings import Settings
from core.context import AppContext
from core.keys import queue_name
from worker.break_even_watch import BreakEvenWatch
from worker.execution.guard import Guard
from worker.expiry_watch import OptionExpiryWatch
from worker.ib.trading import Trading
from worker.lost_placements import LostPlacements
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

    def served_accounts(self) -> list[str] | None: ...

    def serves_alone(self) -> bool: ...


def periodic_checks(worker: Parts) -> list[Callable[[], object]]:
    """The checks, in the order the housekeeping thread runs them."""
    expiry = OptionExpiryWatch(worker.trading, worker.notifier, worker.settings.option_expiry_alarm_time)
    flatten = SessionFlatten(worker.trading, worker.guard, worker.protection, worker.risk, worker.recorder,
                             worker.ctx.sessions, worker.notifier, worker.run_lock)  # fmt: skip
    break_even = BreakEvenWatch(
        worker.trading, worker.guard, worker.protection, worker.recorder, worker.notifier
    )
    settings = worker.settings
    lost = LostPlacements(worker.trading, worker.ctx.sessions, worker.ctx.redis, worker.recorder,
                          lambda: served_queues(settings, worker.served_accounts()),
                          settings.stale_alert_seconds, worker.serves_alone)  # fmt: skip
    return [lost.check, expiry.check, flatten.check, break_even.check]


def served_queues(settings: Settings, accounts: list[str] | None) -> list[str]:
    """The queues whose alerts this worker places: its account's (or the default one) and, without
    IB_ACCOUNT, the queue of the account IB says it manages."""
    return sorted({queue_name(settings.ib_account), *(queue_name(a) for a in accounts or ())})
