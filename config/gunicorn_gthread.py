"""gunicorn's ``gthread`` worker with a read/write timeout on every client socket.

gunicorn (27) waits for a new connection's first bytes without holding a thread, but once they
arrive a pool thread parses the headers with a *blocking* socket: a client that sends half a
request line and stops ("slowloris") holds that thread forever, and a handful of such clients
stall intake. This worker gives each connection's socket a timeout right after gunicorn makes it
blocking, so a stalled read or write fails after ``SOCKET_TIMEOUT`` seconds and frees the thread
(the app additionally answers 408 when the *body* stalls, see ``app.webhook.parsing``).

The hook is small on purpose: gunicorn calls ``conn.init()`` right after ``setblocking(True)`` for
every request it handles, so a ``TConn`` subclass that sets the timeout in ``init()`` covers new
and kept-alive connections alike.
"""

from __future__ import annotations

import logging

from gunicorn.workers.gthread import TConn, ThreadWorker

SOCKET_TIMEOUT = 5.0


class _TimedConn(TConn):
    def init(self) -> None:
        super().init()
        self.sock.settimeout(SOCKET_TIMEOUT)


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


class TimeoutThreadWorker(ThreadWorker):
    """``worker_class = "config.gunicorn_gthread.TimeoutThreadWorker"``."""

    def init_process(self) -> None:
        self.log.error_log.addFilter(_QuietTimeouts())
        super().init_process()

    def enqueue_req(self, conn: TConn) -> None:
        if type(conn) is TConn:
            conn.__class__ = _TimedConn  # same object and state, plus the timeout in init()
        super().enqueue_req(conn)
