"""Run a :class:`~ibsim.server.SimServer` on its own loop in a background thread (for sync tests).

with run_in_thread(port=0, control_port=0) as sim:
    ib.connect("127.0.0.1", sim.port, clientId=7, timeout=5)
    sim.set_price("AAPL", 189.5)
    sim.fault("reject_next")
    sim.state()["orders"]
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ibsim.server import SimServer

T = TypeVar("T")


class SimThread:
    """Handle on a server running in a background thread; methods are thread-safe."""

    def __init__(self, **server_kwargs: Any) -> None:
        server_kwargs.setdefault("port", 0)
        self._kwargs = server_kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ibsim", daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.server: SimServer | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.server = SimServer(**self._kwargs)
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()

    def start(self, timeout: float = 10.0) -> SimThread:
        """Start the thread and wait until the ports are bound."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("ibsim did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and join the thread (idempotent)."""
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 10.0, **kw: Any) -> T:
        """Run ``fn(*args, **kw)`` on the server's loop and return its result (exceptions propagate)."""

        async def invoke() -> T:
            return fn(*args, **kw)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout)

    @property
    def sim(self) -> SimServer:
        """The server object (touch it only through :meth:`call`)."""
        assert self.server is not None
        return self.server

    @property
    def port(self) -> int:
        """The API port."""
        return self.sim.port

    @property
    def control_port(self) -> int | None:
        """The HTTP control port (None if started without one)."""
        return self.sim.control_port

    def set_price(
        self,
        symbol: str = "",
        price: float = 0.0,
        sec_type: str = "STK",
        con_id: int | None = None,
        **match: str,
    ) -> list[int]:
        """Set a price (``sec_type=""`` matches any type; ``con_id`` wins over the symbol).

        With the default ``sec_type="STK"`` a symbol that is not a stock (``ES``, ``EURUSD``, ``BTC``)
        falls back to any type, so ``set_price("ES", 5000)`` moves every listed ES expiry.
        """
        try:
            return self.call(self.sim.set_price, symbol, price, "" if con_id else sec_type, con_id, **match)
        except LookupError:
            if sec_type != "STK" or con_id:
                raise
            return self.call(self.sim.set_price, symbol, price, "", None, **match)

    def fault(self, kind: str, **kw: Any) -> dict[str, Any]:
        """Inject a fault: drop | refuse(seconds) | connectivity(code, seconds) | delay(ms) | reject_next
        (reason, code, count) | pause_fills | resume_fills | clear."""
        return self.call(self.sim.fault, kind, **kw)

    def state(self) -> dict[str, Any]:
        """The same document as GET /state."""
        return self.call(self.sim.state)

    def reset(self) -> None:
        """Forget orders, fills, positions, prices and faults."""
        self.call(self.sim.reset)

    def set_fill_limit(self, quantity: float | None, **kw: Any) -> dict[str, Any]:
        """Per-fill quantity limit: kw symbol/sec_type/con_id, or client_id + order_id; None removes."""
        return self.call(self.sim.set_fill_limit, quantity, **kw)

    def fill(
        self, client_id: int, order_id: int, quantity: float | None = None, price: float | None = None
    ) -> dict[str, Any]:
        """Force a (partial) fill of a working order."""
        return self.call(self.sim.fill, client_id, order_id, quantity, price)

    def end_of_day(self) -> dict[str, Any]:
        """Expire every working DAY order (GTC orders keep working), then today's options."""
        return self.call(self.sim.end_of_day)

    def expire(self, date: str = "") -> dict[str, Any]:
        """The options expiring on or before ``date`` (YYYYMMDD; today when empty) expire now:
        exercised, assigned or worthless; their working orders cancelled."""
        return self.call(self.sim.expire_options, date)

    def trade(self, quantity: float, **kw: Any) -> dict[str, Any]:
        """A manual trade outside the API (signed quantity; kw symbol/sec_type/con_id/account/price)."""
        return self.call(self.sim.external_trade, quantity, **kw)

    def set_cash_account(self, cash: bool = True, account: str = "") -> dict[str, Any]:
        """A cash account refuses short sales; ``cash=False`` makes it a margin account again."""
        return self.call(self.sim.set_account_type, account, cash)

    def set_market_data(self, mode: str = "live", live_error: int = 354) -> dict[str, Any]:
        """``delayed``: an account without live API data (a live request answers ``live_error``,
        354 or 10089; a delayed one gets 10167 and delayed ticks); ``none``: no data at all;
        ``live`` again. ``reset()`` goes back to the server's starting mode."""
        return self.call(self.sim.set_market_data, mode, live_error)

    def halt(self, symbol: str, halted: bool = True, **kw: Any) -> list[int]:
        """Refuse every new order on the matching contracts (``halted=False`` resumes)."""
        return self.call(self.sim.set_halted, halted, symbol=symbol, **kw)

    def set_latency(self, profile: str = "none", **figures_ms: float) -> dict[str, Any]:
        """The latency profile (``ib``; ``none`` clears it), figures replaced in milliseconds
        (``whatIfMs=800``); ``reset()`` goes back to the server's starting profile."""
        return self.call(self.sim.set_latency, profile, **figures_ms)

    def latency(self) -> dict[str, Any]:
        """The same document as GET /latency: the profile and the answers it held back."""
        return self.call(self.sim.latency_state)

    def set_options(self, **kw: Any) -> dict[str, Any]:
        """The option model's inputs (``volatility=0.3``, ``symbol="AAPL"``, ``rate``, ``spread``,
        ``spread_pct``); options are repriced at once. ``reset()`` goes back to the defaults."""
        return self.call(self.sim.set_options, **kw)

    def notice(self, code: int, text: str = "") -> None:
        """Send error(-1, code, text) to every client."""
        self.call(self.sim.notice, code, text)

    def __enter__(self) -> SimThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def run_in_thread(**server_kwargs: Any) -> Iterator[SimThread]:
    """Context manager: a started :class:`SimThread` (kwargs go to :class:`SimServer`, port defaults to 0)."""
    handle = SimThread(**server_kwargs).start()
    try:
        yield handle
    finally:
        handle.stop()
