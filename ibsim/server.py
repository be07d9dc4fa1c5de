"""The asyncio TCP server: handshake, sessions, request dispatch, event routing, faults.

One :class:`SimServer` owns the engine and every client session. All of its methods run on
the server's event loop; use :mod:`ibsim.testing` to drive it from another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ibsim import messages as msg
from ibsim.catalog import Catalog, build_catalog, round_to_tick
from ibsim.engine import (
    DEFAULT_ACCOUNT,
    CommissionEvent,
    Engine,
    Event,
    ExecutionEvent,
    OpenOrderEvent,
    OrderErrorEvent,
    OrderStatusEvent,
    PositionEvent,
    PriceEvent,
    WhatIfEvent,
)
from ibsim.framing import (
    HANDSHAKE_PREFIX,
    FieldError,
    FieldReader,
    ProtocolError,
    parse_version_range,
    split_payload,
    unpack_length,
)
from ibsim.handlers import RequestHandlers, hhmm
from ibsim.messages import ids
from ibsim.session import Session

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
PACING_LIMIT = 50
FAULT_KINDS = (
    "drop",
    "refuse",
    "connectivity",
    "delay",
    "position_delay",
    "reject_next",
    "pause_fills",
    "resume_fills",
    "clear",
)
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
CONNECTIVITY_TEXT = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
}
# awaited requests the simulator does not serve: answer with an error on their reqId so the
# client's future ends at once (msgId -> (index of reqId, error code, text))
UNSERVED_REQUESTS = {
    96: (1, 162, "Historical Market Data Service error message:no ticks in the simulator"),
    88: (1, 162, "Historical Market Data Service error message:no histogram in the simulator"),
    78: (1, 200, "No security definition has been found for the request"),
    50: (2, 162, "Historical Market Data Service error message:no real-time bars in the simulator"),
    10: (2, 354, "Requested market data is not subscribed."),
    54: (2, 200, "No security definition has been found for the request"),
    55: (2, 200, "No security definition has been found for the request"),
    86: (1, 162, "Historical news is not available in the simulator"),
    22: (1, 162, "Scanner is not available in the simulator"),
}
MARKET_DATA_MODES = ("live", "delayed", "none")
ORDER_EVENTS = (
    OpenOrderEvent,
    OrderStatusEvent,
    ExecutionEvent,
    CommissionEvent,
    OrderErrorEvent,
    WhatIfEvent,
)


class SimServer(RequestHandlers):
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
    ) -> None:
        self.host = host
        self.market_data = "live"
        self.live_data_error = 354
        self.set_market_data(market_data)
        self._market_data_default = market_data  # what reset() goes back to
        self._port = port
        self._control_port = control_port
        self.catalog = catalog or build_catalog(extension=catalog_file)
        self.engine = Engine(
            self.catalog,
            accounts=list(accounts) or [DEFAULT_ACCOUNT],
            clock=clock,
            initial_cash=initial_cash,
            margin_check=margin_check,
        )
        self.state_file = Path(state_file) if state_file else None
        self.walk = walk
        self.walk_interval = walk_interval
        self.walk_volatility = walk_volatility
        self.pacing = pacing
        self.pacing_limit = pacing_limit
        self.farm_notices = farm_notices
        self.sessions: set[Session] = set()
        self.by_client: dict[int, Session] = {}
        self.ack_delay = 0.0
        self.position_delay = 0.0  # extra hold on position reports (fault position_delay)
        self.outage = False
        self.refusing_until = 0.0
        self._server: asyncio.base_events.Server | None = None
        self._control: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._save_handle: asyncio.TimerHandle | None = None
        self._rng = random.Random(seed)
        self._stopping = False
        self.stats = {"connections": 0, "messages": 0, "protocol_errors": 0}

    # ------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The bound API port (valid after start)."""
        return self._port

    @property
    def control_port(self) -> int | None:
        """The bound HTTP control port, or None when disabled."""
        return self._control_port

    async def start(self) -> SimServer:
        """Load --state, bind the API (and control) ports, start the random walk."""
        if self.state_file and self.state_file.exists():
            try:
                self.engine.load(json.loads(self.state_file.read_text(encoding="utf-8")))
                log.info("state restored from %s", self.state_file)
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.error("could not restore state from %s: %s", self.state_file, exc)
        await self._listen()
        if self._control_port is not None:
            from ibsim.control import ControlServer

            self._control = ControlServer(
                self, "127.0.0.1", self._control_port
            )  # loopback only, whatever --host says
            await self._control.start()
            self._control_port = self._control.port
        if self.walk:
            self._spawn(self._walk_loop())
        log.info("ibsim listening on %s:%s (control %s)", self.host, self._port, self._control_port)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self._port, reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and listener; write --state."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.close()
        if self._control is not None:
            await self._control.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._save_handle is not None:
            self._save_handle.cancel()
        self.save_state()

    async def __aenter__(self) -> SimServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        await asyncio.Event().wait()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------- connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        if self._stopping or time.monotonic() < self.refusing_until:
            session.close()
            return
        self.sessions.add(session)
        self.stats["connections"] += 1
        try:
            await self._handshake(session)
            await self._read_loop(session)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except ProtocolError as exc:
            self.stats["protocol_errors"] += 1
            log.warning("closing %s: %s", session.peer, exc)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must never take the server down
            log.exception("session %s failed", session.peer)
        finally:
            self._forget(session)

    def _forget(self, session: Session) -> None:
        session.close()
        self.sessions.discard(session)
        if session.client_id is not None and self.by_client.get(session.client_id) is session:
            del self.by_client[session.client_id]

    async def _handshake(self, session: Session) -> None:
        prefix = await asyncio.wait_for(session.reader.readexactly(4), HANDSHAKE_TIMEOUT)
        if prefix != HANDSHAKE_PREFIX:
            raise ProtocolError(f"bad greeting {prefix!r}")
        header = await asyncio.wait_for(session.reader.readexactly(4), HANDSHAKE_TIMEOUT)
        payload = await asyncio.wait_for(session.reader.readexactly(unpack_length(header)), HANDSHAKE_TIMEOUT)
        low, high = parse_version_range(payload)
        if not low <= ids.SERVER_VERSION <= high:
            raise ProtocolError(f"client versions {low}..{high} exclude {ids.SERVER_VERSION}")
        session.pace_api = b"+PACEAPI" in payload
        now = dt.datetime.now(dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")
        session.send(msg.handshake_reply(now))

    async def _read_loop(self, session: Session) -> None:
        reader = session.reader
        while not session.closed:
            header = await reader.readexactly(4)
            payload = await reader.readexactly(unpack_length(header))
            fields = split_payload(payload)
            if not fields:
                continue
            self.stats["messages"] += 1
            if self.pacing and session.client_id is not None:
                count = session.over_pace(self.pacing_limit)
                if count:
                    if session.pace_api:
                        # +PACEAPI: TWS queues instead of rejecting
                        await asyncio.sleep(1.0 / self.pacing_limit)
                    else:
                        self._reject_paced(session, fields, count)
                        continue
            try:
                self._dispatch_message(session, fields)
            except (FieldError, ValueError, IndexError, KeyError, OverflowError) as exc:
                self.stats["protocol_errors"] += 1
                self._bad_request(session, fields, exc)
            if session.writer.transport.get_write_buffer_size() > 1 << 20:
                await session.writer.drain()

    def _reject_paced(self, session: Session, fields: list[str], count: int) -> None:
        req_id = _request_id(fields)
        session.error(
            req_id,
            100,
            f"Max rate of messages per second has been exceeded:max={self.pacing_limit} rec={count}",
        )

    def _bad_request(self, session: Session, fields: list[str], exc: Exception) -> None:
        log.warning("client %s sent a malformed message %r: %s", session.client_id, fields[:3], exc)
        msg_id = fields[0]
        if msg_id == str(ids.PLACE_ORDER) and len(fields) > 1 and fields[1].lstrip("-").isdigit():
            session.error(int(fields[1]), 201, f"Order rejected - reason:Error reading request: {exc}")
        else:
            session.error(_request_id(fields), 320, f"Error reading request: {exc}")

    # ------------------------------------------------------------- dispatch

    def _dispatch_message(self, session: Session, fields: list[str]) -> None:
        try:
            msg_id = int(fields[0])
        except ValueError as exc:
            raise FieldError(f"bad message id {fields[0]!r}") from exc
        if session.refused:
            return
        if session.client_id is None:
            if msg_id == ids.START_API:
                self._start_api(session, fields)
            else:
                log.warning("message %s before startApi from %s ignored", msg_id, session.peer)
            return
        handler = self._handlers.get(msg_id)
        if handler is not None:
            handler(self, session, fields)
        elif msg_id in UNSERVED_REQUESTS:
            index, code, text = UNSERVED_REQUESTS[msg_id]
            session.error(int(fields[index]), code, text)
        else:
            log.debug("client %s: ignoring message %s", session.client_id, msg_id)

    def _start_api(self, session: Session, fields: list[str]) -> None:
        client_id = FieldReader(fields, 2).int()
        other = self.by_client.get(client_id)
        if other is not None and not other.closed:
            session.error(
                -1,
                326,
                "Unable to connect as the client id is already in use. Retry with a unique client id.",
            )
            asyncio.get_running_loop().call_later(0.05, session.close)
            session.refused = True  # further messages are ignored until the close
            return
        session.client_id = client_id
        self.by_client[client_id] = session
        session.send(msg.managed_accounts(self.engine.account_ids))
        session.send(msg.next_valid_id(self.engine.next_valid_id(client_id)))
        if self.farm_notices:
            for code, text in FARM_NOTICES:
                session.error(-1, code, text)
        if self.outage:
            session.error(-1, 1100, CONNECTIVITY_TEXT[1100])

    # ------------------------------------------------------------- event routing

    def apply(self, events: Sequence[Event]) -> None:
        """Turn engine events into messages for owners and subscribers."""
        if not events:
            return
        delay = self.ack_delay
        changed: dict[tuple[str, int], None] = {}
        prices: dict[int, float] = {}
        for event in events:
            if isinstance(event, ORDER_EVENTS):
                self._send_order_event(event, delay)
            elif isinstance(event, PositionEvent):
                changed[(event.account, event.con_id)] = None
            elif isinstance(event, PriceEvent):
                prices[event.con_id] = event.price
        for con_id in prices:
            for session in list(self.sessions):
                for req_id, cid in session.mkt.items():
                    if cid == con_id:
                        self._send_ticks(session, req_id, con_id)
        if changed:  # TWS reports positions a moment after the fill (fault position_delay widens it)
            self._send_position_updates(list(changed), delay + self.position_delay)
        self._schedule_save()

    def _send_order_event(self, event: Event, delay: float) -> None:
        engine = self.engine
        if isinstance(event, OrderErrorEvent):
            session = self.by_client.get(event.client_id)
            if session is not None:
                session.error(event.order_id, event.code, event.text, delay)
            return
        if isinstance(event, ExecutionEvent | CommissionEvent):
            ex = event.execution
            session = self.by_client.get(ex.client_id)
            if session is None:
                return
            if isinstance(event, ExecutionEvent):
                session.send(msg.exec_details(-1, ex, engine.market.instrument(ex.con_id)), delay)
            else:
                session.send(msg.commission_report(ex), delay)
            return
        order = event.order  # type: ignore[union-attr]
        session = self.by_client.get(order.client_id)
        if session is None:
            return
        if isinstance(event, OpenOrderEvent):
            session.send(msg.open_order(order, engine.market.instrument(order.con_id)), delay)
        elif isinstance(event, OrderStatusEvent):
            session.send(msg.order_status(order), delay)
        elif isinstance(event, WhatIfEvent):
            session.send(
                msg.open_order(order, engine.market.instrument(order.con_id), "PreSubmitted", event.state),
                delay,
            )

    def _send_position_updates(self, changed: list[tuple[str, int]], delay: float) -> None:
        engine = self.engine
        accounts = {a for a, _ in changed}
        for session in list(self.sessions):
            if session.closed or session.client_id is None:
                continue
            if session.positions:
                for account, con_id in changed:
                    pos = engine.positions.get((account, con_id))
                    qty, cost = (pos.quantity, pos.avg_cost) if pos else (0.0, 0.0)
                    session.send(msg.position(account, engine.market.instrument(con_id), qty, cost), delay)
            if session.account_updates in accounts:
                account = session.account_updates
                for acct, con_id in changed:
                    if acct == account:
                        session.send(self._portfolio_fields(engine.ledger.portfolio_row(acct, con_id)), delay)
                for key, value, currency in self._account_rows(account):
                    session.send(msg.update_account_value(key, value, currency, account), delay)
                session.send(msg.update_account_time(hhmm()), delay)
            for req_id, account in session.multi.items():
                if account in accounts:
                    for key, value, currency in self._account_rows(account):
                        session.send(msg.account_update_multi(req_id, account, key, value, currency), delay)
            for req_id, account in session.pnl.items():
                if account in accounts:
                    session.send(msg.pnl(req_id, *engine.ledger.daily_pnl(account)), delay)
            for req_id, (account, con_id) in session.pnl_single.items():
                if (account, con_id) in changed:
                    self._send_pnl_single(session, req_id, account, con_id)

    # ------------------------------------------------------------- operator API

    def set_price(
        self,
        symbol: str = "",
        price: float = 0.0,
        sec_type: str = "",
        con_id: int | None = None,
        **match: str,
    ) -> list[int]:
        """Set the current price of the matching contracts (all ES expiries for ``ES``/``FUT``).

        Returns the conIds changed; raises LookupError when nothing matches.
        """
        price = float(price)
        if not price > 0 or math.isinf(price):
            raise ValueError("price must be a positive number")
        found = self.engine.find_instruments(symbol, sec_type, con_id, **match)
        if not found:
            raise LookupError(f"no contract matches symbol={symbol!r} secType={sec_type!r} conId={con_id!r}")
        for inst in found:
            self.apply(self.engine.set_price(inst.con_id, price))
        return [inst.con_id for inst in found]

    def fault(self, kind: str, **kw: Any) -> dict[str, Any]:
        """Inject a fault (see README: drop, refuse, connectivity, delay, reject_next, pause/resume_fills)."""
        if kind == "drop":
            client_id = kw.get("clientId", kw.get("client_id"))
            dropped = self.drop_all(None if client_id is None else int(client_id))
            return {"dropped": dropped}
        if kind == "refuse":
            seconds = float(kw.get("seconds", 5.0))
            dropped = self.drop_all()
            self.refusing_until = time.monotonic() + seconds
            self._spawn(self._refuse(seconds))
            return {"dropped": dropped, "refusingFor": seconds}
        if kind == "connectivity":
            code = int(kw.get("code", 1102))
            if code not in (1101, 1102):
                raise ValueError("connectivity code must be 1101 or 1102")
            seconds = float(kw.get("seconds", kw.get("after", 1.0)))
            self._spawn(self._connectivity(code, seconds))
            return {"code": code, "seconds": seconds}
        if kind == "delay":
            self.ack_delay = max(0.0, float(kw.get("ms", 0.0)) / 1000.0)
            return {"delayMs": self.ack_delay * 1000.0}
        if kind == "position_delay":
            # position reports trail the executions (as TWS's do): a client deciding on its
            # position right after its own fill sees the old one unless it waits for the report
            self.position_delay = max(0.0, float(kw.get("ms", 0.0)) / 1000.0)
            return {"positionDelayMs": self.position_delay * 1000.0}
        if kind == "reject_next":
            pending = self.engine.faults.queue_rejections(
                int(kw.get("code", 201)),
                str(kw.get("reason", "Simulated rejection")),
                int(kw.get("count", 1)),
            )
            return {"pending": pending}
        if kind == "pause_fills":
            self.engine.pause_fills()
            return {"fillsPaused": True}
        if kind == "resume_fills":
            self.apply(self.engine.resume_fills())
            return {"fillsPaused": False}
        if kind == "clear":
            self.ack_delay = 0.0
            self.position_delay = 0.0
            self.engine.reject_queue.clear()
            self.refusing_until = 0.0
            self.apply(self.engine.resume_fills())
            return {"cleared": True}
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")

    def drop_all(self, client_id: int | None = None) -> int:
        """Close every client connection (or only that client's); returns how many."""
        count = 0
        for session in list(self.sessions):
            if client_id is not None and session.client_id != client_id:
                continue
            session.close()
            self._forget(session)
            count += 1
        return count

    async def _refuse(self, seconds: float) -> None:
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(seconds)
        if self._stopping:
            return
        for _ in range(50):
            try:
                await self._listen()
                self.refusing_until = 0.0
                log.info("accepting connections again on %s", self._port)
                return
            except OSError as exc:
                log.warning("re-listen on %s failed: %s", self._port, exc)
                await asyncio.sleep(0.2)

    async def _connectivity(self, code: int, seconds: float) -> None:
        self.outage = True
        self.broadcast_notice(1100, CONNECTIVITY_TEXT[1100])
        was_paused = self.engine.fills_paused
        self.engine.pause_fills()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.outage = False
            if code == 1101:
                for session in self.sessions:
                    session.mkt.clear()
            self.broadcast_notice(code, CONNECTIVITY_TEXT[code])
            if not was_paused:
                self.apply(self.engine.resume_fills())

    def broadcast_notice(self, code: int, text: str) -> None:
        """Send error(-1, code, text) to every connected client."""
        for session in list(self.sessions):
            if session.client_id is not None and not session.refused:
                session.error(-1, code, text)

    def notice(self, code: int, text: str = "") -> None:
        """Operator notice to every client (e.g. 2103 farm broken)."""
        self.broadcast_notice(code, text or CONNECTIVITY_TEXT.get(code, f"Notice {code}"))

    def set_fill_limit(
        self,
        quantity: float | None,
        symbol: str = "",
        sec_type: str = "",
        con_id: int | None = None,
        client_id: int | None = None,
        order_id: int | None = None,
    ) -> dict[str, Any]:
        """Limit the quantity per fill event for an order (clientId+orderId) or contracts; None removes."""
        if order_id is not None:
            self.engine.set_fill_limit(quantity, client_id=client_id or 0, order_id=order_id)
            targets: list[Any] = [{"clientId": client_id or 0, "orderId": order_id}]
        else:
            found = self.engine.find_instruments(symbol, sec_type, con_id)
            if not found:
                raise LookupError(
                    f"no contract matches symbol={symbol!r} secType={sec_type!r} conId={con_id!r}"
                )
            for inst in found:
                self.engine.set_fill_limit(quantity, con_id=inst.con_id)
            targets = [inst.con_id for inst in found]
        if quantity is None:
            self.apply(self.engine.rematch_all())
        return {"quantity": quantity, "targets": targets}

    def fill(
        self, client_id: int, order_id: int, quantity: float | None = None, price: float | None = None
    ) -> dict[str, Any]:
        """Force a fill of a working order (partial when ``quantity`` is below the remaining)."""
        self.apply(self.engine.manual_fill(client_id, order_id, quantity, price))
        order = self.engine.orders[(client_id, order_id)]
        return order.to_json()

    def external_trade(
        self, quantity: float, symbol: str = "", sec_type: str = "", con_id: int | None = None,
        account: str = "", price: float | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A manual trade outside the API (signed quantity); returns the new position."""
        found = self.engine.find_instruments(symbol, sec_type, con_id)
        if len(found) != 1:
            raise LookupError(
                f"{len(found)} contracts match symbol={symbol!r} secType={sec_type!r} conId={con_id!r}"
            )
        acct = account or self.engine.ledger.default_account
        self.apply(self.engine.external_trade(acct, found[0].con_id, float(quantity), price))
        pos = self.engine.positions.get((acct, found[0].con_id))
        return {"account": acct, "conId": found[0].con_id, "position": pos.quantity if pos else 0.0}

    def set_account_type(
        self, account: str = "", cash: bool = True, balance: float | None = None
    ) -> dict[str, Any]:
        """Make an account a cash account (no short sales) or a margin account again; ``balance``
        sets its cash (so two accounts can differ in NetLiquidation; clients subscribing after
        this see it)."""
        acct = account or self.engine.ledger.default_account
        if acct not in self.engine.accounts:
            raise LookupError(f"account {acct} is not managed here")
        (self.engine.cash_accounts.add if cash else self.engine.cash_accounts.discard)(acct)
        if balance is not None:
            if not balance > 0:
                raise ValueError(f"balance must be above 0, got {balance}")
            self.engine.accounts[acct].cash = float(balance)
        return {"account": acct, "cash": cash, "balance": self.engine.accounts[acct].cash}

    def set_market_data(self, mode: str = "live", live_error: int = 354) -> dict[str, Any]:
        """What the login's market data subscriptions allow: ``live``; ``delayed`` (no live API
        subscription: a live request is refused with ``live_error``, 354 or 10089, a delayed one
        gets 10167 and delayed ticks); ``none`` (354 live, 10168 delayed). Applies to later requests."""
        if mode not in MARKET_DATA_MODES:
            raise ValueError(f"market data must be one of {', '.join(MARKET_DATA_MODES)}, got {mode!r}")
        if live_error not in (354, 10089):
            raise ValueError(f"the live-data error must be 354 or 10089, got {live_error!r}")
        self.market_data, self.live_data_error = mode, live_error
        return {"marketData": mode, "liveError": live_error}

    def set_halted(
        self, halted: bool = True, symbol: str = "", sec_type: str = "", con_id: int | None = None
    ) -> list[int]:
        """Halt (or resume) trading in the matching contracts: new orders on them are refused."""
        found = self.engine.find_instruments(symbol, sec_type, con_id)
        if not found:
            raise LookupError(f"no contract matches symbol={symbol!r} secType={sec_type!r} conId={con_id!r}")
        for inst in found:
            (self.engine.halted.add if halted else self.engine.halted.discard)(inst.con_id)
        return [inst.con_id for inst in found]

    def end_of_day(self) -> dict[str, Any]:
        """Close the trading day: MOC / LOC orders fill in the closing auction, then every working
        DAY order expires (Cancelled, error 202 to its owner)."""
        events = self.engine.end_of_day()
        self.apply(events)
        return {
            "expired": sum(
                1 for e in events if isinstance(e, OrderStatusEvent) and e.order.status == "Cancelled"
            )
        }

    def state(self) -> dict[str, Any]:
        """The GET /state document (orders, executions, positions, account values, faults)."""
        doc = self.engine.state()
        doc["clients"] = sorted(self.by_client)
        doc["faults"] = {
            "delayMs": self.ack_delay * 1000.0,
            "refusing": time.monotonic() < self.refusing_until,
            "outage": self.outage,
            "fillsPaused": self.engine.fills_paused,
            "rejectNext": len(self.engine.reject_queue),
        }
        doc["marketData"] = self.market_data
        doc["port"] = self._port
        doc["stats"] = dict(self.stats)
        return doc

    def reset(self) -> None:
        """Forget orders, fills, positions, prices and faults (connections stay open)."""
        self.engine.reset()
        self.set_market_data(self._market_data_default)
        self.ack_delay = 0.0
        self.refusing_until = 0.0
        self._schedule_save()

    # ------------------------------------------------------------- persistence and walk

    def _schedule_save(self) -> None:
        if self.state_file is None or self._save_handle is not None:
            return
        loop = asyncio.get_running_loop()
        self._save_handle = loop.call_later(0.2, self._save_now)

    def _save_now(self) -> None:
        self._save_handle = None
        self.save_state()

    def save_state(self) -> None:
        """Write the engine's state to --state (atomically)."""
        if self.state_file is None:
            return
        tmp = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
        try:
            tmp.write_text(json.dumps(self.engine.dump()), encoding="utf-8")
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.error("could not write state to %s: %s", self.state_file, exc)

    async def _walk_loop(self) -> None:
        while True:
            await asyncio.sleep(self.walk_interval)
            events: list[Event] = []
            for inst in list(self.catalog):
                price = self.engine.market.price(inst.con_id)
                step = math.exp(self._rng.gauss(0.0, self.walk_volatility))
                new = round_to_tick(price * step, inst.min_tick)
                if new > 0 and new != price:
                    events += self.engine.set_price(inst.con_id, new)
            # one batch per step: each subscriber gets one round of account updates, not one per contract
            self.apply(events)


def _request_id(fields: list[str]) -> int:
    """Best guess at the request / order id of a client message, for error replies."""
    try:
        msg_id = int(fields[0])
    except (ValueError, IndexError):
        return -1
    index = {
        ids.PLACE_ORDER: 1,
        ids.CANCEL_ORDER: 2,
        ids.REQ_CONTRACT_DATA: 2,
        ids.REQ_MKT_DATA: 2,
        ids.REQ_EXECUTIONS: 2,
        ids.REQ_ACCOUNT_SUMMARY: 2,
        ids.REQ_ACCOUNT_UPDATES_MULTI: 2,
        ids.REQ_MATCHING_SYMBOLS: 1,
        ids.REQ_PNL: 1,
        ids.REQ_PNL_SINGLE: 1,
    }.get(msg_id)
    if index is None:
        index = UNSERVED_REQUESTS.get(msg_id, (None,))[0]
    if index is None or index >= len(fields):
        return -1
    try:
        return int(fields[index])
    except ValueError:
        return -1


__all__ = ["SimServer", "Session"]
