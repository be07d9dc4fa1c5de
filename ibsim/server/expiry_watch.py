"""The options' expiry on the engine's clock: every :data:`CHECK_SECONDS` the options whose session
end (16:00 New York on the expiry day) has passed are settled (:mod:`ibsim.engine.expiry`). The
first check runs at start, so a ``--state`` file's positions in options that expired while ibsim
was down are settled before any client connects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ibsim.engine.core import Engine
from ibsim.engine.events import Event

#: how often the clock is checked (a test's clock moved past 16:00 is seen within this)
CHECK_SECONDS = 0.25


async def watch_expiries(
    engine: Engine, apply: Callable[[Sequence[Event]], None], interval: float = CHECK_SECONDS
) -> None:
    """Settle the options due by the engine's clock, each ``interval`` seconds, until cancelled."""
    while True:
        apply(engine.expire_options())
        await asyncio.sleep(interval)
