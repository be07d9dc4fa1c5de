"""The worker's per-unit margin figures (worker/decision/margin_book.py), in memory.

Keyed by account, contract (conId) and side. Filled from IB's what-if answers: an alert's own
what-if (worker/execution/what_if.py) and the background refresh
(worker/execution/margin_refresh.py). Read by the margin check on the job thread, written from
the job thread and the IB loop: every access holds the lock (a dictionary read, no I/O under it).
A what-if that fails or is broken forgets the figure: the next alert asks IB itself.
A restart starts empty (the start-up refresh learns the contracts the files name).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from worker.decision.margin_book import RESERVE_SECONDS, PerUnit, Reservation, learned, reserved
from worker.decision.model import Leg
from worker.ib.placement import WhatIfAnswer

Key = tuple[str, int, str]  # account, conId, side (BUY / SELL)
SIDES = ("BUY", "SELL")


@dataclass
class _Entry:
    """One key: its figure (None: not learned, or forgotten), what to ask when refreshing it, and
    when it was last asked (a key that cannot be learned is asked again only after a while)."""

    quantity: Decimal
    symbol: str
    unit: PerUnit | None = None
    asked_at: float = float("-inf")


class MarginBook:
    """Per-unit figures by (account, conId, side), and the margin approved moments ago."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Key, _Entry] = {}
        self._held: dict[str, list[Reservation]] = {}

    def figure(self, account: str, con_id: int, side: str) -> PerUnit | None:
        with self._lock:
            entry = self._entries.get((account, con_id, side))
            return entry.unit if entry is not None else None

    def want(
        self, account: str, con_id: int, symbol: str, quantity: Decimal = Decimal(1), *, now: bool
    ) -> None:
        """Keep both sides of the contract learned: a start-up name ``now``, a contract an alert
        saw first at the next interval (its own side is learned from the alert's what-if)."""
        asked_at = float("-inf") if now else self.clock()
        with self._lock:
            for side in SIDES:
                self._entries.setdefault((account, con_id, side), _Entry(quantity, symbol, asked_at=asked_at))

    def take(
        self, account: str, con_id: int, order: Leg, reply: WhatIfAnswer, described: str
    ) -> PerUnit | None:
        """IB's answer to a what-if of the plain opening ``order``: learned, or (broken, failed)
        the figure forgotten. Returns what is known now."""
        now = self.clock()
        unit = learned(reply.answer, order, reply.figures.currency, now, described)
        with self._lock:
            entry = self._entries.setdefault((account, con_id, order.action), _Entry(order.quantity, ""))
            entry.unit, entry.asked_at = unit, now
            if unit is not None:
                entry.quantity = order.quantity
        return unit

    def asked(self, key: Key) -> None:
        """A refresh of ``key`` was due but could not be asked now (netted by the position)."""
        with self._lock:
            if key in self._entries:
                self._entries[key].asked_at = self.clock()

    def due(self, every: float, con_ids: set[int] | None = None) -> list[tuple[Key, Decimal, str]]:
        """Keys last asked at least ``every`` seconds ago (of ``con_ids`` only, when given), oldest
        first, with the quantity and symbol to ask about."""
        now = self.clock()
        with self._lock:
            rows = [(entry.asked_at, key, entry.quantity, entry.symbol) for key, entry in self._entries.items()
                    if now - entry.asked_at >= every and (con_ids is None or key[1] in con_ids)]  # fmt: skip
        return [
            (key, quantity, symbol) for _at, key, quantity, symbol in sorted(rows, key=lambda row: row[0])
        ]

    def reserve(self, account: str, needs: Decimal, funds_seen: Decimal | None) -> None:
        """Margin just approved: it counts against AvailableFunds until IB reports the funds again."""
        if needs <= 0:
            return
        now = self.clock()
        with self._lock:
            kept = [r for r in self._held.get(account, []) if now - r.at < RESERVE_SECONDS]
            self._held[account] = [*kept, Reservation(needs, funds_seen, now)]

    def reserved(self, account: str, available: Decimal | None) -> Decimal:
        with self._lock:
            return reserved(self._held.get(account, ()), available, self.clock())
