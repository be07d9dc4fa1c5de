"""Helpers shared by the worker tests (importable as ``worker_helpers``)."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from support import alert_status as stored_status
from support import free_port, queue_alert, wait_until

from config.settings import Settings
from core.context import AppContext
from worker.decision.model import Instrument
from worker.ib import IBConnection, Trading
from worker.runtime import Worker

# Contracts as IB's details describe them, for the planner's and sizing's pure tests (ibsim's conIds).
AAPL = Instrument(265598, "AAPL", "STK", "SMART", "USD", "AAPL", Decimal("0.01"))
ES = Instrument(637002612, "ES", "FUT", "CME", "USD", "ESZ6", Decimal("0.25"), multiplier="50")
MES = Instrument(730283085, "MES", "FUT", "CME", "USD", "MESZ6", Decimal("0.25"), multiplier="5")
# IDEALPRO: the quantity is in base-currency units (EUR); the price in USD per EUR. ibsim (server
# version 157) sends no minSize/sizeIncrement, so the worker's defaults apply: 1 and 1.
EURUSD = Instrument(12087792, "EUR", "CASH", "IDEALPRO", "USD", "EUR.USD", Decimal("0.00005"))


def add_alert(ctx: AppContext, payload: dict[str, Any], *, received_at=None, enqueue: bool = True) -> str:
    """Commit an alert the way the web app does (status queued) and enqueue its job."""
    return queue_alert(ctx.sessions, ctx.redis, payload, received_at=received_at, enqueue=enqueue)


def alert_status(ctx: AppContext, alert_id: str) -> str:
    return stored_status(ctx.sessions, alert_id)


def alert_ends(ctx: AppContext, payload: dict[str, Any], status: str, timeout: float = 20.0) -> str:
    """Send ``payload`` as an alert (:func:`add_alert`) and wait until it is ``status``: its id.
    (At most ``timeout`` seconds: a loaded 2-core machine.)"""
    alert_id = add_alert(ctx, payload)
    wait_until(lambda: alert_status(ctx, alert_id) == status, timeout=timeout)
    return alert_id


class WorkerThread:
    """A :class:`Worker` consuming in a background thread (no signal handlers).

    Its consumers wait 0.1 s per blocking pop on Redis (the product waits 0.25 s): :meth:`stop` waits for
    the pop in progress, and about a hundred tests stop a worker.
    """

    def __init__(self, env: dict[str, str], probe_interval: float = 1.0, **worker: Any) -> None:
        self.ctx = AppContext.build(Settings.from_mapping(env))
        self.worker = Worker(self.ctx, probe_interval=probe_interval, queue_wait=0.1, **worker)
        self.thread = threading.Thread(target=self.worker.run, name="worker-main", daemon=True)

    def start(self, wait_ready: bool = True) -> WorkerThread:
        self.thread.start()
        if wait_ready:
            assert self.worker.ib.wait_ready(10), "worker did not connect to ibsim"
        return self

    def stop(self) -> None:
        self.worker.stopping.set()
        self.thread.join(15)
        self.ctx.close()
        assert not self.thread.is_alive(), "the worker thread did not stop"


class FreezableRelay:
    """A TCP relay to ibsim that can stop forwarding (a hung gateway whose socket stays open)."""

    def __init__(self, target_port: int) -> None:
        import asyncio

        self._asyncio = asyncio
        self.target_port = target_port
        self.port = free_port()
        self.frozen = threading.Event()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)

            async def serve() -> None:
                server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
                ready.set()
                async with server:
                    await server.serve_forever()

            self._loop.run_until_complete(serve())

        threading.Thread(target=run, daemon=True).start()
        ready.wait(5)

    async def _client(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await self._asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    while self.frozen.is_set():  # hold the bytes: nothing gets through
                        await self._asyncio.sleep(0.05)
                    dst.write(data)
            except ConnectionError:
                pass
            finally:
                dst.close()

        await self._asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class IBHandle:
    """The connection and its trading room, as the worker wires them (no recorder): for tests of
    the IB layer without a worker."""

    def __init__(self, port: int, client_id: int = 21, **trading: Any) -> None:
        self.conn = IBConnection("127.0.0.1", port, client_id, None, lambda fact: None)
        self.trading = Trading(self.conn, **trading)  # e.g. market_data_lines=2
        self.instrument = self.trading.contracts.qualify  # (ib_async contract, instrument)

    def started(self) -> IBHandle:
        """Connect (in the background, as the worker does) and wait until ready."""
        self.conn.start()
        assert self.conn.wait_ready(10), "the connection did not get ready"
        return self

    def call(self, coro: Any, timeout: float = 20) -> Any:
        """Run ``coro`` on the IB loop and wait for it."""
        return self.conn.call(coro, timeout=timeout)

    def on_loop(self, fn: Any, *args: Any) -> Any:
        """Run the plain function ``fn`` on the IB loop (ib_async state is read there)."""

        async def run() -> Any:
            return fn(*args)

        return self.call(run())
