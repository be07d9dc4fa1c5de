"""The order pacer: a sliding one-second window, FIFO, never refusing."""

import asyncio
import time

from worker.ib.pacing import Pacer


def test_pacer_never_exceeds_the_window_and_serves_everyone():
    async def run() -> list[float]:
        pacer = Pacer(limit=10, window=0.2)
        stamps: list[float] = []

        async def bracket() -> None:
            await pacer.acquire(3)
            stamps.extend([time.monotonic()] * 3)

        await asyncio.gather(*(bracket() for _ in range(10)))
        return stamps

    stamps = asyncio.run(run())
    assert len(stamps) == 30
    for i, start in enumerate(stamps):
        in_window = [t for t in stamps[i:] if t - start < 0.2 - 1e-3]
        assert len(in_window) <= 10
    assert stamps[-1] - stamps[0] >= 0.4  # 30 messages at 10 per 0.2 s need at least two more windows
