"""SimServer as an async context manager inside a running loop, driven by ib_async's async API."""

from __future__ import annotations

import asyncio
import threading

import pytest
from ib_async import IB, MarketOrder, Stock

from ibsim import SimServer

pytestmark = pytest.mark.e2e


async def scenario() -> dict[str, object]:
    async with SimServer(port=0, control_port=0, farm_notices=False) as sim:
        ib = IB()
        await ib.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=5)
        (contract,) = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        sim.set_price("AAPL", 150.0, sec_type="STK")
        trade = ib.placeOrder(contract, MarketOrder("BUY", 2, orderRef="tv2ib:async:entry"))
        for _ in range(200):
            if trade.isDone():
                break
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.control_port)
        writer.write(b"GET /state HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = await reader.read()
        writer.close()
        ib.disconnect()
        return {"status": trade.orderStatus.status, "price": trade.orderStatus.avgFillPrice, "http": raw}


def test_async_with_inside_a_loop() -> None:
    # its own thread, so asyncio.run does not unset the main thread's loop that sync ib_async tests use
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.update(asyncio.run(scenario())))
    thread.start()
    thread.join(20)
    assert result["status"] == "Filled" and result["price"] == 150.0
    http = result["http"]
    assert isinstance(http, bytes) and http.startswith(b"HTTP/1.1 200 OK") and b"tv2ib:async:entry" in http
