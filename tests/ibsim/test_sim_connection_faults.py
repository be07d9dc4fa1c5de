"""IB's everyday connection failures (ibsim/server/connection_faults.py), seen by the real ib_async
client: the codes in the order IB sends them, the refusals and the silences."""

from __future__ import annotations

import ib_async
import pytest
from ibsim_helpers import wait_for
from support import wait_until

from ibsim.testing import SimThread

pytestmark = pytest.mark.e2e


def connect(sim: SimThread, client_id: int, timeout: float = 5, **kw) -> ib_async.IB:
    ib = ib_async.IB()
    ib.connect("127.0.0.1", sim.port, clientId=client_id, timeout=timeout, **kw)
    return ib


def heard(ib: ib_async.IB) -> list[int]:
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, *rest: codes.append(code)
    return codes


def test_hold_session_answers_326_to_the_same_id_until_freed(fresh: SimThread, client_id: int) -> None:
    ib = connect(fresh, client_id)
    assert fresh.fault("hold_session", clientId=client_id, seconds=1.5)["dropped"] == 1
    wait_for(ib, lambda: not ib.isConnected())
    again = ib_async.IB()
    codes = heard(again)
    with pytest.raises((ConnectionError, TimeoutError)):
        again.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=1)
    assert 326 in codes and fresh.state()["faults"]["heldSessions"] in ([client_id], [])
    other = connect(fresh, client_id + 1000)  # another id is not held
    other.disconnect()
    back = wait_until(lambda: _try_connect(fresh, client_id), 15, "the held id was never freed")
    assert back.isConnected() and fresh.state()["stats"]["client_id_in_use"] >= 1
    back.disconnect()


def _try_connect(sim: SimThread, client_id: int) -> ib_async.IB | None:
    try:
        return connect(sim, client_id, timeout=1)
    except (ConnectionError, TimeoutError, OSError):
        return None


@pytest.mark.parametrize("what", ["positions", "openOrders"])
def test_stall_sync_leaves_the_connect_without_its_answer(
    fresh: SimThread, client_id: int, what: str
) -> None:
    fresh.fault("stall_sync", what=what, seconds=30, drop=False)
    ib = ib_async.IB()
    with pytest.raises(ConnectionError, match="timed out"):
        ib.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=1, raiseSyncErrors=True)
    ib.disconnect()
    fresh.fault("clear")
    connect(fresh, client_id).disconnect()


def test_farm_is_data_only_and_silences_ticks_until_ok(fresh: SimThread, client_id: int) -> None:
    fresh.set_price("AAPL", 190.0)
    ib = connect(fresh, client_id)
    codes = heard(ib)
    (contract,) = ib.qualifyContracts(ib_async.Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktData(contract)
    wait_for(ib, lambda: ticker.last == 190.0)
    fresh.fault("farm", farm="market", seconds=1.5)
    wait_for(ib, lambda: 2103 in codes)
    fresh.set_price("AAPL", 191.0)
    ib.sleep(0.3)
    assert ticker.last == 190.0 and ib.isConnected()  # no ticks while broken; the socket stays
    wait_for(ib, lambda: 2104 in codes, timeout=10)
    fresh.set_price("AAPL", 192.0)
    wait_for(ib, lambda: ticker.last == 192.0)
    ib.disconnect()


def test_competing_session_ends_streams_with_10197_then_restores(fresh: SimThread, client_id: int) -> None:
    fresh.set_price("AAPL", 190.0)
    ib = connect(fresh, client_id)
    codes = heard(ib)
    (contract,) = ib.qualifyContracts(ib_async.Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktData(contract)
    wait_for(ib, lambda: ticker.last == 190.0)
    fresh.fault("competing_session", seconds=0.5)
    wait_for(ib, lambda: 1101 in codes, timeout=10)
    assert codes.index(1100) < codes.index(10197) < codes.index(1101) and ib.isConnected()
    ib.disconnect()


def test_reset_window_drops_refuses_then_1100_then_1102(fresh: SimThread, client_id: int) -> None:
    ib = connect(fresh, client_id)
    fresh.fault("reset_window", refuseSeconds=1, outageSeconds=1, code=1102)
    wait_for(ib, lambda: not ib.isConnected())
    again = wait_until(lambda: _try_connect(fresh, client_id), 15, "never accepted again")
    codes = heard(again)
    wait_for(again, lambda: 1102 in codes, timeout=10)
    assert again.isConnected() and not fresh.state()["faults"]["outage"]
    again.disconnect()
