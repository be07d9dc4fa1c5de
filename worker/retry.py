"""One retry primitive: capped exponential backoff with jitter, for named exceptions only."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff_delay(attempt: int, base: float, cap: float, jitter: bool = True) -> float:
    """The wait before retry number ``attempt`` (1-based): base * 2^(attempt-1), capped; with
    jitter a uniform share of 50-100% of it, so many processes never retry in step."""
    delay = min(cap, base * 2 ** min(attempt - 1, 16))
    return delay * random.uniform(0.5, 1.0) if jitter else delay


def retry(
    fn: Callable[[], T],
    *,
    on: tuple[type[BaseException], ...],
    what: str,
    base: float = 0.2,
    cap: float = 5.0,
    attempts: int | None = None,
    stop: threading.Event | None = None,
    jitter: bool = True,
) -> T:
    """Call ``fn`` until it returns; retry only exceptions in ``on``, waiting with backoff
    (:func:`backoff_delay`: ``base`` before the first retry, doubling up to ``cap``).

    ``attempts`` caps the calls (None: until ``stop`` is set). When ``stop`` is set, or is set
    while waiting, the last exception is raised. Each retry is logged as
    ``"<what> (<exception>); retry in <delay>s"``, so ``what`` names the failure
    (e.g. "Redis unavailable").
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except on as exc:
            if (attempts is not None and attempt >= attempts) or (stop is not None and stop.is_set()):
                raise
            delay = backoff_delay(attempt, base, cap, jitter)
            log.warning("%s (%s); retry in %.1fs", what, exc, delay)
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                time.sleep(delay)


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    on: tuple[type[BaseException], ...],
    what: str,
    base: float = 0.2,
    cap: float = 5.0,
    attempts: int | None = None,
) -> T:
    """:func:`retry` for a coroutine on an asyncio loop: awaits ``fn()`` until it returns, sleeping
    with backoff (never blocking the loop) between attempts. ``attempts`` None retries until it
    succeeds or the task is cancelled."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except on as exc:
            if attempts is not None and attempt >= attempts:
                raise
            delay = backoff_delay(attempt, base, cap)
            log.warning("%s failed (%s); retry in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
