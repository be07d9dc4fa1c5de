"""Hostile clients never crash the server nor disturb other clients."""

from __future__ import annotations

import random
import socket
import struct

import pytest
from ib_async import IB, LimitOrder, Stock
from ibsim_helpers import wait_for
from support import wait_until

from ibsim.framing import frame
from ibsim.testing import SimThread, run_in_thread

pytestmark = pytest.mark.e2e


class RawClient:
    """A bare socket speaking (or abusing) the wire protocol."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def handshake(self, client_id: int) -> None:
        version = b"v157..176"
        self.send(b"API\0" + struct.pack(">I", len(version)) + version)
        assert self.read_fields()[0] == "157"
        self.send(frame([71, 2, client_id, ""]))

    def read_fields(self) -> list[str]:
        header = self._read(4)
        return self._read(struct.unpack(">I", header)[0]).decode().split("\0")[:-1]

    def read_until(self, msg_id: str, code: str | None = None) -> list[str]:
        while True:
            fields = self.read_fields()
            if fields[0] == msg_id and (code is None or fields[3] == code):
                return fields

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def is_closed(self) -> bool:
        try:
            while True:
                self.read_fields()
        except (ConnectionError, OSError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def healthy(sim: SimThread, client_id: int) -> None:
    """A real client can still connect, qualify and trade."""
    ib = IB()
    ib.connect("127.0.0.1", sim.port, clientId=client_id, timeout=5)
    try:
        (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
        trade = ib.placeOrder(contract, LimitOrder("BUY", 1, 100.0))
        wait_for(ib, lambda: trade.orderStatus.status == "Submitted", 3)
        assert trade.orderStatus.status == "Submitted"
    finally:
        ib.disconnect()


@pytest.mark.parametrize(
    "greeting",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"API\0" + struct.pack(">I", 9) + b"v100..120",  # no common version
        b"API\0" + struct.pack(">I", 3) + b"xyz",
        b"API\0" + struct.pack(">I", 1 << 30),  # absurd length
        b"API\0" + struct.pack(">I", 4) + b"\xff\xfe\xfd\xfc",
    ],
)
def test_bad_handshakes_are_closed(fresh: SimThread, client_id: int, greeting: bytes) -> None:
    raw = RawClient(fresh.port)
    raw.send(greeting)
    assert raw.is_closed()
    raw.close()
    healthy(fresh, client_id)


def test_garbage_after_start_api_is_answered_not_fatal(fresh: SimThread, client_id: int) -> None:
    errors_before = fresh.state()["stats"]["protocol_errors"]
    raw = RawClient(fresh.port)
    raw.handshake(client_id)
    raw.read_until("9")
    raw.send(frame(["abc", "1"]))  # non-numeric message id
    raw.send(frame([9999]))  # unknown message id
    raw.send(frame([3, 17, 265598, "AAPL"]))  # truncated placeOrder
    rejected = raw.read_until("4", "201")
    assert rejected[2] == "17"
    raw.send(frame([9, 8, "notanumber"]))  # reqContractDetails with a garbage reqId
    raw.read_until("4", "320")
    raw.send(frame([7, 3]))  # truncated reqExecutions
    raw.read_until("4", "320")
    raw.send(struct.pack(">I", 0))  # empty frame
    raw.send(frame([49, 1]))  # and the session still answers
    assert raw.read_until("49")[2].isdigit()
    assert fresh.state()["stats"]["protocol_errors"] >= errors_before + 4
    raw.close()
    healthy(fresh, client_id + 1000)


def test_oversized_frame_closes_only_that_client(fresh: SimThread, client_id: int) -> None:
    bystander = IB()
    bystander.connect("127.0.0.1", fresh.port, clientId=client_id + 2000, timeout=5)
    raw = RawClient(fresh.port)
    raw.handshake(client_id)
    raw.read_until("9")
    raw.send(struct.pack(">I", 50_000_000) + b"x" * 1000)
    assert raw.is_closed()
    raw.close()
    assert bystander.isConnected() and bystander.reqCurrentTime()
    bystander.disconnect()


def test_silent_and_vanishing_clients(fresh: SimThread, client_id: int) -> None:
    silent = RawClient(fresh.port)  # connects, sends nothing
    vanishing = RawClient(fresh.port)
    vanishing.handshake(client_id)
    vanishing.send(struct.pack(">I", 500) + b"3\x0012\x00")  # half a message, then gone
    vanishing.close()
    half_greeting = RawClient(fresh.port)
    half_greeting.send(b"AP")
    half_greeting.close()
    healthy(fresh, client_id)  # the vanished client's id is free again
    silent.close()


def test_random_bytes_fuzz(fresh: SimThread, client_id: int) -> None:
    rng = random.Random(1234)
    for i in range(30):
        raw = RawClient(fresh.port)
        if i % 2:
            raw.handshake(client_id + 3000 + i)
            alphabet = b"0123456789.-\0abcE" if i % 4 == 1 else bytes(range(256))
            payload = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 300)))
            raw.send(struct.pack(">I", len(payload)) + payload)
            fields = [
                rng.choice(["3", "9", "7", "4", "1", "62", "76", "", "-1", "x", "1e9"])
                for _ in range(rng.randrange(1, 120))
            ]
            raw.send(frame(fields))
        else:
            raw.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
        raw.close()
    healthy(fresh, client_id)
    wait_until(lambda: not fresh.state()["clients"], 2, "a client is still listed")
    assert fresh.state()["clients"] == []


def test_client_that_stops_reading_is_disconnected(client_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import ibsim.session

    monkeypatch.setattr(ibsim.session, "MAX_OUTPUT_BUFFER", 256 * 1024)
    with run_in_thread(port=0, pacing=False) as sim:
        raw = RawClient(sim.port)
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.handshake(client_id)
        request = frame([9, 8, 1, 0, "ES", "FUT", "", 0.0, "", "", "CME", "", "USD", "", "", 0, "", ""])
        raw.send(request * 5000)  # ~7 MB of contract details that are never read
        wait_until(lambda: client_id not in sim.state()["clients"], 5, "the client is still connected", 0.05)
        assert client_id not in sim.state()["clients"]
        raw.close()
        healthy(sim, client_id + 1)
