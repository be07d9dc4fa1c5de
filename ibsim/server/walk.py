"""The demo's random walk (``--walk``): every price takes a small log-normal step on its tick grid
at each interval."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Sequence

from ibsim.catalog.ticks import round_to_tick
from ibsim.engine.core import Engine
from ibsim.engine.events import Event


async def random_walk(
    engine: Engine,
    apply: Callable[[Sequence[Event]], None],
    rng: random.Random,
    interval: float,
    volatility: float,
) -> None:
    """Step every price each ``interval`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        events: list[Event] = []
        for inst in list(engine.catalog):
            price = engine.market.price(inst.con_id)
            new = round_to_tick(price * math.exp(rng.gauss(0.0, volatility)), inst.min_tick)
            if new > 0 and new != price:
                events += engine.set_price(inst.con_id, new)
        # one batch per step: each subscriber gets one round of account updates, not one per contract
        apply(events)
