"""The trade index (worker/ib/trade_index.py) finds exactly what a scan of ib_async's trades and
fills finds, through every way they change: orders added, statuses moving (done is for good), an
orderRef IB reports changed, executions added, the pruner forgetting done trades, the pacing re-send forgetting
an order IB refused (``dropped``), a disconnect
replacing the dicts. A seeded random walk compares the two after every step."""

from __future__ import annotations

import random

import pytest
from ib_async import IB, CommissionReport, Execution, Fill, Order, OrderStatus, Stock, Trade

from worker.ib.trade_index import TradeIndex

REFS = [f"tv2ib:A{i}:{leg}" for i in range(4) for leg in ("entry", "tp", "sl")] + ["", "manual"]
WORKING = ["PendingSubmit", "PreSubmitted", "Submitted"]
DONE = ["Filled", "Cancelled", "ApiCancelled"]


class Session:
    """ib_async's side, changed the ways ib_async and the pruner change it."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.ib, self.forgotten, self.next_id, self.exec_no = rng, IB(), 0, 1, 0
        self.index: TradeIndex | None = None

    def add_order(self) -> None:
        order = Order(
            orderId=self.next_id, clientId=7, action="BUY", totalQuantity=1, orderRef=self.rng.choice(REFS)
        )
        status = self.rng.choice(WORKING + DONE[:1])
        self.ib.wrapper.trades[(7, self.next_id)] = Trade(
            Stock("AAPL", "SMART", "USD"), order, OrderStatus(status=status)
        )
        self.next_id += 1

    def move_status(self) -> None:
        working = [
            t for t in self.ib.wrapper.trades.values() if t.orderStatus.status not in OrderStatus.DoneStates
        ]
        if working:
            self.rng.choice(working).orderStatus.status = self.rng.choice(WORKING + DONE)

    def rename(self) -> None:  # IB's openOrder reports another orderRef for a known order
        trades = list(self.ib.wrapper.trades.values())
        if trades:
            trade = self.rng.choice(trades)
            trade.order.orderRef = self.rng.choice(REFS)
            self.ib.openOrderEvent.emit(trade)

    def add_fill(self) -> None:
        self.exec_no += 1
        execution = Execution(execId=f"e{self.exec_no}", orderRef=self.rng.choice(REFS))
        self.ib.wrapper.fills[execution.execId] = Fill(Stock("AAPL"), execution, CommissionReport(), None)

    def prune(self) -> None:
        done = [
            k for k, t in self.ib.wrapper.trades.items() if t.orderStatus.status in OrderStatus.DoneStates
        ]
        gone = self.rng.sample(done, k=min(len(done), self.rng.randint(1, 3))) if done else []
        for key in gone:
            del self.ib.wrapper.trades[key]
        fills = list(self.ib.wrapper.fills)
        for exec_id in self.rng.sample(fills, k=min(len(fills), 1)):
            del self.ib.wrapper.fills[exec_id]
        self.forgotten += len(gone) or 1

    def refuse(self) -> None:  # worker/ib/paced.py forgets an order IB refused for pacing
        trades = self.ib.wrapper.trades
        if trades:
            del trades[self.rng.choice(list(trades))]
            assert self.index is not None
            self.index.dropped()

    def reset(self) -> None:  # a disconnect: Wrapper.reset
        self.ib.wrapper.trades, self.ib.wrapper.fills = {}, {}


def same(found: list, expected: list) -> bool:
    return len(found) == len(expected) and all(a is b for a, b in zip(found, expected, strict=True))


@pytest.mark.parametrize("seed", range(12))
def test_the_index_finds_what_a_scan_finds_after_every_change(seed: int) -> None:
    rng = random.Random(seed)
    session = Session(rng)
    index = session.index = TradeIndex(session.ib, lambda: session.forgotten)
    steps = (
        [session.add_order] * 6
        + [session.move_status] * 4
        + [session.add_fill] * 3
        + [session.rename, session.prune, session.rename, session.refuse]
    )
    for step_no in range(400):
        (session.reset if step_no % 150 == 149 else rng.choice(steps))()
        if rng.random() < 0.5:  # lookups between some changes only: the index catches up on several
            continue
        trades, fills = list(session.ib.wrapper.trades.values()), list(session.ib.wrapper.fills.values())
        for ref in REFS:
            assert same(index.trades(ref), [t for t in trades if t.order.orderRef == ref]), (
                seed,
                step_no,
                ref,
            )
            assert same(index.fills(ref), [f for f in fills if f.execution.orderRef == ref]), (
                seed,
                step_no,
                ref,
            )
        assert same(index.working(), session.ib.openTrades()), (seed, step_no)
        scanned = {t.order.orderRef for t in trades} | {f.execution.orderRef for f in fills}
        assert index.refs() == scanned, (seed, step_no)
