"""Live events as server-sent events: ``GET /api/events`` (Bearer) and the dashboard's stream.

The worker publishes every recorded fact as one JSON object on ``keys.EVENTS_CHANNEL``
(``{"type": "fill", ...}``, see docs/worker.md "Recording"); the web app publishes ``paused`` when an
operator pauses or resumes. :func:`sse_stream` turns that channel into ``text/event-stream``:

    retry: 2000
    : connected

    event: fill
    data: {"type": "fill", "alert_id": "...", ...}

One message per event, ``event:`` the event's ``type`` and ``data:`` the JSON on one line.

A stream holds one gunicorn thread for its whole life, and a process has only ``WEB_THREADS``
of them, all also needed for webhook intake. So each process serves at most
``EVENTS_MAX_STREAMS`` at once (more get 503 with a ``Retry-After``), and every stream ends after
``EVENTS_STREAM_SECONDS``: browsers' ``EventSource`` reconnects after the ``retry:`` delay, API
clients do the same. A comment line every ``KEEPALIVE_SECONDS`` keeps proxies from closing an
idle stream and lets the server notice a client that went away.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import redis
from flask import Response, request

from app.errors import error_response
from core.context import AppContext
from core.keys import EVENTS_CHANNEL

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
# Browser's reconnect delay after a stream ends (milliseconds, the SSE ``retry:`` field).
RETRY_MS = 2000
# WSGI environ flag on streaming requests: a deadline on whole responses (if one is ever added
# to the gunicorn worker or a middleware) must exempt them; EVENTS_STREAM_SECONDS bounds them.
# The request-*read* deadline (REQUEST_TIMEOUT_SECONDS) does not concern them: a GET has no body.
STREAMING_ENVIRON_KEY = "tv2ib.streaming"


class StreamSlots:
    """A per-process cap on concurrent event streams (a non-blocking counting semaphore)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self.in_use = 0

    def take(self) -> bool:
        with self._lock:
            if self.in_use >= self.limit:
                return False
            self.in_use += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.in_use = max(0, self.in_use - 1)


def publish(client: redis.Redis, event: Mapping[str, Any]) -> None:
    """Publish one event (a :mod:`core.events` constructor's) from the web app; a Redis outage
    only costs the live update."""
    try:
        client.publish(EVENTS_CHANNEL, json.dumps(event, default=str))
    except redis.RedisError as exc:
        log.warning("could not publish %s event: %s", event.get("type"), type(exc).__name__)


def format_event(raw: bytes | str) -> str | None:
    """One SSE message from a channel message; None for anything that is not a JSON object."""
    try:
        doc = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    kind = str(doc.get("type") or "message")
    # Event names are one token: newlines would end the field and forge another one.
    kind = "".join(ch for ch in kind if ch.isalnum() or ch in "_-.") or "message"
    return f"event: {kind}\ndata: {json.dumps(doc, separators=(',', ':'), default=str)}\n\n"


def sse_stream(
    client: redis.Redis,
    lifetime: float,
    *,
    keepalive: float = KEEPALIVE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """Yield SSE text for every event on the channel until ``lifetime`` seconds have passed."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        try:
            pubsub.subscribe(EVENTS_CHANNEL)
        except redis.RedisError as exc:
            log.warning("event stream: cannot subscribe: %s", type(exc).__name__)
            yield f"retry: {RETRY_MS * 5}\n: redis unavailable; reconnect later\n\n"
            return
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        started = last_sent = clock()
        while (now := clock()) - started < lifetime:
            try:
                message = pubsub.get_message(timeout=min(1.0, max(0.05, lifetime - (now - started))))
            except redis.RedisError as exc:
                log.warning("event stream: Redis lost: %s", type(exc).__name__)
                yield ": redis lost; reconnect\n\n"
                return
            if message is not None and message.get("type") == "message":
                text = format_event(message["data"])
                if text is not None:
                    last_sent = clock()
                    yield text
            elif clock() - last_sent >= keepalive:
                last_sent = clock()
                yield ": keep-alive\n\n"
        yield ": stream lifetime reached; reconnect\n\n"
    finally:
        try:
            pubsub.close()
        except redis.RedisError:
            pass


def stream_response(ctx: AppContext, slots: StreamSlots) -> Response:
    """The ``text/event-stream`` response for the current request, or 503 when ``slots`` (the
    process's) are full."""
    if not slots.take():
        response = error_response(
            503,
            f"too many live event streams on this server process ({slots.limit}, EVENTS_MAX_STREAMS); "
            "retry shortly",
        )
        response.headers["Retry-After"] = "5"
        return response
    request.environ[STREAMING_ENVIRON_KEY] = True
    response = Response(
        sse_stream(ctx.redis, ctx.settings.events_stream_seconds),
        mimetype="text/event-stream",
    )
    # Released when the server closes the response: at the end, on disconnect, or on error.
    response.call_on_close(slots.give_back)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event through at once
    return response
