"""Reference prices on an account without live data: the worker's IB layer against ibsim over TCP.

ibsim's ``set_market_data("delayed")`` is a login without a live API subscription: a live request
is refused (354 or 10089) and a delayed one answered with IB's delayed tick types.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from worker_helpers import IBHandle

from core.payload import AlertPayload
from worker.contracts.tickers import resolve_ticker
from worker.decision.intent import close_without_reference
from worker.decision.positions import Decision
from worker.ib.market_data import Quote, describe_errors, fallback_type


@pytest.fixture
def connect(sim) -> Iterator:
    """``connect(data_type)``: the worker's connection with IB_MARKET_DATA_TYPE = ``data_type``."""
    handles: list[IBHandle] = []

    def make(data_type: str = "live") -> IBHandle:
        handle = IBHandle(sim.port, client_id=31 + len(handles))
        handle.conn.market_data_type = data_type
        handle.trading.market_data.requested = data_type
        handles.append(handle.started())
        return handle

    yield make
    for handle in handles:
        handle.conn.stop()


def quote(handle: IBHandle, ticker: str = "AAPL") -> Quote:
    async def run() -> Quote:
        _contract, inst = await handle.instrument(resolve_ticker(ticker))
        return await handle.trading.market_price(inst.con_id)

    return handle.call(run())


def sim_type(sim, client_id: int, expected: int) -> int:
    """The market data type ibsim holds for the worker's connection, once it is ``expected`` (the
    worker's reqMarketDataType is a message without an answer: it may still be on its way)."""

    def read() -> int:
        return sim.sim.by_client[client_id].market_data_type

    deadline = time.monotonic() + 5
    while (value := sim.call(read)) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def test_live_account_gives_live_prices_and_the_type_is_set_on_connect(sim, connect):
    handle = connect("live")
    got = quote(handle)
    assert (got.price, got.data_type, got.requested, got.why) == (Decimal("190.0"), "live", "live", "")
    assert got.source == "IB last price"
    price, source = got  # still unpacks as the old (price, source) pair
    assert (price, source) == (Decimal("190.0"), "IB last price")
    assert sim_type(sim, handle.conn.client_id, 1) == 1


@pytest.mark.parametrize("code", [354, 10089])
def test_refused_live_data_falls_back_to_delayed(sim, connect, code):
    sim.set_market_data("delayed", live_error=code)
    sim.set_price("AAPL", 187.5)
    handle = connect("live")
    got = quote(handle)
    assert got.price == Decimal("187.5") and got.data_type == "delayed" and got.requested == "live"
    assert got.source == "IB last price (delayed)"
    assert got.why.startswith(f"IB error {code} Requested market data") and got.why.endswith(
        "delayed data used"
    )
    assert got.to_json()["type"] == "delayed" and got.to_json()["requested"] == "live"
    # the connection is back on the configured type: later requests are not silently delayed
    assert sim_type(sim, handle.conn.client_id, 1) == 1


def test_frozen_falls_back_to_delayed_frozen(sim, connect):
    sim.set_market_data("delayed")
    handle = connect("frozen")
    got = quote(handle)
    assert (got.data_type, got.requested) == ("delayed-frozen", "frozen") and got.price == Decimal("190.0")
    assert sim_type(sim, handle.conn.client_id, 2) == 2


def test_delayed_asked_gets_delayed_with_ibs_warning(sim, connect):
    sim.set_market_data("delayed")
    got = quote(connect("delayed"))
    assert got.data_type == "delayed" and got.price == Decimal("190.0")
    assert "IB error 10167" in got.why  # "Displaying delayed market data" (a warning, data follows)


def test_delayed_asked_on_a_live_account_gets_live(sim, connect):
    got = quote(connect("delayed"))  # IB sends live data whatever was asked when the account has it
    assert got.data_type == "live" and got.requested == "delayed"


def test_no_data_at_all_says_why(sim, connect):
    sim.set_market_data("none")
    got = quote(connect("live"))
    assert got.price is None and got.data_type == ""
    assert got.source.startswith("no market data: IB error 354 Requested market data is not subscribed")
    assert "delayed data: IB error 10168" in got.why


@pytest.mark.parametrize(("asked", "delayed"), [(1, 3), (2, 4), (3, None), (4, None)])
def test_fallback_type(asked, delayed):
    assert fallback_type(asked) == delayed


def test_describe_errors_keeps_the_first_text_per_code():
    errors = [(354, "Requested market data is not subscribed.\n"), (354, "again"), (10168, "not enabled")]
    assert describe_errors(errors) == (
        "IB error 354 Requested market data is not subscribed.; IB error 10168 not enabled"
    )


def test_a_refused_snapshot_never_returns_the_previous_price(sim, connect):
    # ib_async keeps one Ticker per contract: a later snapshot that IB refuses must not hand back
    # the earlier snapshot's price as if it were fresh
    handle = connect("live")
    assert quote(handle).price == Decimal("190.0")
    sim.set_market_data("none")
    sim.set_price("AAPL", 150.0)
    got = quote(handle)
    assert got.price is None and got.source.startswith("no market data: IB error 354")


@pytest.mark.parametrize(
    ("position", "target", "alert", "market", "expected_target", "unpriced", "says"),
    [
        # a reversal with a relative stop-loss and no IB price: close only
        (
            10,
            -10,
            {"action": "sell", "quantity": 20, "stopLoss": {"percent": 2}},
            None,
            0,
            True,
            "not reversed",
        ),
        # a reduce that re-prices the exits relatively: the exits keep their prices
        (
            10,
            5,
            {"action": "sell", "quantity": 5, "takeProfit": {"amount": 3}},
            None,
            5,
            True,
            "keep their prices",
        ),
        # an open from flat: left to the planner, which refuses it saying why
        (0, 10, {"action": "buy", "quantity": 10, "stopLoss": {"percent": 2}}, None, 10, False, ""),
        # absolute exits, or a price known: nothing to change
        (10, -10, {"action": "sell", "quantity": 20, "stopLoss": {"stopPrice": 200}}, None, -10, False, ""),
        (
            10,
            -10,
            {"action": "sell", "quantity": 20, "stopLoss": {"percent": 2}},
            Decimal(190),
            -10,
            False,
            "",
        ),
    ],
)
def test_close_without_reference(position, target, alert, market, expected_target, unpriced, says):
    payload = AlertPayload.from_json({"ticker": "AAPL", **alert})
    decision = Decision("reverse", Decimal(position), Decimal(target), "why")
    got, flag = close_without_reference(decision, payload, market, "no market data: IB error 354 ...")
    assert (got.target, flag) == (Decimal(expected_target), unpriced)
    assert says in got.reason
