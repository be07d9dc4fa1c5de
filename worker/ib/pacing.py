"""Pacing of messages to IB: at most 50 per second per connection, or IB answers error 100.

Two layers, both sliding windows over the last second:

* :class:`Pacer` (ours) gates every order-related request the worker sends (a bracket acquires
  3 at once, a cancel 1) to :data:`ORDER_MESSAGES_PER_SECOND`, leaving headroom for the rest;
  a burst of alerts waits here, in order, instead of being refused;
* ib_async's client throttle (``MaxRequests`` = 45 per ``RequestsInterval`` = 1 s) covers every
  message, including probes and contract requests, as a backstop.

When IB answers error 100 all the same (another program on the client id, a pacing storm), the
pacer slows down for a while (:meth:`Pacer.refused`, the rule in worker/decision/pacing.py) and the
refused message is sent again (worker/ib/paced.py).

Because our pacer keeps order traffic under ib_async's limit, a placement's messages leave at once
and are on the wire when the placement returns; :func:`wait_drained` checks that, so a job is
never recorded as placed while its orders still sit in a client-side queue a disconnect would drop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from worker.decision.pacing import Backoff, after_refusal, limit_at

ORDER_MESSAGES_PER_SECOND = 40
WINDOW_SECONDS = 1.0


class Pacer:
    """An asyncio sliding-window limiter: ``await acquire(n)`` before sending ``n`` messages."""

    def __init__(self, limit: int = ORDER_MESSAGES_PER_SECOND, window: float = WINDOW_SECONDS) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # total seconds spent waiting (for logs, tests and worker metrics)
        self.waits = 0  # acquires that had to wait at least once
        self.backoff = Backoff()  # lowered after IB's error 100

    def refused(self) -> None:
        """IB refused a message for pacing (error 100): slow down for a while."""
        self.backoff = after_refusal(self.backoff, self.limit, time.monotonic())

    def current_limit(self) -> int:
        """Messages per window now: the limit, lower while a back-off holds."""
        return limit_at(self.backoff, self.limit, time.monotonic())

    async def acquire(self, count: int = 1) -> None:
        """Wait until ``count`` more messages keep the last window at or under the limit."""
        async with self._lock:  # FIFO: earlier callers go first
            waited = False
            while True:
                now = time.monotonic()
                limit = limit_at(self.backoff, self.limit, now)
                wanted = min(count, limit)
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) + wanted <= limit:
                    self._sent.extend([now] * wanted)
                    return
                delay = self._sent[max(0, len(self._sent) + wanted - limit - 1)] + self.window - now
                self.waited += max(0.0, delay)
                if not waited:
                    waited = True
                    self.waits += 1
                await asyncio.sleep(max(delay, 0.001))

    def recent(self) -> int:
        """Messages counted in the current window."""
        now = time.monotonic()
        return sum(1 for t in self._sent if now - t < self.window)


async def wait_drained(client: Any, timeout: float = 5.0) -> bool:
    """Wait until ib_async's client-side throttle queue is empty (our messages are on the wire)."""
    queue = getattr(client, "_msgQ", None)
    if queue is None:
        return True
    deadline = time.monotonic() + timeout
    while queue:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True
