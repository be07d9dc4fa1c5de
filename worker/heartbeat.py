"""The worker's heartbeat in Redis: a document with a TTL, written every few seconds until shutdown
(intake routes alerts by it, core/routing.py; the dashboard and /status show it). The claims of
the accounts the worker serves are renewed at the same beat (worker/claims.py)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from core import keys

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 3.0


class Heartbeat:
    """Writes ``document()`` under ``key`` every :data:`HEARTBEAT_INTERVAL` seconds, on its thread."""

    def __init__(self, client: redis.Redis, key: str, document: Callable[[], dict[str, Any]],
                 renew: Callable[[], None]) -> None:  # fmt: skip
        self.client = client
        self.key = key
        self.document = document
        self.renew = renew
        self._stop = threading.Event()  # set by shutdown: the claims live until then
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def write(self) -> None:
        """Write the document now (a change the dashboard should see before the next beat)."""
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.key, json.dumps(self.document()), ex=keys.HEARTBEAT_TTL_SECONDS)
            pipe.sadd(keys.WORKERS_SET, self.key)  # how core/routing.py finds it without SCAN
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("heartbeat not written: %s", exc)

    def stop(self) -> None:
        """Stop beating (after the job in hand: a warm stop finishes it under its claims)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def drop(self) -> None:
        """Remove the heartbeat (the worker stopped)."""
        try:
            self.client.delete(self.key)
        except redis.RedisError:
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.renew()
            self.write()
            self._stop.wait(HEARTBEAT_INTERVAL)
