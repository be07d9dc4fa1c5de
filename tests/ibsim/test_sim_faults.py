"""Faults on command, exercised with the real ib_async client."""

from __future__ import annotations

import time

import ib_async
import ib_insync
import pytest
from ibsim_helpers import wait_for
from support import wait_until

from ibsim.testing import SimThread

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[ib_async, ib_insync], ids=["ib_async", "ib_insync"])
def lib(request: pytest.FixtureRequest):
    """Every fault is exercised with both real clients."""
    return request.param


def connect(sim: SimThread, client_id: int, timeout: float = 5, lib=ib_async):
    ib = lib.IB()
    ib.connect("127.0.0.1", sim.port, clientId=client_id, timeout=timeout)
    return ib


def test_drop_closes_every_connection(fresh: SimThread, client_id: int, lib) -> None:
    first, second = connect(fresh, client_id, lib=lib), connect(fresh, client_id + 1000, lib=lib)
    dropped: list[str] = []
    first.disconnectedEvent += lambda: dropped.append("first")
    assert fresh.fault("drop")["dropped"] == 2
    wait_for(first, lambda: not first.isConnected() and not second.isConnected())
    assert dropped == ["first"]
    again = connect(fresh, client_id, lib=lib)  # the same id is free again
    assert again.isConnected()
    for ib in (first, second, again):
        ib.disconnect()


def test_refuse_for_seconds(fresh: SimThread, client_id: int, lib) -> None:
    ib = connect(fresh, client_id, lib=lib)
    # 2 s: a loaded machine (parallel test workers) must still try to connect within the window
    refusing_until = time.monotonic() + 2.0
    fresh.fault("refuse", seconds=2.0)
    wait_for(ib, lambda: not ib.isConnected())
    refused = lib.IB()
    with pytest.raises((ConnectionRefusedError, ConnectionError, TimeoutError, OSError)):
        refused.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=0.5)
    refused.disconnect()
    time.sleep(max(0.0, refusing_until - time.monotonic()))

    def reconnected():  # the listener comes back a moment after the window (later when loaded)
        try:
            return connect(fresh, client_id, lib=lib)
        except OSError:  # ConnectionRefusedError: not listening yet
            time.sleep(0.1)
            return None

    back = wait_until(reconnected, 10, "ibsim did not accept connections again")
    assert back.isConnected()
    back.disconnect()


def test_clear_ends_a_refusal_before_its_time(fresh: SimThread, client_id: int) -> None:
    fresh.fault("refuse", seconds=120.0)
    refused = ib_async.IB()
    with pytest.raises((ConnectionRefusedError, ConnectionError, TimeoutError, OSError)):
        refused.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=0.5)
    refused.disconnect()
    fresh.fault("clear")

    def reconnected():
        try:
            return connect(fresh, client_id)
        except OSError:  # the listener is a moment away
            time.sleep(0.1)
            return None

    back = wait_until(reconnected, 10, "clear did not end the 120 s refusal")
    assert back.isConnected()
    back.disconnect()


@pytest.mark.parametrize("code", [1101, 1102])
def test_connectivity_notices_and_fills_held_during_outage(
    fresh: SimThread, client_id: int, code: int, lib
) -> None:
    ib = connect(fresh, client_id, lib=lib)
    codes: list[int] = []
    ib.errorEvent += lambda req_id, err, *a: codes.append(err)
    (contract,) = ib.qualifyContracts(lib.Stock("AAPL", "SMART", "USD"))
    fresh.fault("connectivity", code=code, seconds=0.3)
    wait_for(ib, lambda: 1100 in codes)
    trade = ib.placeOrder(contract, lib.MarketOrder("BUY", 1))
    wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
    assert not trade.fills  # no fills while IB is unreachable
    wait_for(ib, lambda: code in codes)
    wait_for(ib, lambda: trade.orderStatus.status == "Filled")
    ib.disconnect()


def test_delay_holds_acknowledgements(fresh: SimThread, client_id: int, lib) -> None:
    ib = connect(fresh, client_id, lib=lib)
    (contract,) = ib.qualifyContracts(lib.Stock("AAPL", "SMART", "USD"))
    fresh.fault("delay", ms=1500)
    trade = ib.placeOrder(contract, lib.LimitOrder("BUY", 1, 100.0))
    ib.sleep(0.2)
    assert trade.orderStatus.status == "PendingSubmit"  # the server has it, the client not yet
    assert fresh.state()["orders"][0]["status"] == "Submitted"
    wait_for(ib, lambda: trade.orderStatus.status == "Submitted", timeout=5)
    fresh.fault("delay", ms=0)
    ib.disconnect()


def test_pause_and_resume_fills(fresh: SimThread, client_id: int, lib) -> None:
    ib = connect(fresh, client_id, lib=lib)
    (contract,) = ib.qualifyContracts(lib.Stock("AAPL", "SMART", "USD"))
    fresh.fault("pause_fills")
    trade = ib.placeOrder(contract, lib.MarketOrder("BUY", 2))
    wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
    ib.sleep(0.1)
    assert trade.orderStatus.filled == 0
    fresh.fault("resume_fills")
    wait_for(ib, lambda: trade.orderStatus.status == "Filled")
    ib.disconnect()


def test_reject_next_only_once(fresh: SimThread, client_id: int, lib) -> None:
    ib = connect(fresh, client_id, lib=lib)
    (contract,) = ib.qualifyContracts(lib.Stock("AAPL", "SMART", "USD"))
    fresh.fault("reject_next", reason="Simulated rejection")
    first = ib.placeOrder(contract, lib.MarketOrder("BUY", 1))
    second = ib.placeOrder(contract, lib.MarketOrder("BUY", 1))
    wait_for(ib, lambda: first.orderStatus.status == "Cancelled" and second.orderStatus.status == "Filled")
    assert first.log[-1].errorCode == 201
    ib.disconnect()


def test_broken_what_if_sends_ibs_warning_and_infinite_figures(fresh: SimThread, client_id: int, lib) -> None:
    ib = connect(fresh, client_id, lib=lib)
    (contract,) = ib.qualifyContracts(lib.Stock("AAPL", "SMART", "USD"))
    answer = fresh.fault("broken_what_if", figures="infinite", warningText="Margin impact not available")
    assert answer["pending"] == 1
    state = ib.whatIfOrder(contract, lib.MarketOrder("BUY", 10))
    assert state.warningText == "Margin impact not available"
    assert state.initMarginChange == state.maintMarginChange == state.initMarginAfter == "Infinity"
    assert float(state.commission) > 0  # the commission stays
    healthy = ib.whatIfOrder(contract, lib.MarketOrder("BUY", 10))  # one only
    assert not healthy.warningText and float(healthy.initMarginChange) > 0
    ib.disconnect()


def test_broken_what_if_unset_figures_are_ibs_unset_double(fresh: SimThread, client_id: int) -> None:
    """ib_async takes an answer whose initMarginChange is unset for a preliminary one and keeps
    waiting: read the message itself."""
    ib = connect(fresh, client_id)
    (contract,) = ib.qualifyContracts(ib_async.Stock("AAPL", "SMART", "USD"))
    seen: list[tuple[str, str]] = []
    original = ib.wrapper.openOrder

    def open_order(order_id, contract, order, state):
        if order.whatIf:
            seen.append((state.initMarginChange, state.warningText))
        original(order_id, contract, order, state)

    ib.wrapper.openOrder = open_order
    fresh.fault("broken_what_if", figures="unset", warningText="Margin impact not available", count=1)
    ib.RequestTimeout = 1.0
    with pytest.raises(TimeoutError):  # ib_async: no answer
        ib.whatIfOrder(contract, ib_async.MarketOrder("BUY", 10))
    assert seen == [("1.7976931348623157E308", "Margin impact not available")]
    with pytest.raises(ValueError):
        fresh.fault("broken_what_if", figures="zero")
    ib.disconnect()


def test_drop_one_client(fresh: SimThread, client_id: int, lib) -> None:
    target, bystander = connect(fresh, client_id, lib=lib), connect(fresh, client_id + 1000, lib=lib)
    assert fresh.fault("drop", clientId=client_id)["dropped"] == 1
    wait_for(target, lambda: not target.isConnected())
    assert bystander.isConnected() and bystander.reqCurrentTime()
    for ib in (target, bystander):
        ib.disconnect()


def test_unknown_fault_is_refused(fresh: SimThread) -> None:
    with pytest.raises(ValueError):
        fresh.fault("meteor")


def test_pacing_refuses_the_next_order_messages_with_100_and_drops_them(
    fresh: SimThread, client_id: int, lib
) -> None:
    ib = connect(fresh, client_id, lib=lib)
    (contract,) = ib.qualifyContracts(lib.Stock("AAPL", "SMART", "USD"))
    resting = ib.placeOrder(contract, lib.LimitOrder("BUY", 1, 100.0))
    wait_for(ib, lambda: resting.orderStatus.status == "Submitted")
    assert fresh.fault("pacing", count=2, clientId=client_id)["count"] == 2
    refused = ib.placeOrder(contract, lib.LimitOrder("BUY", 1, 101.0))
    ib.cancelOrder(resting.order)  # the second order message: refused too, the order keeps working
    accepted = ib.placeOrder(contract, lib.LimitOrder("BUY", 2, 102.0))
    wait_for(ib, lambda: accepted.orderStatus.status == "Submitted" and refused.log[-1].errorCode == 100)
    assert "Max rate of messages per second has been exceeded" in refused.log[-1].message
    by_id = {o["orderId"]: o for o in fresh.state()["orders"] if o["clientId"] == client_id}
    assert refused.order.orderId not in by_id  # IB dropped the message: no order
    assert by_id[resting.order.orderId]["status"] == "Submitted"  # the cancel was dropped
    # the refused id was never used at IB, so the same id can be sent again once IB accepts
    again = ib.placeOrder(contract, lib.LimitOrder("BUY", 1, 101.0, orderId=accepted.order.orderId + 1))
    wait_for(ib, lambda: again.orderStatus.status == "Submitted")
    ib.disconnect()


def test_pacing_for_seconds_spares_other_clients(fresh: SimThread, client_id: int) -> None:
    ib, other = connect(fresh, client_id), connect(fresh, client_id + 1000)
    (contract,) = ib.qualifyContracts(ib_async.Stock("AAPL", "SMART", "USD"))
    fresh.fault("pacing", seconds=60, clientId=client_id)
    refused = ib.placeOrder(contract, ib_async.LimitOrder("BUY", 1, 100.0))
    spared = other.placeOrder(contract, ib_async.LimitOrder("BUY", 1, 100.0))
    wait_for(ib, lambda: refused.log[-1].errorCode == 100)
    wait_for(other, lambda: spared.orderStatus.status == "Submitted")
    fresh.fault("pacing", count=0, seconds=0)  # over
    accepted = ib.placeOrder(contract, ib_async.LimitOrder("BUY", 1, 100.0))
    wait_for(ib, lambda: accepted.orderStatus.status == "Submitted")
    with pytest.raises(ValueError):
        fresh.fault("pacing", count=-1)
    ib.disconnect()
    other.disconnect()
