"""The risk counters in memory: what worker/risk/state.py's queries would answer, without a query.

The rules' counters (today's realized PnL, the last minute's opening orders, the daily-loss halt:
:class:`~worker.risk.state.RiskCounters`) are read on every entry a rule needs them for. They are
kept here, built from the database at the worker's start (:meth:`RiskTally.load`, the rows
:func:`worker.risk.state.tally_rows` reads) and kept current from what the worker's single
database writer commits (worker/recording/recorder.py hands over each transaction's
:data:`~worker.risk.state.CountedRow` after its commit; the gate's halt is set by the gate).
So an alert's decision reads memory only, and what it reads is what the database holds:

* **today's realized PnL**: the sum of ``realized_pnl`` over the account's fills whose time falls
  in the current trading day or later (``Fill.time >= `` the day's start, as the query), one
  figure per fill (its exec id), kept as a sum per account and trading day;
* **opening orders of the last minute**: the account's ``entry`` Order rows whose ``created_at``
  is in the window (``created_at >= now - 60 s``, as the query), one per orderRef;
* **the halt**: the account's halt row while its day is the current trading day;
* **the protections' fills** (worker/risk/protections.py): the stop-losses' fills and those with
  IB's realized PnL of the last two weeks, per account and strategy, by time; a fill's realized PnL
  joins it when its commission report is recorded.

The account "" (a worker whose account IB has not named) means every account, as in the queries;
a row without an account counts only there. The day rolls over by itself: a reading takes
``now`` and counts from that trading day's start, so nothing has to happen at 17:00 New York.

Everything is idempotent (a row counted again, the start-up load racing the first commits, a
reconnect's reconciliation recording executions again): a fill is counted once by its exec id,
an order once by its orderRef, and a value only ever moves the way the database's does (an
order's account is set once IB names it, a fill's realized PnL once its commission report comes).
What is older than the window or a few trading days is forgotten (:data:`KEEP_DAYS`).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from worker.risk.state import (
    CLOSED_KEPT,
    ORDER_WINDOW,
    ClosedFillRow,
    CountedRow,
    EntryOrderRow,
    Halt,
    RealizedFillRow,
    RiskCounters,
    closed_order,
    halt_key,
    strategy_key,
    trading_day,
)

KEEP_DAYS = 2  # trading days before today still held (a clock stepped back by NTP finds them)
KEEP_ORDERS = ORDER_WINDOW * 2  # opening orders this old are forgotten (same reason)
NUMERIC_PLACES = Decimal("1E-10")
PRUNE_EVERY = timedelta(days=1)  # the database's money columns: Numeric(24, 10)


class RiskTally:
    """The counters of every account this worker has seen (thread-safe: the recorder writes, the
    job, the IB loop and the daily-loss watcher read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orders: dict[str, tuple[str, datetime]] = {}  # orderRef -> (account, created_at)
        self._fills: dict[str, date] = {}  # exec id -> its trading day (counted once)
        self._realized: dict[tuple[str, date], Decimal] = {}  # (account, trading day) -> sum
        self._halts: dict[str, Halt] = {}  # halt key -> the halt as stored
        self._newest_day: date | None = None  # the latest trading day a fill was counted for
        self._closed_rows: dict[str, ClosedFillRow] = {}  # exec id -> the protections' fill
        self._closed: dict[tuple[str, str], tuple[ClosedFillRow, ...]] = {}  # (account, strategy) -> by time
        self._pruned: datetime | None = None  # the newest fill's time when old ones were last forgotten
        self.loaded = False  # built from the database (RiskGate.load_counters)

    # ------------------------------------------------------------------ what changes them

    def apply(self, rows: Iterable[CountedRow]) -> None:
        """Rows a transaction committed (the recorder thread), or the start-up load's."""
        with self._lock:
            for row in rows:
                if isinstance(row, EntryOrderRow):
                    self._order(row)
                elif isinstance(row, ClosedFillRow):
                    self._closed_fill(row)
                else:
                    self._fill(row)

    def load(self, rows: Iterable[CountedRow], halts: Mapping[str, Halt]) -> None:
        """The database's rows at start (merged with what was committed meanwhile)."""
        self.apply(rows)
        with self._lock:
            for key, halt in halts.items():
                kept = self._halts.get(key)
                if kept is None or kept.day < halt.day:
                    self._halts[key] = halt
            self.loaded = True

    def set_halt(self, account: str, halt: Halt | None) -> None:
        """The account's halt row as the gate just stored it (None: none)."""
        with self._lock:
            if halt is None:
                self._halts.pop(halt_key(account), None)
            else:
                self._halts[halt_key(account)] = halt

    def _order(self, row: EntryOrderRow) -> None:
        kept = self._orders.get(row.order_ref)
        account = row.account or (kept[0] if kept is not None else "")  # named once, never unnamed
        self._orders[row.order_ref] = (account, row.created_at)
        if kept is None:  # a new order: forget those long out of the window
            horizon = row.created_at - KEEP_ORDERS
            self._orders = {ref: v for ref, v in self._orders.items() if v[1] >= horizon}

    def _fill(self, row: RealizedFillRow) -> None:
        if row.exec_id in self._fills:  # IB's realized PnL is set once per fill
            return
        day = trading_day(row.time)
        self._fills[row.exec_id] = day
        key = (row.account, day)
        self._realized[key] = self._realized.get(key, Decimal(0)) + row.realized.quantize(NUMERIC_PLACES)
        if self._newest_day is None or day > self._newest_day:  # a new day: forget the old ones
            self._newest_day = day
            oldest = day - timedelta(days=KEEP_DAYS)
            self._fills = {ex: d for ex, d in self._fills.items() if d >= oldest}
            self._realized = {k: v for k, v in self._realized.items() if k[1] >= oldest}

    def _closed_fill(self, row: ClosedFillRow) -> None:
        kept = self._closed_rows.get(row.exec_id)
        if kept is not None:
            if kept.realized is not None or row.realized is None:  # set once, never unset
                return
            row = replace(kept, realized=row.realized)
            self._unfile(kept)
        self._closed_rows[row.exec_id] = row
        key = (row.account, strategy_key(row.strategy))
        self._closed[key] = tuple(sorted((*self._closed.get(key, ()), row), key=closed_order))
        if self._pruned is None or row.time - self._pruned > PRUNE_EVERY:  # forget what no lock comes from
            self._pruned = row.time
            horizon = row.time - CLOSED_KEPT
            for old in [r for r in self._closed_rows.values() if r.time < horizon]:
                del self._closed_rows[old.exec_id]
                self._unfile(old)

    def _unfile(self, row: ClosedFillRow) -> None:
        key = (row.account, strategy_key(row.strategy))
        rows = tuple(r for r in self._closed.get(key, ()) if r.exec_id != row.exec_id)
        if rows:
            self._closed[key] = rows
        else:
            self._closed.pop(key, None)

    # ------------------------------------------------------------------ what the rules read

    def closed(self, account: str) -> dict[str, tuple[ClosedFillRow, ...]]:
        """The protections' fills of ``account`` ("": every account) per strategy, by time."""
        with self._lock:
            return self._closed_of(account)

    def closed_by_account(self) -> dict[str, dict[str, tuple[ClosedFillRow, ...]]]:
        """Every account's (the lock watcher's)."""
        with self._lock:
            accounts = {account for account, _ in self._closed}
            return {account: self._closed_of(account) for account in accounts}

    def _closed_of(self, account: str, since: datetime | None = None) -> dict[str, tuple[ClosedFillRow, ...]]:
        """Per strategy, by time (from ``since`` on, as the query: what is older no lock comes from)."""
        merged: dict[str, tuple[ClosedFillRow, ...]] = {}
        for (a, k), rows in self._closed.items():
            if account and a != account:
                continue
            if since is not None:
                rows = rows[bisect_left(rows, since, key=lambda r: r.time) :]
            if rows:
                merged[k] = tuple(sorted((*merged[k], *rows), key=closed_order)) if k in merged else rows
        return merged

    def counters(self, account: str, now: datetime) -> RiskCounters:
        """What worker/risk/state.py's ``counters`` would read for ``account`` at ``now``."""
        with self._lock:
            return RiskCounters(self._realized_today(account, now), self._orders_since(account, now - ORDER_WINDOW),
                                self._halt(account, now), self._closed_of(account, now - CLOSED_KEPT))  # fmt: skip

    def realized_today(self, account: str, now: datetime) -> Decimal:
        with self._lock:
            return self._realized_today(account, now)

    def halt(self, account: str, now: datetime) -> Halt | None:
        with self._lock:
            return self._halt(account, now)

    def _realized_today(self, account: str, now: datetime) -> Decimal:
        today = trading_day(now)
        return sum((v for (a, day), v in self._realized.items() if day >= today and (not account or a == account)),
                   Decimal(0))  # fmt: skip

    def _orders_since(self, account: str, since: datetime) -> int:
        return sum(1 for a, at in self._orders.values() if at >= since and (not account or a == account))

    def _halt(self, account: str, now: datetime) -> Halt | None:
        halt = self._halts.get(halt_key(account))
        return halt if halt is not None and halt.day == trading_day(now) else None
