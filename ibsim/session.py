"""One client connection: its clientId, subscriptions, pacing window, ordered output queue and the
lanes a latency profile holds answers back in (:mod:`ibsim.lanes`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from ibsim.framing import frame
from ibsim.lanes import Lanes
from ibsim.latency import Held
from ibsim.messages.connection import error as error_message

log = logging.getLogger(__name__)

#: a client whose unread output exceeds this is disconnected (it stopped reading)
MAX_OUTPUT_BUFFER = 32 << 20


class Session:
    """One client connection: its clientId, subscriptions and outgoing queue."""

    def __init__(self, server: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        self.peer = writer.get_extra_info("peername")
        self.positions = False
        self.account_updates: str | None = None
        self.multi: dict[int, str] = {}
        self.summary: dict[int, tuple[str, set[str] | None]] = {}
        self.mkt: dict[int, int] = {}
        #: reqMarketDataType of this connection (1 live, 2 frozen, 3 delayed, 4 delayed frozen); TWS
        #: keeps it per API connection until the client changes it
        self.market_data_type = 1
        #: the data type each streaming subscription delivers (3/4: delayed tick types 66...)
        self.mkt_type: dict[int, int] = {}
        self.pnl: dict[int, str] = {}
        self.pnl_single: dict[int, tuple[str, int]] = {}
        self.pace_api = False
        self._tokens: float | None = None  # pacing bucket, filled on first use
        self._last_arrival = 0.0
        self._window_start = 0.0
        self._window_count = 0
        self._queue: deque[tuple[float, bytes]] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._lanes = Lanes(self._write)
        #: (lane, delay, held) for every message sent inside :meth:`holding`
        self._hold: tuple[str, float, Held | None] | None = None
        self.closed = False
        self.refused = False

    # ------------------------------------------------------------- output

    def send(
        self, fields: Sequence[object], delay: float = 0.0, lane: str = "", held: Held | None = None
    ) -> float:
        """Queue one message; ``delay`` seconds hold it back. Without ``lane`` (or with an idle lane
        and no delay) it takes the connection's ordered queue (FIFO order is kept); in a ``lane``
        it waits only for that lane's earlier messages. Returns when it is due (``time.monotonic()``)."""
        if self.closed:
            return 0.0
        data = frame(fields)
        if self._hold is not None:
            hold_lane, hold_delay, hold_held = self._hold
            lane, delay, held = lane or hold_lane, max(delay, hold_delay), held or hold_held
        if lane and (delay > 0 or self._lanes.busy(lane)):
            return self._lanes.put(lane, delay, data, held)
        now = time.monotonic()
        if delay <= 0 and not self._queue:
            self._write(data)
            return now
        self._queue.append((now + max(0.0, delay), data))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._drain_queue())
        return self._queue[-1][0]

    @contextlib.contextmanager
    def holding(self, lane: str, delay: float, held: Held | None = None) -> Iterator[None]:
        """Every message sent inside goes to ``lane``, held back at least ``delay`` seconds (a
        handler's whole answer under the latency profile); ``held`` is stamped when it is written."""
        previous = self._hold
        self._hold = (lane, delay, held)
        try:
            yield
        finally:
            self._hold = previous

    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > MAX_OUTPUT_BUFFER:
            # a client that stopped reading would otherwise grow our memory without bound
            log.warning("client %s does not read its messages; disconnecting it", self.client_id)
            self.close()

    async def _drain_queue(self) -> None:
        while self._queue and not self.closed:
            due, data = self._queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._queue.popleft()
            self.writer.write(data)

    def error(self, req_id: int, code: int, text: str, delay: float = 0.0, lane: str = "") -> float:
        """Send error 4 (see :meth:`send`)."""
        return self.send(error_message(req_id, code, text), delay, lane)

    def close(self) -> None:
        """Close the socket (the client sees EOF)."""
        if self.closed:
            return
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()
        self._lanes.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()

    # ------------------------------------------------------------- pacing

    def over_pace(self, limit: int) -> int:
        """Count one incoming message against ``limit`` per second; 0 if allowed, else this second's count.

        A token bucket (``limit`` deep, refilled at ``limit`` per second) rather than fixed one-second
        windows: a client that keeps to the rate is never refused because the network or a busy
        loop delivered its messages in a bunch, while a real burst above the limit is.
        """
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start = now
            self._window_count = 0
        self._window_count += 1
        if self._tokens is None:
            self._tokens = float(limit)
        else:
            self._tokens = min(float(limit), self._tokens + (now - self._last_arrival) * limit)
        self._last_arrival = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0
        return max(self._window_count, limit + 1)
