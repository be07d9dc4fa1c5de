"""Forgetting finished orders: ib_async keeps every trade and fill of its session.

``IB.wrapper.trades`` (and ``permId2Trade``) hold every order the session saw, ``wrapper.fills``
every execution, each with its log and its contract, until the next connect starts them afresh.
A worker connected for weeks grows by about 12 KB per order that way (bench/soak.py). So the IB
loop forgets, every minute, the trades that are DONE (filled, cancelled, inactive: never a working
one, whatever it waits for) and whose last news is older than a margin, with their fills.

What they were still good for, and why forgetting is safe after the margin:

* the exactly-once check (worker/ib/orders.py ``known``) looks a job's orderRefs up in them. A job
  runs again only until its placement is recorded (seconds: the job retries at once) or after a
  restart (which reads IB's completed orders and executions afresh). A trade is forgotten only
  once the recorder COMMITTED its final state (:meth:`Pruner.recorded`) and the margin
  (``IB_PRUNE_DONE_AFTER_SECONDS``, one hour by default) has passed since;
* the recorder's facts: already written;
* the guard and the jobs work on working orders only.

Trades that ib_async loaded at the connect (completed orders: no log) count as old as the connect.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ib_async import IB, Trade

log = logging.getLogger(__name__)

PRUNE_EVERY = 60.0


class Pruner:
    """Forgets done trades of one connection (see the module docstring); runs on the IB loop, except
    :meth:`recorded`, which the recorder's thread calls."""

    def __init__(self, ib: IB, margin: float) -> None:
        self.ib = ib
        self.margin = margin  # 0: never prune
        self._recorded: dict[int, float] = {}  # permId -> when its final state was committed
        self._lock = threading.Lock()
        self._next = 0.0
        self.forgotten = 0  # trades forgotten since the start (the heartbeat and bench read it)

    def recorded(self, perm_id: int) -> None:
        """The recorder committed the final state of the order ``perm_id``."""
        if perm_id:
            with self._lock:
                self._recorded[perm_id] = time.time()

    def reset(self) -> None:
        """A new connect: ib_async started its lists afresh."""
        with self._lock:
            self._recorded.clear()

    def due(self) -> bool:
        now = time.monotonic()
        if self.margin <= 0 or now < self._next:
            return False
        self._next = now + min(PRUNE_EVERY, self.margin)
        return True

    def prune(self, connected_at: float, now: float | None = None) -> set[int]:
        """Forget the done trades recorded more than ``margin`` ago (and last heard of then), with
        their fills; returns their permIds."""
        now = time.time() if now is None else now
        cutoff = now - self.margin
        with self._lock:
            recorded = dict(self._recorded)
        wrapper = self.ib.wrapper
        gone: list[tuple[Any, Trade]] = []
        for key, trade in list(wrapper.trades.items()):
            if not trade.isDone():
                continue
            at = recorded.get(trade.order.permId)
            if at is None and not trade.log:  # loaded at the connect: as old as the connect
                at = connected_at
            if at is None or at > cutoff or _last_news(trade, connected_at) > cutoff:
                continue
            gone.append((key, trade))
        return self._forget(gone) if gone else set()

    def _forget(self, gone: list[tuple[Any, Trade]]) -> set[int]:
        wrapper = self.ib.wrapper
        perm_ids = {trade.order.permId for _, trade in gone if trade.order.permId}
        exec_ids = {fill.execution.execId for _, trade in gone for fill in trade.fills}
        for key, _trade in gone:
            wrapper.trades.pop(key, None)
        for perm_id in perm_ids:
            wrapper.permId2Trade.pop(perm_id, None)
        for exec_id, fill in list(wrapper.fills.items()):
            if exec_id in exec_ids or fill.execution.permId in perm_ids:
                del wrapper.fills[exec_id]
        with self._lock:
            for perm_id in perm_ids:
                self._recorded.pop(perm_id, None)
        self.forgotten += len(gone)
        log.debug("forgot %d done trade(s) older than %.0f s", len(gone), self.margin)
        return perm_ids


def _last_news(trade: Trade, default: float) -> float:
    """When IB last said something about the trade (its log), else ``default``."""
    if trade.log:
        return trade.log[-1].time.timestamp()
    return default
