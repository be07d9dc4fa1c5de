"""The notifier's periodic jobs: when each is due, and the loop that runs it.

A job is a step (a coroutine) and a period. The step decides itself whether there is work (the
daily summary checks the hour rather than sleeping until it: robust to clock jumps and suspends);
a failing step is logged and tried again next period, never ending the loop.

Adding a job is one step and one ``run_every`` task in ``Notifier._main`` (or ``_step_up`` for
jobs only the sending worker runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)


async def run_every(
    seconds: float,
    step: Callable[[], Awaitable[object]],
    what: str,
    *,
    while_: Callable[[], bool] = lambda: True,
) -> None:
    """Await ``step`` every ``seconds`` while ``while_()`` holds; a failure is logged as
    "<what> failed" and the next period comes anyway."""
    while while_():
        try:
            await step()
        except Exception:  # noqa: BLE001 - a periodic job must outlive one bad run
            log.exception("%s failed", what)
        await asyncio.sleep(seconds)


@dataclass
class DailyAt:
    """Due once per UTC day, at or after ``HH:MM`` (a worker started after the hour is due at once;
    the notice's dedup key, the date, makes it once per day across restarts and workers)."""

    hour: int
    minute: int
    done_for: str | None = None

    @classmethod
    def parse(cls, hhmm: str) -> DailyAt:
        hours, minutes = (int(x) for x in hhmm.split(":"))
        return cls(hours, minutes)

    def due(self, now: datetime) -> bool:
        return self.done_for != now.date().isoformat() and (now.hour, now.minute) >= (self.hour, self.minute)

    def done(self, now: datetime) -> None:
        self.done_for = now.date().isoformat()
