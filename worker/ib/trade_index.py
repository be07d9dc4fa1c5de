"""ib_async's trades and fills by orderRef, and its working trades, without a scan per lookup.

``IB.trades()``, ``IB.fills()`` and ``IB.openTrades()`` walk every order the session has seen; a
bracket's path asks them a dozen times (what IB knows of its refs, the resting entries, the
working exits, whether the position has settled), and a busy session holds thousands of orders
until the pruner (worker/ib/pruning.py) forgets the done ones after an hour: 90 us per lookup at
1,000 orders, growing with them.

ib_async only ever ADDS to its two dicts (``wrapper.trades``, ``wrapper.fills``; a modification
updates the trade object in place, an execution seen twice is not stored twice). They shrink in two
ways only: a disconnect replaces them with new dicts (``Wrapper.reset``), and tv2ib's own code
deletes entries: the pruner (its ``forgotten`` count grows) and the pacing re-send
(worker/ib/paced.py forgets the orders IB refused, and calls :meth:`TradeIndex.dropped`). So the
index takes each dict's new entries from where it stopped (dicts keep insertion order) and starts
over when the dict is a new one, when it is shorter than seen, or after a deletion. Code that
deletes from ib_async's dicts must say so here. What a lookup returns is read from the
trades themselves at that moment (their status, their orderRef), never from the index's memory;
a trade whose orderRef IB reports changed is filed under its new one as the report comes
(``openOrderEvent``), so a lookup by orderRef finds exactly what a scan would.

Working trades: a trade leaves IB's working states for good once done (filled, cancelled: ib_async
asserts a done order is never modified), so the working list drops a trade at the first read
that finds it done and only ever adds the new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from ib_async import Fill, OrderStatus, Trade


class TradeIndex:
    """One connection's index over ``ib.wrapper`` (used on the IB loop only)."""

    def __init__(self, ib: Any, pruned: Callable[[], int]) -> None:
        self.ib = ib
        self._pruned = pruned  # the pruner's count of forgotten trades: a change means deletions
        self._trades_dict: dict[Any, Trade] | None = None
        self._fills_dict: dict[str, Fill] | None = None
        self._generation = (-1, -1)
        self._dropped = 0  # deletions announced by :meth:`dropped`
        self._trades_seen = 0
        self._fills_seen = 0
        self._by_ref: dict[str, list[Trade]] = {}
        self._fills_by_ref: dict[str, list[Fill]] = {}
        self._working: list[Trade] = []
        self._order: dict[int, int] = {}  # id(trade) -> its place in ib_async's dict
        ib.openOrderEvent += self._reported

    def dropped(self) -> None:
        """Entries were deleted from ib_async's dicts: the next lookup indexes them afresh."""
        self._dropped += 1

    def trades(self, ref: str) -> list[Trade]:
        """The trades whose orderRef is ``ref``, in the order ib_async saw them."""
        self._sync()
        found = [t for t in self._by_ref.get(ref, ()) if t.order.orderRef == ref]
        if len(found) > 1:  # one filed under a new orderRef after others: ib_async's order
            found.sort(key=lambda t: self._order.get(id(t), len(self._order)))
        return found

    def fills(self, ref: str) -> list[Fill]:
        """The executions of orders whose orderRef is ``ref``."""
        self._sync()
        return [f for f in self._fills_by_ref.get(ref, ()) if f.execution.orderRef == ref]

    def refs(self) -> set[str]:
        """Every orderRef IB reported an order or an execution for."""
        self._sync()
        named = {ref for ref, trades in self._by_ref.items() if any(t.order.orderRef == ref for t in trades)}
        return named | {ref for ref, fills in self._fills_by_ref.items() if fills}

    def working(self) -> list[Trade]:
        """``IB.openTrades()``: the trades not done, in ib_async's order."""
        self._sync()
        done = OrderStatus.DoneStates
        if any(t.orderStatus.status in done for t in self._working):
            self._working = [t for t in self._working if t.orderStatus.status not in done]
        return list(self._working)

    def _sync(self) -> None:
        wrapper = self.ib.wrapper
        trades, fills, generation = wrapper.trades, wrapper.fills, (self._pruned(), self._dropped)
        if (
            trades is not self._trades_dict
            or fills is not self._fills_dict
            or generation != self._generation
            or len(trades) < self._trades_seen
            or len(fills) < self._fills_seen
        ):
            self._trades_dict, self._fills_dict, self._generation = trades, fills, generation
            self._trades_seen = self._fills_seen = 0
            self._by_ref, self._fills_by_ref, self._working, self._order = {}, {}, [], {}
        if len(trades) > self._trades_seen:
            self._add_trades(islice(trades.values(), self._trades_seen, None), self._trades_seen)
            self._trades_seen = len(trades)
        if len(fills) > self._fills_seen:
            for fill in islice(fills.values(), self._fills_seen, None):
                self._fills_by_ref.setdefault(fill.execution.orderRef, []).append(fill)
            self._fills_seen = len(fills)

    def _add_trades(self, new: Iterable[Trade], first: int) -> None:
        done = OrderStatus.DoneStates
        for place, trade in enumerate(new, first):
            self._order[id(trade)] = place
            self._file(trade)
            if trade.orderStatus.status not in done:
                self._working.append(trade)

    def _file(self, trade: Trade) -> None:
        filed = self._by_ref.setdefault(trade.order.orderRef, [])
        if not any(t is trade for t in filed):
            filed.append(trade)

    def _reported(self, trade: Trade) -> None:
        """IB's openOrder for a trade: filed under the orderRef it reports now (a new trade is
        filed by the next lookup anyway; this catches a known trade's orderRef changing)."""
        if self._trades_dict is self.ib.wrapper.trades:
            self._file(trade)
