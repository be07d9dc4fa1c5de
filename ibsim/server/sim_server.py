"""The simulated TWS / IB Gateway: builds the engine, the connections, the router, the fault
injector and the state file, and runs them (with the options' expiry and the random walk) on one
event loop.

All of its methods run on the server's event loop; use :mod:`ibsim.testing` to drive it from
another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

from ibsim.catalog.builtin import build_catalog
from ibsim.catalog.lookup import Catalog
from ibsim.control.http import ControlServer
from ibsim.engine.core import DEFAULT_ACCOUNT, Engine
from ibsim.engine.events import Event
from ibsim.handlers.feeds import Feeds
from ibsim.handlers.market_data import Entitlement
from ibsim.handlers.registry import request_handlers
from ibsim.latency import profile_named
from ibsim.server.account_stream import AccountStream
from ibsim.server.conditions import Conditions
from ibsim.server.connections import PACING_LIMIT, Connections, ConnectionSettings
from ibsim.server.expiry_watch import watch_expiries
from ibsim.server.faults import FaultInjector
from ibsim.server.operator import OperatorControls
from ibsim.server.routing import Router
from ibsim.server.state_file import StateFile
from ibsim.server.walk import random_walk
from ibsim.session import Session

log = logging.getLogger(__name__)


class SimServer(OperatorControls):
    """A simulated TWS / IB Gateway speaking the API socket protocol at server version 157.

    Use ``async with SimServer(port=0, control_port=0) as sim:`` inside a running loop; after
    start, ``sim.port`` / ``sim.control_port`` hold the bound ports. ``control_port=None``
    disables the HTTP control API. The operator methods (:meth:`set_price`, :meth:`fault`,
    :meth:`state`, :meth:`reset`, :meth:`set_fill_limit`, :meth:`fill`, :meth:`notice`) must be
    called on the server's loop; :func:`ibsim.testing.run_in_thread` wraps them for threads.
    """

    def __init__(
        self,
        port: int = 4002,
        control_port: int | None = None,
        host: str = "127.0.0.1",
        accounts: Iterable[str] = (DEFAULT_ACCOUNT,),
        catalog: Catalog | None = None,
        catalog_file: str | Path | None = None,
        state_file: str | Path | None = None,
        walk: bool = False,
        walk_interval: float = 1.0,
        walk_volatility: float = 0.0005,
        pacing: bool = True,
        pacing_limit: int = PACING_LIMIT,
        farm_notices: bool = True,
        clock: Callable[[], float] | None = None,
        seed: int | None = None,
        initial_cash: float = 1_000_000.0,
        margin_check: bool = False,
        market_data: str = "live",
        latency: str = "none",
    ) -> None:
        self.entitlement = Entitlement()
        self.entitlement.set(market_data)  # no client yet: no stream to end
        self.market_data_default = market_data  # what reset() goes back to
        self.catalog = catalog or build_catalog(extension=catalog_file)
        self.engine = Engine(
            self.catalog,
            accounts=list(accounts) or [DEFAULT_ACCOUNT],
            clock=clock,
            initial_cash=initial_cash,
            margin_check=margin_check,
        )
        self.state_file = StateFile(self.engine, state_file)
        self.walk, self.walk_interval, self.walk_volatility = walk, walk_interval, walk_volatility
        self._rng = random.Random(seed)
        self._control_port = control_port
        self._control: ControlServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._assemble(ConnectionSettings(host, pacing, pacing_limit, farm_notices), port)
        self.conditions.latency.profile = profile_named(latency)  # the account stream starts with start()
        self.latency_default = latency

    def _assemble(self, settings: ConnectionSettings, port: int) -> None:
        self.conditions = Conditions()
        feeds = Feeds(self.engine)
        handlers = request_handlers(
            self.engine, self.answer, feeds, self.entitlement, self.conditions.latency
        )
        self.connections = Connections(self.engine, handlers, self.conditions, settings, port)
        self.router = Router(self.engine, self.connections, feeds, self.state_file.schedule)
        self.injector = FaultInjector(self.engine, self.connections, self.apply, self._spawn, feeds=feeds)
        self.account_stream = AccountStream(self.engine, self.connections, feeds, self._spawn)

    # ------------------------------------------------------------- lifecycle

    @property
    def control_port(self) -> int | None:
        """The bound HTTP control port, or None when disabled."""
        return self._control_port

    @property
    def host(self) -> str:
        """The API listen address."""
        return self.connections.settings.host

    async def start(self) -> SimServer:
        """Load --state, bind the API (and control) ports, start the options' expiry and the
        random walk."""
        self.state_file.load()
        self._spawn(watch_expiries(self.engine, self.apply))
        await self.connections.listen(self.connections.port)
        if self._control_port is not None:
            # loopback only, whatever --host says
            self._control = ControlServer(self, "127.0.0.1", self._control_port)
            await self._control.start()
            self._control_port = self._control.port
        self.account_stream.restart()
        if self.walk:
            self._spawn(
                random_walk(self.engine, self.apply, self._rng, self.walk_interval, self.walk_volatility)
            )
        log.info("ibsim listening on %s:%s (control %s)", self.host, self.port, self._control_port)
        return self

    async def stop(self) -> None:
        """Close every connection and listener; write --state."""
        self.connections.stopping = True
        self.connections.close_listener()
        self.connections.close_all()
        if self._control is not None:
            await self._control.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.connections.wait_closed()
        self.state_file.cancel()
        self.state_file.save()

    async def __aenter__(self) -> SimServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        await asyncio.Event().wait()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------- what callers reach through the server

    def apply(self, events: Sequence[Event]) -> None:
        """Turn engine events into messages for owners and subscribers."""
        self.router.apply(events)

    def answer(self, events: Sequence[Event]) -> None:
        """:meth:`apply` for the events answering a client's order request (under a latency
        profile its acknowledgement holds them back)."""
        self.router.apply(events, answering=True)

    @property
    def sessions(self) -> set[Session]:
        """Every open client connection."""
        return self.connections.sessions

    @property
    def by_client(self) -> dict[int, Session]:
        """The connection of each started clientId."""
        return self.connections.by_client

    @property
    def market_data(self) -> str:
        """The login's market data: ``live``, ``delayed`` or ``none``."""
        return self.entitlement.mode

    def drop_all(self, client_id: int | None = None) -> int:
        """Close every client connection (or only that client's); returns how many."""
        return self.connections.drop(client_id)

    def broadcast_notice(self, code: int, text: str) -> None:
        """Send error(-1, code, text) to every connected client."""
        self.connections.broadcast(code, text)

    def save_state(self) -> None:
        """Write the engine's state to --state (atomically)."""
        self.state_file.save()
