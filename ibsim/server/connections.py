"""Client connections: listening (and refusing), the handshake, the read loop with pacing,
startApi, and dispatch of each message to its request handler.

A duplicate clientId (or one whose old session IB still holds: the ``hold_session`` fault) gets
error 326 and the socket is closed; requests the ``stall_sync`` fault names go unanswered. Pacing: each client has a token
bucket ``pacing_limit`` messages deep refilled at that rate; a message that finds it empty is
answered with error 100 and dropped (clients that connect with ``+PACEAPI`` are slowed down
instead). A client silent for 10 s before its handshake is closed; malformed messages get error
201 (placeOrder) or 320.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass

from ibsim.engine.core import Engine
from ibsim.framing import (
    HANDSHAKE_PREFIX,
    FieldError,
    FieldReader,
    ProtocolError,
    parse_version_range,
    split_payload,
    unpack_length,
)
from ibsim.handlers.dispatch import Handler, answer_unserved, request_id
from ibsim.messages import ids
from ibsim.messages.connection import handshake_reply, managed_accounts, next_valid_id
from ibsim.messages.place_order import parse_place_order
from ibsim.server.conditions import CONNECTIVITY_TEXT, Conditions
from ibsim.session import Session

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
PACING_LIMIT = 50
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
#: unsent output above which the read loop waits for the client to read
_DRAIN_ABOVE = 1 << 20


@dataclass(frozen=True)
class ConnectionSettings:
    """How the API port behaves."""

    host: str = "127.0.0.1"
    pacing: bool = True
    pacing_limit: int = PACING_LIMIT
    farm_notices: bool = True


class Connections:
    """Every client session of one server, and the listener that accepts them."""

    def __init__(
        self,
        engine: Engine,
        handlers: dict[int, Handler],
        conditions: Conditions,
        settings: ConnectionSettings,
        port: int = 0,
    ) -> None:
        self.engine = engine
        self.handlers = handlers
        self.conditions = conditions
        self.settings = settings
        self.sessions: set[Session] = set()
        self.by_client: dict[int, Session] = {}
        self.stats = {"connections": 0, "messages": 0, "protocol_errors": 0, "what_ifs": 0,
                      "mkt_data_snapshots": 0, "mkt_data_streams": 0, "mkt_data_cancels": 0,
                      "client_id_in_use": 0}  # fmt: skip
        #: the API port: as asked until :meth:`listen` binds it, then the bound one
        self.port = port
        self.stopping = False
        self._server: asyncio.base_events.Server | None = None
        #: set by :meth:`end_refusal` to listen again before a refusal's time is up
        self._refusal_over: asyncio.Event | None = None
        #: the refusal the ``drop_mid_bracket`` fault started (kept: a task nobody holds may vanish)
        self._refusal: asyncio.Future[None] | None = None

    # ------------------------------------------------------------- the listener

    async def listen(self, port: int) -> int:
        """Bind the API port (0: any free port); returns the bound port."""
        self._server = await asyncio.start_server(self._handle, self.settings.host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def close_listener(self) -> None:
        """Stop accepting connections."""
        if self._server is not None:
            self._server.close()

    async def wait_closed(self) -> None:
        """Wait (a second at most) for the listener to close."""
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def refuse_for(self, seconds: float) -> None:
        """Stop listening for ``seconds`` (or until :meth:`end_refusal`), then listen on the same
        port again."""
        self.close_listener()
        self._refusal_over = over = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(over.wait(), seconds)
        if self.stopping or self._refusal_over is not over:
            return  # stopping, or a later refusal owns the listener now
        self._refusal_over = None
        for _ in range(50):
            try:
                await self.listen(self.port)
                self.conditions.refusing_until = 0.0
                log.info("accepting connections again on %s", self.port)
                return
            except OSError as exc:
                log.warning("re-listen on %s failed: %s", self.port, exc)
                await asyncio.sleep(0.2)

    def end_refusal(self) -> None:
        """Listen again now if a refusal is under way (the ``clear`` fault)."""
        if self._refusal_over is not None:
            self._refusal_over.set()

    # ------------------------------------------------------------- sessions

    def drop(self, client_id: int | None = None) -> int:
        """Close every client connection (or only that client's); returns how many."""
        count = 0
        for session in list(self.sessions):
            if client_id is not None and session.client_id != client_id:
                continue
            session.close()
            self.forget(session)
            count += 1
        return count

    def close_all(self) -> None:
        """Close every connection (the server stops)."""
        for session in list(self.sessions):
            session.close()

    def broadcast(self, code: int, text: str) -> None:
        """Send error(-1, code, text) to every connected client."""
        for session in list(self.sessions):
            if session.client_id is not None and not session.refused:
                session.error(-1, code, text)

    def forget(self, session: Session) -> None:
        """Close a session and drop it from the tables."""
        session.close()
        self.sessions.discard(session)
        if session.client_id is not None and self.by_client.get(session.client_id) is session:
            del self.by_client[session.client_id]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        if self.stopping or self.conditions.refusing:
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
            self.forget(session)

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
        session.send(handshake_reply(now))

    async def _read_loop(self, session: Session) -> None:
        reader = session.reader
        settings = self.settings
        while not session.closed:
            header = await reader.readexactly(4)
            payload = await reader.readexactly(unpack_length(header))
            fields = split_payload(payload)
            if not fields:
                continue
            self.stats["messages"] += 1
            if settings.pacing and session.client_id is not None:
                count = session.over_pace(settings.pacing_limit)
                if count:
                    if session.pace_api:
                        # +PACEAPI: TWS queues instead of rejecting
                        await asyncio.sleep(1.0 / settings.pacing_limit)
                    else:
                        text = f"Max rate of messages per second has been exceeded:max={settings.pacing_limit} rec={count}"
                        session.error(request_id(fields), 100, text)
                        continue
            try:
                self.dispatch(session, fields)
            except (FieldError, ValueError, IndexError, KeyError, OverflowError) as exc:
                self.stats["protocol_errors"] += 1
                self._bad_request(session, fields, exc)
            if session.writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
                await session.writer.drain()

    def _bad_request(self, session: Session, fields: list[str], exc: Exception) -> None:
        log.warning("client %s sent a malformed message %r: %s", session.client_id, fields[:3], exc)
        if fields[0] == str(ids.PLACE_ORDER) and len(fields) > 1 and fields[1].lstrip("-").isdigit():
            session.error(int(fields[1]), 201, f"Order rejected - reason:Error reading request: {exc}")
        else:
            session.error(request_id(fields), 320, f"Error reading request: {exc}")

    # ------------------------------------------------------------- dispatch

    def dispatch(self, session: Session, fields: list[str]) -> None:
        """Hand one message to its handler (startApi first; unserved requests get their error)."""
        try:
            msg_id = int(fields[0])
        except ValueError as exc:
            raise FieldError(f"bad message id {fields[0]!r}") from exc
        if session.refused:
            return
        if self.conditions.stalled(msg_id):
            log.info("client %s: message %s left unanswered (stall_sync fault)", session.client_id, msg_id)
            return
        if session.client_id is None:
            if msg_id == ids.START_API:
                self._start_api(session, fields)
            else:
                log.warning("message %s before startApi from %s ignored", msg_id, session.peer)
            return
        if msg_id in (ids.PLACE_ORDER, ids.CANCEL_ORDER) and self._paced(session, msg_id, fields):
            return
        handler = self.handlers.get(msg_id)
        if handler is not None:
            handler(session, fields)
            if msg_id == ids.PLACE_ORDER and self.conditions.drop_after_staged > 0:
                self._drop_after_staged(session, fields)
        elif not answer_unserved(session, msg_id, fields):
            log.debug("client %s: ignoring message %s", session.client_id, msg_id)

    def _drop_after_staged(self, session: Session, fields: list[str]) -> None:
        """The ``drop_mid_bracket`` fault: close the connection right after a staged order is read
        (what the client sent after it is never read, as when a connection dies mid-bracket)."""
        order = (
            self.engine.orders.get((session.client_id, int(fields[1])))
            if fields[1].lstrip("-").isdigit()
            else None
        )
        if order is None or order.transmit:
            return
        self.conditions.drop_after_staged -= 1
        log.info("client %s: connection dropped after staged order %s (drop_mid_bracket fault)",
                 session.client_id, order.order_id)  # fmt: skip
        self.forget(session)
        if self.conditions.refuse_after_staged > 0:
            seconds = self.conditions.refuse_after_staged
            self.conditions.refusing_until = time.monotonic() + seconds
            self._refusal = asyncio.ensure_future(self.refuse_for(seconds))

    def _paced(self, session: Session, msg_id: int, fields: list[str]) -> bool:
        """The ``pacing`` fault: IB drops the order message and answers error 100 on its order id
        (no order is created, cancelled or modified; a what-if is not counted)."""
        conditions = self.conditions
        if not conditions.paced_count and not conditions.paced_until:
            return False
        if msg_id == ids.PLACE_ORDER and parse_place_order(fields).what_if:
            return False
        if not conditions.pacing_refuses(session.client_id):
            return False
        self.stats["pacing_refused"] = self.stats.get("pacing_refused", 0) + 1
        limit = self.settings.pacing_limit
        text = f"Max rate of messages per second has been exceeded:max={limit} rec={limit + 1}"
        session.error(request_id(fields), 100, text)
        log.info("client %s: message %s refused for pacing (pacing fault)", session.client_id, msg_id)
        return True

    def _start_api(self, session: Session, fields: list[str]) -> None:
        client_id = FieldReader(fields, 2).int()
        other = self.by_client.get(client_id)
        if (other is not None and not other.closed) or self.conditions.held(client_id):
            self.stats["client_id_in_use"] += 1
            text = "Unable to connect as the client id is already in use. Retry with a unique client id."
            session.error(-1, 326, text)
            asyncio.get_running_loop().call_later(0.05, session.close)
            session.refused = True  # further messages are ignored until the close
            return
        session.client_id = client_id
        self.by_client[client_id] = session
        session.send(managed_accounts(self.engine.account_ids))
        session.send(next_valid_id(self.engine.next_valid_id(client_id)))
        if self.settings.farm_notices:
            for code, text in FARM_NOTICES:
                session.error(-1, code, text)
        if self.conditions.outage:
            session.error(-1, 1100, CONNECTIVITY_TEXT[1100])
