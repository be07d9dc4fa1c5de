"""The latency profile (--latency ib, POST /latency): answers held back as a live IB account holds
them, checked with the real ib_async client against ibsim's own record of when each answer was
asked for and written (GET /latency). Only lower bounds and orderings: a busy machine makes an
answer later, never earlier."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock, util
from ibsim_helpers import start_cli, stop_cli, wait_for

from ibsim.testing import SimThread

pytestmark = pytest.mark.e2e


@pytest.fixture
def http(fresh: SimThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{fresh.control_port}", timeout=5) as client:
        yield client


def held(sim: SimThread, kind: str, ref: int | None = None) -> list[dict[str, Any]]:
    """ibsim's rows for the answers of ``kind`` (for order or request id ``ref``) it held back."""
    return [row for row in sim.latency()["held"] if row["kind"] == kind and ref in (None, row["id"])]


def written(sim: SimThread, kind: str, ref: int | None = None) -> dict[str, Any]:
    """The one row of an answer ibsim has written (waits until it is)."""
    rows: list[dict[str, Any]] = []

    def done() -> bool:
        rows[:] = held(sim, kind, ref)
        return len(rows) == 1 and rows[0]["heldMs"] is not None

    wait_for_sim(done)
    return rows[0]


def wait_for_sim(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "ibsim did not write the answer in time"
        time.sleep(0.02)


def test_what_if_and_ack_leave_no_sooner_than_the_profile_says(
    fresh: SimThread, ib: IB, http: httpx.Client
) -> None:
    figures = http.post("/latency", json={"profile": "ib"}).json()
    assert figures["ok"] and figures["profile"] == "ib"
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    order = LimitOrder("BUY", 10, 180.0)
    state = ib.whatIfOrder(contract, order)
    assert float(state.initMarginChange) == 450.0  # 10 x 180 x 25 %: the answer itself is unchanged
    trade = ib.placeOrder(contract, LimitOrder("BUY", 10, 180.0))
    wait_for(ib, lambda: trade.orderStatus.status == "Submitted")

    what_if = written(fresh, "whatIf")  # ib_async sends a copy of the order: its id is not order's
    assert what_if["delayMs"] == figures["whatIfMs"] == 350.0
    assert what_if["heldMs"] >= what_if["delayMs"]
    ack = written(fresh, "ack", trade.order.orderId)
    assert ack["delayMs"] == figures["ackMs"] == 60.0
    assert ack["heldMs"] >= ack["delayMs"]
    lookup = held(fresh, "contractDetails")
    assert lookup and all(row["heldMs"] >= figures["contractDetailsMs"] == 150.0 for row in lookup)


def test_a_fill_follows_its_ack_by_the_fill_figure(fresh: SimThread, ib: IB, http: httpx.Client) -> None:
    figures = http.post("/latency", json={"profile": "ib", "ackMs": 80, "fillMs": 120}).json()
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    trade = ib.placeOrder(contract, MarketOrder("BUY", 5))
    wait_for(ib, lambda: trade.orderStatus.status == "Filled" and len(trade.fills) == 1)
    statuses = [entry.status for entry in trade.log]
    assert statuses.index("Submitted") < statuses.index("Filled")
    ack, fill = written(fresh, "ack", trade.order.orderId), written(fresh, "fill", trade.order.orderId)
    assert fill["delayMs"] == figures["ackMs"] + figures["fillMs"] == 200.0
    assert fill["heldMs"] >= fill["delayMs"] and ack["heldMs"] >= 80.0
    assert fresh.state()["positions"][0]["position"] == 5  # ibsim's own state changed at once


def test_a_slow_answer_blocks_no_other(fresh: SimThread, ib: IB, client_id: int) -> None:
    """A what-if IB takes a minute over holds back neither this client's order ack nor another
    client's answers: each family has its own lane."""
    fresh.set_latency("ib", whatIfMs=60_000)
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    future = asyncio.ensure_future(
        ib.whatIfOrderAsync(contract, LimitOrder("BUY", 1, 180.0)), loop=util.getLoop()
    )
    wait_for(ib, lambda: len(held(fresh, "whatIf")) == 1)  # the what-if is at ibsim, held back
    trade = ib.placeOrder(contract, LimitOrder("BUY", 1, 181.0))
    other = IB()
    other.connect("127.0.0.1", fresh.port, clientId=client_id + 5000, timeout=5)
    try:
        (msft,) = other.qualifyContracts(Stock("MSFT", "SMART", "USD"))
        assert msft.conId == 272093
        wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
        assert not future.done()
        (what_if,) = held(fresh, "whatIf")
        assert what_if["heldMs"] is None  # still held back, a minute to go
    finally:
        future.cancel()
        other.disconnect()


def test_first_market_data_is_held_and_no_stale_round_follows_a_newer_price(fresh: SimThread, ib: IB) -> None:
    fresh.set_latency("ib")
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    (ticker,) = ib.reqTickers(contract)
    assert ticker.last == 190.0
    snapshot = held(fresh, "snapshot")
    assert len(snapshot) == 1 and snapshot[0]["heldMs"] >= snapshot[0]["delayMs"] == 300.0
    stream = ib.reqMktData(contract)
    fresh.set_price("AAPL", 191.25)  # most likely before the first round is out: it must not overtake it
    wait_for(ib, lambda: stream.last == 191.25)
    ib.sleep(0.5)  # the first round (190.0) is long out by now
    assert stream.last == 191.25


def test_the_account_stream_pushes_on_its_clocks(fresh: SimThread, ib: IB) -> None:
    """Without a fill, a price move reaches the account values and P&L at the next push."""
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    trade = ib.placeOrder(contract, MarketOrder("BUY", 100))
    wait_for(ib, lambda: trade.orderStatus.status == "Filled")
    pnl = ib.reqPnL("DU1234567")
    wait_for(ib, lambda: pnl.unrealizedPnL == 0.0)
    fresh.set_latency("ib", accountIntervalMs=100, pnlIntervalMs=50)
    fresh.set_price("AAPL", 191.0)  # no fill: without a profile nothing would be pushed

    def unrealized() -> float:
        values = {(v.tag, v.currency): v.value for v in ib.accountValues()}
        return float(values[("UnrealizedPnL", "USD")])

    wait_for(ib, lambda: pnl.unrealizedPnL == 100.0 and unrealized() == 100.0)
    assert any(p.unrealizedPNL == 100.0 for p in ib.portfolio())


def test_the_control_endpoint_sets_and_clears_the_profile(
    fresh: SimThread, http: httpx.Client, ib: IB
) -> None:
    assert http.get("/latency").json() == {"profile": "none", **dict.fromkeys(_FIGURES, 0.0), "held": []}
    assert http.post("/latency", json={"profile": "ib", "whatIfMs": 800}).json()["whatIfMs"] == 800.0
    assert http.get("/latency").json()["profile"] == "ib"
    for body, word in (
        ({"profile": "fast"}, "unknown latency profile"),
        ({"profile": "ib", "bogusMs": 1}, "unknown latency figure"),
        ({"profile": "ib", "ackMs": -5}, "ackMs must be"),
    ):
        answer = http.post("/latency", json=body)
        assert answer.status_code == 422 and word in answer.json()["message"]
    assert http.get("/latency").json()["whatIfMs"] == 800.0  # a refused change changes nothing

    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    assert [row["kind"] for row in http.get("/latency").json()["held"]] == ["contractDetails"]
    cleared = http.post("/latency", json={"profile": "none"}).json()
    assert cleared["profile"] == "none" and all(cleared[key] == 0.0 for key in _FIGURES)
    assert http.get("/latency").json()["held"] == []  # a new profile, a new log
    ib.whatIfOrder(contract, MarketOrder("BUY", 1))
    assert http.get("/latency").json()["held"] == []  # nothing held back any more

    http.post("/latency", json={"profile": "ib"})
    assert http.post("/reset").json()["ok"]
    assert http.get("/latency").json()["profile"] == "none"  # reset: the starting profile


def test_the_command_line_flag_sets_the_profile() -> None:
    proc, _port, control = start_cli("--latency", "ib")
    try:
        doc = httpx.get(f"http://127.0.0.1:{control}/latency").json()
        assert doc["profile"] == "ib" and doc["whatIfMs"] == 350.0 and doc["accountIntervalMs"] == 180_000.0
        httpx.post(f"http://127.0.0.1:{control}/reset")
        assert httpx.get(f"http://127.0.0.1:{control}/latency").json()["profile"] == "ib"
    finally:
        stop_cli(proc)


_FIGURES = (
    "ackMs", "fillMs", "whatIfMs", "contractDetailsMs", "snapshotMs", "snapshotEndMs", "positionsMs",
    "accountIntervalMs", "pnlIntervalMs",
)  # fmt: skip
