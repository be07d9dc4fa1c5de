"""The IB session forgets finished orders once recorded and old enough, never a working one
(worker/ib/pruning.py), on a real ib_async connection to ibsim. Functional only: the memory
figures are bench/soak.py's."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

from ib_async import LimitOrder, MarketOrder, Stock
from support import wait_until

from worker.ib import IBConnection

MARGIN = 600.0


def _committed(fact: Any) -> Future[None]:
    """A recorder that has committed every fact at once."""
    done: Future[None] = Future()
    done.set_result(None)
    return done


def _refs(conn: IBConnection) -> tuple[set[str], set[str]]:
    async def read() -> tuple[set[str], set[str]]:
        trades = {t.order.orderRef for t in conn.ib.trades()}
        return trades, {f.execution.orderRef for f in conn.ib.fills()}

    return conn.call(read(), timeout=10)


def test_done_trades_are_forgotten_with_their_fills_working_ones_kept(sim) -> None:
    sim.set_price("AAPL", 190.0)
    conn = IBConnection("127.0.0.1", sim.port, 41, None, _committed, prune_after=MARGIN)
    conn.start()
    try:
        assert conn.wait_ready(10)

        async def place() -> None:
            [contract] = await conn.ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            conn.ib.placeOrder(contract, MarketOrder("BUY", 3, orderRef="tv2ib:A:entry"))  # fills
            conn.ib.placeOrder(contract, LimitOrder("SELL", 3, 250.0, orderRef="tv2ib:A:tp"))  # works
            conn.ib.placeOrder(contract, LimitOrder("BUY", 1, 150.0, orderRef="tv2ib:B:entry"))  # works

        conn.call(place(), timeout=10)
        wait_until(lambda: _refs(conn)[1] == {"tv2ib:A:entry"} and len(conn.pruner._recorded) == 1, 10,
                   "the entry did not fill")  # fmt: skip

        def prune(at: float) -> set[int]:
            async def run() -> set[int]:
                return conn.pruner.prune(conn.connected_at, now=at)

            return conn.call(run(), timeout=10)

        # within the margin nothing is forgotten
        assert prune(time.time() + MARGIN / 2) == set()
        assert _refs(conn)[0] == {"tv2ib:A:entry", "tv2ib:A:tp", "tv2ib:B:entry"}
        # past it, the filled entry and its fill go; the working orders stay, however old
        assert len(prune(time.time() + MARGIN * 2)) == 1
        assert _refs(conn) == ({"tv2ib:A:tp", "tv2ib:B:entry"}, set())
        assert prune(time.time() + MARGIN * 100) == set()
        assert conn.pruner.forgotten == 1
    finally:
        conn.stop()


def test_a_done_trade_whose_final_state_was_not_recorded_is_kept(sim) -> None:
    sim.set_price("AAPL", 190.0)
    failed: Future[None] = Future()
    failed.set_exception(RuntimeError("database down"))
    conn = IBConnection("127.0.0.1", sim.port, 42, None, lambda fact: failed, prune_after=MARGIN)
    conn.start()
    try:
        assert conn.wait_ready(10)

        async def place() -> None:
            [contract] = await conn.ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            conn.ib.placeOrder(contract, MarketOrder("BUY", 2, orderRef="tv2ib:C:entry"))

        conn.call(place(), timeout=10)
        wait_until(lambda: _refs(conn)[1] == {"tv2ib:C:entry"}, 10, "the entry did not fill")

        async def run() -> set[int]:
            return conn.pruner.prune(conn.connected_at, now=time.time() + MARGIN * 2)

        assert conn.call(run(), timeout=10) == set()
        assert _refs(conn) == ({"tv2ib:C:entry"}, {"tv2ib:C:entry"})
    finally:
        conn.stop()
