"""One client connection: its clientId, subscriptions, pacing window and ordered output queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from ibsim.framing import frame
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
        self.closed = False
        self.refused = False

    # ------------------------------------------------------------- output

    def send(self, fields: Sequence[object], delay: float = 0.0) -> None:
        """Queue one message; ``delay`` seconds hold it back (FIFO order is kept)."""
        if self.closed:
            return
        data = frame(fields)
        if delay <= 0 and not self._queue:
            self.writer.write(data)
            if self.writer.transport.get_write_buffer_size() > MAX_OUTPUT_BUFFER:
                # a client that stopped reading would otherwise grow our memory without bound
                log.warning("client %s does not read its messages; disconnecting it", self.client_id)
                self.close()
            return
        self._queue.append((time.monotonic() + max(0.0, delay), data))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._drain_queue())

    async def _drain_queue(self) -> None:
        while self._queue and not self.closed:
            due, data = self._queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._queue.popleft()
            self.writer.write(data)

    def error(self, req_id: int, code: int, text: str, delay: float = 0.0) -> None:
        """Send error 4."""
        self.send(error_message(req_id, code, text), delay)

    def close(self) -> None:
        """Close the socket (the client sees EOF)."""
        if self.closed:
            return
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()
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
