"""gunicorn's ``gthread`` worker that reads each whole request before it commits a thread.

Stock gthread (27) hands a connection to a pool thread as soon as it is accepted (or a kept-alive
one becomes readable); the thread then parses headers and the app reads the body with a blocking
socket. A client that drips its request a byte at a time holds that thread for as long as it
likes (a per-read timeout does not help: each byte resets it), so 40 such clients delayed valid
alerts by 28 s behind a worker's few threads.

This worker reads every request on the worker's event loop instead (non-blocking, no thread
held), until :func:`config.request_buffer.request_ready` says the headers and the whole body are
in (or the request is already known to be refused). Only then does a thread take it, and it
parses and handles the request from memory. A request not complete within ``REQUEST_TIMEOUT_SECONDS``
of its start (first byte of a kept-alive connection, or the accept) is answered ``408`` from the
loop and closed; a connection that sent nothing is closed silently. Slow clients therefore cost
a socket and a buffer each, never a thread, and a valid alert waits behind none of them.

Each socket handed to a thread also keeps a read/write timeout (``SOCKET_TIMEOUT``): a backstop
for what is still read there (a request handed over early, an HTTPS socket gunicorn terminates
itself, which this worker does not buffer) and for clients that stop reading the response.
"""

from __future__ import annotations

import logging
import selectors
import time
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

from config.request_buffer import request_ready

SOCKET_TIMEOUT = 5.0
DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_MAX_BODY = 64 * 1024
# Read at most this much beyond the body limit on the event loop (a request past the limit is
# handed over at once and the app answers 413).
BODY_SLACK = 16 * 1024
_REQUEST_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)


class _TimedConn(TConn):
    """A connection whose socket has a timeout, and whose parser starts on the buffered bytes."""

    prebuffer = b""

    def init(self) -> None:
        fresh = not self.initialized
        super().init()
        self.sock.settimeout(SOCKET_TIMEOUT)
        if fresh and self.prebuffer and self.parser is not None:
            self.parser.unreader.unread(self.prebuffer)
            self.prebuffer = b""


class _Reading:
    """A request being read on the event loop."""

    __slots__ = ("data", "deadline", "continued")

    def __init__(self, data: bytes, deadline: float) -> None:
        self.data = bytearray(data)
        self.deadline = deadline
        self.continued = False


class _QuietTimeouts(logging.Filter):
    """A timed-out client is routine, not a traceback in the error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], TimeoutError):
            record.msg, record.args, record.exc_info, record.exc_text = (
                "client timed out; connection closed",
                None,
                None,
                None,
            )
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _request_limits() -> tuple[float, int]:
    """(REQUEST_TIMEOUT_SECONDS, MAX_BODY_BYTES) from the settings; defaults for other apps."""
    from config.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError:  # the master already refused to start tv2ib; another app (bench)
        return DEFAULT_REQUEST_TIMEOUT, DEFAULT_MAX_BODY
    return settings.request_timeout_seconds, settings.max_body_bytes


class TimeoutThreadWorker(ThreadWorker):
    """``worker_class = "config.gunicorn_gthread.TimeoutThreadWorker"``."""

    def init_process(self) -> None:
        self.log.error_log.addFilter(_QuietTimeouts())
        self.request_timeout, self.max_body = _request_limits()
        self.buffer_limit = self.max_body + BODY_SLACK
        self.reading: dict[TConn, _Reading] = {}
        super().init_process()

    def enqueue_req(self, conn: TConn) -> None:
        """Called on the event loop for every request gunicorn would give a thread: read it first."""
        if type(conn) is TConn:
            conn.__class__ = _TimedConn  # same object and state, plus the timeout in init()
        if self.cfg.is_ssl or conn.is_http2:
            super().enqueue_req(conn)  # gunicorn's own TLS handshake happens in the thread
            return
        leftover = b""
        if conn.parser is not None:  # kept alive: a body drain may have read ahead
            leftover = conn.parser.unreader.buf.getvalue()
            conn.parser.unreader.buf.seek(0)
            conn.parser.unreader.buf.truncate()
        state = _Reading(leftover, time.monotonic() + self.request_timeout)
        if leftover and request_ready(state.data, self.max_body):
            self._hand_over(conn, state)
            return
        conn.sock.setblocking(False)
        self.reading[conn] = state
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: TConn, _sock: object) -> None:
        state = self.reading.get(conn)
        if state is None:  # handed over or dropped earlier in this round of events
            return
        closed = False
        try:
            while len(state.data) <= self.buffer_limit:
                piece = conn.sock.recv(65536)
                if not piece:
                    closed = True
                    break
                state.data += piece
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(conn)
            return
        try:
            ready = closed or request_ready(state.data, self.max_body)
        except Exception:  # noqa: BLE001 - a bug here must not end the worker's event loop
            self.log.exception("cannot judge a buffered request; handing it to the parser")
            ready = True
        if closed and not state.data:
            self._drop(conn)  # closed before sending anything (e.g. a kept-alive connection)
        elif ready:
            # A client that stopped sending gets its answer from the parser or the app (400).
            self._stop_reading(conn)
            self._hand_over(conn, state)
        else:
            self._maybe_continue(conn, state)

    def _maybe_continue(self, conn: TConn, state: _Reading) -> None:
        # curl and others send "Expect: 100-continue" and hold the body back for a second
        # unless told to go on; gunicorn would say so only in the thread, which waits for the body.
        if state.continued:
            return
        head_end = state.data.find(b"\r\n\r\n")
        if head_end < 0:
            return
        state.continued = True
        head = bytes(state.data[:head_end]).lower()
        if b"\r\nexpect:" in head and b"100-continue" in head and b" http/1.1\r\n" in head:
            try:
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                pass

    def _hand_over(self, conn: TConn, state: _Reading) -> None:
        data = bytes(state.data)
        if conn.parser is not None:
            conn.parser.unreader.unread(data)
        else:
            conn.prebuffer = data  # type: ignore[attr-defined]  # _TimedConn.init() feeds the parser
        conn.data_ready = True
        conn.sock.setblocking(True)
        super().enqueue_req(conn)

    def _stop_reading(self, conn: TConn) -> None:
        del self.reading[conn]
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    def _drop(self, conn: TConn) -> None:
        self._stop_reading(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Runs on the event loop about once a second: also end requests past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        for conn, state in [(c, s) for c, s in self.reading.items() if s.deadline <= now]:
            if state.data:
                body = (
                    b'{"error":"request_timeout","message":"the request did not arrive within %g s"}'
                    % self.request_timeout
                )
                try:
                    conn.sock.send(_REQUEST_TIMEOUT_ANSWER % (len(body), body))
                except OSError:
                    pass
            self.log.debug("request from %s not complete within %g s", conn.client, self.request_timeout)
            self._drop(conn)
