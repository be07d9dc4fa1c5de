"""Kept market-data subscriptions (MARKET_DATA_LINES): the worker's IB layer against ibsim over TCP.

What a user checks: a warm contract's quote costs no request to IB (ibsim counts every reqMktData
and lists the open streams in ``GET /state``), the number of open streams stays within the
setting, a stream is opened again after a reconnect or an outage, a stream too old is not read,
and a quote never waits for IB's snapshot end. The pure rule of what may be read is a table.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from support import wait_until
from worker_helpers import IBHandle, WorkerThread, alert_ends

from core.services import get_alert
from worker.contracts.tickers import resolve_ticker
from worker.decision.quote import Quote
from worker.ib.quote_streams import StreamView, unusable

AAPL, MSFT, TSLA = 265598, 272093, 76792991


class Clock:
    """The stream book's clock, moved by hand (how old a stream's last update is)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def connect(sim) -> Iterator:
    """``connect(lines, max_age)``: the worker's connection keeping up to ``lines`` streams (0:
    snapshots), its book on a :class:`Clock` (``handle.clock``)."""
    handles: list[IBHandle] = []

    def make(lines: int = 20, max_age: float = 300.0) -> IBHandle:
        handle = IBHandle(sim.port, client_id=41 + len(handles), market_data_lines=lines,
                          market_data_max_age=max_age)  # fmt: skip
        handle.clock = Clock()
        if handle.trading.market_data.streams is not None:
            handle.trading.market_data.streams.clock = handle.clock
        handles.append(handle.started())
        return handle

    yield make
    for handle in handles:
        handle.conn.stop()


def quote(handle: IBHandle, ticker: str = "AAPL", timeout: float = 3.0) -> Quote:
    async def run() -> Quote:
        _contract, inst = await handle.instrument(resolve_ticker(ticker))
        return await handle.trading.market_price(inst.con_id, timeout)

    return handle.call(run())


def heard_all(handle: IBHandle) -> None:
    """Wait until the connection has read everything ibsim sent before now (the rest of a first
    round of ticks): ibsim answers a reqCurrentTime after it."""

    async def ask() -> None:
        await handle.conn.ib.reqCurrentTimeAsync()

    handle.call(ask())


def asked(sim) -> dict[str, int]:
    """ibsim's count of market-data requests and cancels, from every client."""
    stats = sim.state()["stats"]
    return {kind: stats[f"mkt_data_{kind}"] for kind in ("streams", "snapshots", "cancels")}


def lines(sim, handle: IBHandle) -> list[int]:
    """The conIds of the streams ibsim has open for the handle's connection."""
    return sorted(
        row["conId"] for row in sim.state()["marketDataLines"] if row["clientId"] == handle.conn.client_id
    )


def test_a_warm_contract_is_read_from_its_stream_without_asking_ib(sim, connect):
    handle = connect()
    first = quote(handle)
    assert (first.price, first.origin, first.source, first.data_type) == (Decimal("190.0"), "snapshot", "IB last price", "live")  # fmt: skip
    after_first = asked(sim)
    assert (after_first["streams"], after_first["snapshots"]) == (1, 0)
    warm = quote(handle)
    assert (warm.price, warm.origin, warm.source) == (Decimal("190.0"), "stream", "IB last price")
    assert warm.age is not None and warm.age >= 0
    assert warm.to_json()["origin"] == "stream" and "age_seconds" in warm.to_json()
    assert asked(sim) == after_first  # no request to IB for the second quote
    assert lines(sim, handle) == [AAPL]
    # the stream follows the market
    sim.set_price("AAPL", 191.25)
    wait_until(lambda: quote(handle).price == Decimal("191.25"))
    assert asked(sim) == after_first


def test_without_lines_every_quote_is_a_snapshot(sim, connect):
    handle = connect(lines=0)
    assert [quote(handle).origin for _ in range(2)] == ["snapshot", "snapshot"]
    assert asked(sim) == {"streams": 0, "snapshots": 2, "cancels": 0}
    assert lines(sim, handle) == []


def test_the_least_recently_used_stream_is_cancelled_beyond_the_lines(sim, connect):
    handle = connect(lines=2)
    quote(handle, "AAPL")
    quote(handle, "MSFT")
    assert quote(handle, "AAPL").origin == "stream"  # AAPL is now the most recently used
    assert quote(handle, "TSLA").origin == "snapshot"
    assert lines(sim, handle) == [AAPL, TSLA]
    assert asked(sim) == {"streams": 3, "snapshots": 0, "cancels": 1}
    assert quote(handle, "MSFT").origin == "snapshot"  # asked afresh; AAPL goes now
    assert lines(sim, handle) == [MSFT, TSLA]


def test_a_stream_older_than_its_limit_is_asked_afresh(sim, connect):
    handle = connect(max_age=60)
    quote(handle)
    heard_all(handle)
    handle.clock.now += 60  # at the limit: still read
    at_limit = quote(handle)
    assert (at_limit.origin, at_limit.age) == ("stream", 60.0)
    handle.clock.now += 0.5
    before = asked(sim)
    renewed = quote(handle)
    assert (renewed.origin, renewed.age, renewed.price) == ("snapshot", 0.0, Decimal("190.0"))
    assert asked(sim) == {**before, "streams": before["streams"] + 1, "cancels": before["cancels"] + 1}
    assert lines(sim, handle) == [AAPL]  # the old subscription was cancelled, not left open
    assert quote(handle).origin == "stream"


def test_streams_are_subscribed_again_after_a_reconnect(sim, connect):
    handle = connect()
    quote(handle, "AAPL")
    quote(handle, "MSFT")
    before = asked(sim)
    sim.fault("drop")
    wait_until(lambda: not handle.conn.ready)
    wait_until(lambda: handle.conn.ready and lines(sim, handle) == [AAPL, MSFT], timeout=15)
    assert asked(sim)["streams"] == before["streams"] + 2
    again = asked(sim)
    assert [quote(handle, t).origin for t in ("AAPL", "MSFT")] == ["stream", "stream"]
    assert asked(sim) == again


@pytest.mark.parametrize("code", [1101, 1102])
def test_streams_are_subscribed_again_after_an_outage(sim, connect, code):
    handle = connect()
    quote(handle)
    streams = handle.trading.market_data.streams
    before = asked(sim)
    sim.fault("connectivity", code=code, seconds=1)
    wait_until(lambda: not handle.conn.ready)
    # during the outage (IB's 1100) the stream is not read, even by the book itself
    assert handle.on_loop(streams.read, AAPL, 1) is None
    wait_until(lambda: asked(sim)["streams"] == before["streams"] + 1 and lines(sim, handle) == [AAPL])
    wait_until(lambda: handle.conn.ready)
    # 1101: IB dropped the subscription itself; 1102: the worker cancelled the old one
    assert asked(sim)["cancels"] == before["cancels"] + (code == 1102)
    assert quote(handle).origin == "stream"


def test_a_broken_market_data_farm_stops_reading_until_it_is_back(sim, connect):
    handle = connect()
    quote(handle)
    streams = handle.trading.market_data.streams
    sim.notice(2103, "Market data farm connection is broken:usfarm")
    wait_until(lambda: handle.on_loop(streams.read, AAPL, 1) is None)
    before = asked(sim)
    sim.notice(2104, "Market data farm connection is OK:usfarm")
    wait_until(lambda: asked(sim)["streams"] == before["streams"] + 1 and lines(sim, handle) == [AAPL])
    wait_until(lambda: handle.on_loop(streams.read, AAPL, 1) is not None)
    assert quote(handle).origin == "stream"


@pytest.mark.parametrize("lines_kept", [0, 20])
def test_a_quote_does_not_wait_for_an_11_second_snapshot_end(sim, connect, lines_kept):
    # IB sends tickSnapshotEnd 11 s after the request when a tick type never came; the first
    # prices come at once (here after the IB-like profile's 300 ms)
    handle = connect(lines=lines_kept)
    sim.set_latency("ib", snapshotEndMs=11000)
    got = quote(handle, timeout=3.0)
    assert got.price == Decimal("190.0") and got.why == ""


def test_delayed_data_is_kept_in_a_stream_and_says_why(sim, connect):
    sim.set_market_data("delayed", live_error=10089)
    sim.set_price("AAPL", 187.5)
    handle = connect()
    first = quote(handle)
    assert (first.price, first.data_type, first.origin) == (Decimal("187.5"), "delayed", "snapshot")
    warm = quote(handle)
    assert (warm.price, warm.data_type, warm.requested, warm.origin) == (Decimal("187.5"), "delayed", "live", "stream")  # fmt: skip
    assert warm.source == "IB last price (delayed)" and warm.why == first.why
    assert warm.why.startswith("IB error 10089") and warm.why.endswith("delayed data used")
    assert lines(sim, handle) == [AAPL]  # the refused live request left no line behind


def test_a_stream_ib_ends_is_not_read(sim, connect):
    handle = connect()
    quote(handle)
    stream = handle.trading.market_data.streams.streams[AAPL]
    sim.set_market_data("none")  # IB ends the live stream (354)
    wait_until(lambda: not handle.on_loop(lambda: stream.request.alive))
    sim.set_price("AAPL", 150.0)
    got = quote(handle)
    assert got.price is None and got.source.startswith("no market data: IB error 354")
    assert "delayed data: IB error 10168" in got.why
    assert lines(sim, handle) == []


@pytest.mark.parametrize("lines_kept", ["0", "20"])
def test_entries_checked_against_ibs_quote_under_an_11_second_snapshot_end(
    sim, worker_env, tmp_path, lines_kept
):
    # the risk file's price-deviation rule asks IB for a quote on every entry that has a price
    risk = tmp_path / "risk.yaml"
    risk.write_text("defaults:\n  max_price_deviation_percent: 2\n")
    sim.set_latency("ib", snapshotEndMs=11000)
    handle = WorkerThread({**worker_env, "RISK_FILE": str(risk), "MARKET_DATA_LINES": lines_kept}).start()
    try:
        before = asked(sim)
        for action in ("buy", "add"):  # an entry, then a second one on the same contract
            alert = {"ticker": "AAPL", "action": action, "quantity": 1, "price": 190}
            alert_id = alert_ends(handle.ctx, alert, "filled")
            checks = get_alert(handle.ctx.sessions, alert_id)["plan"]["risk"]["checks"]
            deviation = [c for c in checks if c["rule"] == "max_price_deviation_percent"]
            assert [c["passed"] for c in deviation] == [True]
        after = asked(sim)
        made = {kind: after[kind] - before[kind] for kind in after}
        # kept streams: one subscription for both entries; without: a snapshot per entry
        assert made == ({"streams": 1, "snapshots": 0, "cancels": 0} if lines_kept == "20"
                        else {"streams": 0, "snapshots": 2, "cancels": 0})  # fmt: skip
    finally:
        handle.stop()


def _view(**changes) -> StreamView:
    fields = {
        "alive": True,
        "ended_why": "",
        "interrupted": "",
        "requested": 1,
        "priced": True,
        "last_update": 100.0,
    }
    return StreamView(**{**fields, **changes})


@pytest.mark.parametrize(
    ("view", "now", "why"),
    [
        (_view(), 100.0, ""),
        (_view(), 400.0, ""),  # exactly the limit (300 s): still read
        (_view(), 400.5, "last update 300s ago (limit 300s)"),
        (_view(alive=False), 100.0, "not open at IB"),
        (_view(alive=False, ended_why="IB error 354 Requested market data is not subscribed."), 100.0,
         "ended (IB error 354 Requested market data is not subscribed.)"),
        (_view(interrupted="IB 1100 Connectivity ... lost."), 100.0, "interrupted (IB 1100 Connectivity ... lost.)"),
        (_view(requested=3), 100.0, "opened under market data type 3, 1 is asked"),
        (_view(priced=False), 100.0, "no price yet"),
        (_view(last_update=None), 100.0, "no price yet"),
    ],
)  # fmt: skip
def test_what_may_be_read_from_a_stream(view, now, why):
    assert unusable(view, now, 300.0, 1) == why


@pytest.mark.parametrize(
    "quote_",
    [
        Quote(Decimal("190.0"), "IB last price", "live", "live", "", "stream", 1.23456),
        Quote(Decimal("187.5"), "IB last price (delayed)", "delayed", "live", "IB error 10089 ...", "snapshot", 0.0),
        Quote(None, "no market data: IB error 354 ...", "", "live", "IB error 354 ..."),
    ],
)  # fmt: skip
def test_the_plan_records_where_a_quote_came_from(quote_):
    doc = quote_.to_json()
    assert doc.get("origin") == (quote_.origin or None)
    again = Quote.from_json(doc)
    assert again.origin == quote_.origin
    assert again.age == (None if quote_.age is None else round(quote_.age, 3))
    # a plan stored before issue 18 has neither: read as unknown
    assert (
        Quote.from_json({"type": "live", "requested": "live", "price": "1", "source": "IB last price"}).age
        is None
    )
