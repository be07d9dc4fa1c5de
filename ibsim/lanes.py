"""The held-back output of one connection under a latency profile: named lanes of messages, each
written in order when due and independent of the others, so a what-if answer IB computes for a
third of a second holds back no order acknowledgement, and a snapshot no fill.

A lane is used only while a profile holds its messages back: a message with no delay for an idle
lane takes the connection's ordinary path (:meth:`ibsim.session.Session.send`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from ibsim.latency import Held


class Lanes:
    """The lanes of one connection; ``write`` puts bytes on its socket."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._queues: dict[str, deque[tuple[float, bytes, Held | None]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def busy(self, lane: str) -> bool:
        """Whether the lane holds messages not yet written (a later one must wait behind them)."""
        return bool(self._queues.get(lane))

    def put(self, lane: str, delay: float, data: bytes, held: Held | None = None) -> float:
        """Write ``data`` in ``delay`` seconds, after every message already in the lane; returns
        when (``time.monotonic()``). ``held`` is stamped with the time it is written."""
        queue = self._queues.setdefault(lane, deque())
        due = time.monotonic() + max(0.0, delay)
        if queue and queue[-1][0] > due:
            due = queue[-1][0]  # a lane keeps its order
        queue.append((due, data, held))
        task = self._tasks.get(lane)
        if task is None or task.done():
            self._tasks[lane] = asyncio.get_running_loop().create_task(self._drain(lane, queue))
        return due

    async def _drain(self, lane: str, queue: deque[tuple[float, bytes, Held | None]]) -> None:
        while queue:
            due, data, held = queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            queue.popleft()
            if held is not None and held.sent is None:
                held.sent = time.monotonic()
            self._write(data)
        # nothing awaits between the last write and here: no message can have joined the lane
        self._queues.pop(lane, None)
        self._tasks.pop(lane, None)

    def cancel(self) -> None:
        """Drop everything held (the connection closes)."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self._queues.clear()
