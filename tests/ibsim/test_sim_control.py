"""The HTTP control API, the command line, --state persistence, pacing and several clients."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock
from ibsim_helpers import start_cli, stop_cli, wait_for

from ibsim.testing import SimThread, run_in_thread

pytestmark = pytest.mark.e2e


@pytest.fixture
def http(fresh: SimThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{fresh.control_port}", timeout=5) as client:
        yield client


def test_http_routes(fresh: SimThread, http: httpx.Client, client_id: int) -> None:
    assert http.get("/health").json()["ok"] is True
    answer = http.post("/price", json={"symbol": "AAPL", "secType": "STK", "price": 190.5})
    assert answer.status_code == 200 and answer.json()["conIds"] == [265598]
    assert http.post("/price", json={"conId": 12087792, "price": 1.0855}).json()["conIds"] == [12087792]
    assert (
        len(http.post("/price", json={"symbol": "ES", "secType": "FUT", "price": 5001.25}).json()["conIds"])
        == 4
    )

    ib = IB()
    ib.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=5)
    (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    trade = ib.placeOrder(contract, LimitOrder("BUY", 10, 185.0, orderRef="tv2ib:5:entry"))
    wait_for(ib, lambda: trade.orderStatus.status == "Submitted")

    limit = http.post(
        "/fill_limit", json={"quantity": 4, "clientId": client_id, "orderId": trade.order.orderId}
    )
    assert limit.json()["ok"]
    http.post("/price", json={"symbol": "AAPL", "secType": "STK", "price": 184.0})
    wait_for(ib, lambda: trade.orderStatus.filled == 4)
    filled = http.post("/fill", json={"clientId": client_id, "orderId": trade.order.orderId, "quantity": 2})
    assert filled.json()["order"]["filled"] == 6
    wait_for(ib, lambda: trade.orderStatus.filled == 6)

    state = http.get("/state").json()
    (order,) = state["orders"]
    assert {
        k: order[k]
        for k in (
            "orderId",
            "clientId",
            "orderRef",
            "symbol",
            "secType",
            "action",
            "quantity",
            "orderType",
            "lmtPrice",
            "auxPrice",
            "tif",
            "parentId",
            "ocaGroup",
            "status",
            "filled",
        )
    } == {
        "orderId": trade.order.orderId,
        "clientId": client_id,
        "orderRef": "tv2ib:5:entry",
        "symbol": "AAPL",
        "secType": "STK",
        "action": "BUY",
        "quantity": 10.0,
        "orderType": "LMT",
        "lmtPrice": 185.0,
        "auxPrice": None,
        "tif": "DAY",
        "parentId": 0,
        "ocaGroup": "",
        "status": "Submitted",
        "filled": 6.0,
    }
    assert order["permId"] > 0
    assert [e["shares"] for e in state["executions"]] == [4.0, 2.0]
    assert state["positions"][0]["position"] == 6.0
    assert state["accountValues"]["DU1234567"]["NetLiquidation"] > 0
    assert client_id in state["clients"]

    assert http.post("/fault", json={"kind": "pause_fills"}).json()["fillsPaused"] is True
    assert http.get("/state").json()["faults"]["fillsPaused"] is True
    assert http.post("/fault", json={"kind": "resume_fills"}).status_code == 200
    assert http.post("/fault", json={"kind": "delay", "ms": 5}).json()["delayMs"] == 5
    assert http.post("/fault", json={"kind": "clear"}).json()["cleared"]
    day = ib.placeOrder(contract, LimitOrder("BUY", 1, 150.0, tif="DAY"))
    gtc = ib.placeOrder(contract, LimitOrder("BUY", 1, 150.0, tif="GTC"))
    wait_for(ib, lambda: gtc.orderStatus.status == "Submitted")
    assert http.post("/end_of_day").json() == {"ok": True, "expired": 1, "expirations": []}
    wait_for(ib, lambda: day.orderStatus.status == "Cancelled")
    assert gtc.orderStatus.status == "Submitted"
    assert http.post("/reset").json() == {"ok": True}
    assert http.get("/state").json()["orders"] == []
    ib.disconnect()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/price", {"symbol": "NOPE", "price": 1}, 404),
        ("POST", "/price", {"symbol": "AAPL"}, 422),
        ("POST", "/price", {"symbol": "AAPL", "price": -1}, 422),
        ("POST", "/price", {"symbol": "AAPL", "price": "abc"}, 422),
        ("POST", "/fault", {"kind": "meteor"}, 422),
        ("POST", "/fault", {}, 422),
        ("POST", "/fault", {"kind": "connectivity", "code": 1100}, 422),
        ("POST", "/fill", {"orderId": 999}, 404),
        ("POST", "/fill_limit", {"quantity": 0, "symbol": "AAPL"}, 422),
        ("GET", "/nope", None, 404),
        ("PUT", "/state", None, 405),
    ],
)
def test_http_errors(http: httpx.Client, method: str, path: str, body: object, status: int) -> None:
    answer = http.request(method, path, json=body)
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "message"}


def test_http_rejects_non_json(http: httpx.Client) -> None:
    answer = http.post("/price", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"] == "bad_json"


def test_pacing_answers_like_ib(client_id: int) -> None:
    with run_in_thread(port=0, pacing=True, pacing_limit=20) as sim:
        ib = IB()
        ib.connect("127.0.0.1", sim.port, clientId=client_id, timeout=5)
        ib.client.MaxRequests = 0  # switch off the client's own throttle to overrun the server
        codes: list[int] = []
        ib.errorEvent += lambda req_id, code, *a: codes.append(code)
        (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
        trades = [ib.placeOrder(contract, LimitOrder("BUY", 1, 100.0)) for _ in range(40)]
        wait_for(ib, lambda: all(t.orderStatus.status in ("Submitted", "Cancelled") for t in trades))
        assert 100 in codes
        paced = [t for t in trades if t.orderStatus.status == "Cancelled"]
        assert paced and all(t.log[-1].errorCode == 100 for t in paced)
        ib.disconnect()
    with run_in_thread(port=0, pacing=False) as sim:
        ib = IB()
        ib.connect("127.0.0.1", sim.port, clientId=client_id, timeout=5)
        ib.client.MaxRequests = 0
        trades = [ib.placeOrder(contract, LimitOrder("BUY", 1, 100.0)) for _ in range(200)]
        wait_for(ib, lambda: all(t.orderStatus.status == "Submitted" for t in trades))
        ib.disconnect()


def test_pace_api_clients_are_slowed_not_rejected(client_id: int) -> None:
    with run_in_thread(port=0, pacing=True, pacing_limit=20) as sim:
        ib = IB()
        ib.client.setConnectOptions("+PACEAPI")
        ib.connect("127.0.0.1", sim.port, clientId=client_id, timeout=5)
        ib.client.MaxRequests = 0
        (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
        codes: list[int] = []
        ib.errorEvent += lambda req_id, code, *a: codes.append(code)
        trades = [ib.placeOrder(contract, LimitOrder("BUY", 1, 100.0)) for _ in range(30)]
        wait_for(ib, lambda: all(t.orderStatus.status == "Submitted" for t in trades), timeout=5)
        assert 100 not in codes  # the excess was queued, not refused
        ib.disconnect()


def test_several_clients_see_only_their_orders(fresh: SimThread, client_id: int) -> None:
    first, second = IB(), IB()
    first.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=5)
    second.connect("127.0.0.1", fresh.port, clientId=client_id + 1, timeout=5)
    (contract,) = first.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    mine = first.placeOrder(contract, MarketOrder("BUY", 5))
    wait_for(first, lambda: mine.orderStatus.status == "Filled")
    wait_for(second, lambda: any(p.position == 5 for p in second.positions()))  # positions are per account
    assert second.trades() == [] and second.fills() == []
    assert len(second.reqAllOpenOrders()) == 0
    resting = first.placeOrder(contract, LimitOrder("BUY", 1, 100.0))
    wait_for(first, lambda: resting.orderStatus.status == "Submitted")
    assert [t.order.permId for t in second.reqAllOpenOrders()] == [resting.order.permId]
    first.disconnect()
    second.disconnect()


def test_cli_and_state_file_survive_restart(tmp_path: Path, client_id: int) -> None:
    state_file = tmp_path / "ibsim-state.json"
    proc, port, control = start_cli("--state", str(state_file))
    try:
        ib = IB()
        ib.connect("127.0.0.1", port, clientId=client_id, timeout=5)
        (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
        ib.placeOrder(contract, MarketOrder("BUY", 7, orderRef="tv2ib:1:entry"))
        ib.placeOrder(contract, LimitOrder("SELL", 7, 250.0, orderRef="tv2ib:1:tp"))
        wait_for(ib, lambda: len(ib.fills()) == 1 and len(ib.openTrades()) == 1)
        httpx.post(f"http://127.0.0.1:{control}/price", json={"symbol": "AAPL", "price": 200.0})
        ib.disconnect()
    finally:
        stop_cli(proc)
    assert proc.returncode == 0 and state_file.exists()

    proc, port, control = start_cli("--state", str(state_file))
    try:
        ib = IB()
        ib.connect("127.0.0.1", port, clientId=client_id, timeout=5)
        assert [t.order.orderRef for t in ib.openTrades()] == ["tv2ib:1:tp"]
        assert [f.execution.orderRef for f in ib.fills()] == ["tv2ib:1:entry"]
        assert [(p.contract.conId, p.position) for p in ib.positions()] == [(265598, 7.0)]
        assert ib.client.getReqId() > max(t.order.orderId for t in ib.trades())
        state = httpx.get(f"http://127.0.0.1:{control}/state").json()
        assert state["prices"]["265598"] == 200.0
        ib.disconnect()
    finally:
        stop_cli(proc)


def test_cli_walk_moves_prices(tmp_path: Path) -> None:
    proc, _port, control = start_cli("--walk", "--walk-interval", "0.05")
    try:
        first = httpx.get(f"http://127.0.0.1:{control}/state").json()["prices"]
        time.sleep(0.3)
        later = httpx.get(f"http://127.0.0.1:{control}/state").json()["prices"]
        assert first != later
    finally:
        stop_cli(proc)


def test_several_accounts_and_continuous_future(client_id: int) -> None:
    from ib_async import ContFuture

    with run_in_thread(port=0, accounts=["DU111", "DU222"]) as sim:
        ib = IB()
        ib.connect("127.0.0.1", sim.port, clientId=client_id, timeout=5)
        assert ib.managedAccounts() == ["DU111", "DU222"]
        (front,) = ib.qualifyContracts(ContFuture("ES", "CME"))
        assert front.localSymbol.startswith("ES") and front.multiplier == "50"
        trade = ib.placeOrder(front, MarketOrder("BUY", 1, account="DU222"))
        wait_for(ib, lambda: trade.orderStatus.status == "Filled")
        wait_for(ib, lambda: len(ib.positions("DU222")) == 1)
        assert ib.positions("DU111") == []
        assert len(sim.set_price("ES", 5010)) == 4  # the STK default falls back to any type
        assert sim.set_price("EURUSD", 1.1) == [12087792]
        with pytest.raises(LookupError):
            sim.set_price("NOPE", 1.0)
        values = sim.state()["accountValues"]
        assert values["DU222"]["UnrealizedPnL"] == 500.0 and values["DU111"]["UnrealizedPnL"] == 0.0
        ib.disconnect()


def test_http_garbage_does_not_hurt(fresh: SimThread, http: httpx.Client) -> None:
    import socket

    for junk in (
        b"\r\n",
        b"GARBAGE\r\n\r\n",
        b"POST /price HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
        b"POST /reset HTTP/1.1\r\nContent-Length: 999999\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", fresh.control_port), timeout=2) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            try:
                sock.recv(1000)
            except OSError:
                pass
    assert http.get("/health").json()["ok"] is True
