"""Per-address rate limits for the webhook, counted in Redis (the ``limits`` library that
flask-limiter is built on, used directly so the order of checks is ours).

Two limits, both keyed by client address:

* ``RATE_LIMIT`` (default 120/minute): every webhook request.
* ``AUTH_FAILURE_LIMIT`` (default 10/minute): requests refused with 401/403. Once exhausted, the
  address gets 429 BEFORE its secret is even compared, so guessing gains no information.

Fail open: when Redis (the counters' storage) is unreachable the request is let through and a
warning is logged at most every 30 s. Losing a real alert because the limiter's storage is down
would be worse than briefly not limiting; authentication still applies.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)

KEY_PREFIX = "tv2ib:limits"


class WebhookLimiter:
    """The two webhook limits on one Redis connection pool."""

    def __init__(self, client: redis.Redis, rate_limit: str, auth_failure_limit: str):
        storage = RedisStorage("redis://", connection_pool=client.connection_pool, key_prefix=KEY_PREFIX)
        self._limiter = FixedWindowRateLimiter(storage)
        self.rate: RateLimitItem = parse(rate_limit)
        self.auth_failures: RateLimitItem = parse(auth_failure_limit)
        self._warned_at = 0.0
        self._lock = threading.Lock()

    def _storage_down(self, exc: Exception) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._warned_at > 30:
                self._warned_at = now
                log.warning("rate limiter storage unreachable (%s); not limiting", type(exc).__name__)
        return True

    def allow_request(self, address: str) -> bool:
        """Count one request from ``address``; False when over ``RATE_LIMIT``."""
        try:
            return self._limiter.hit(self.rate, "webhook", address)
        except (redis.RedisError, OSError) as exc:
            return self._storage_down(exc)

    def auth_attempts_left(self, address: str) -> bool:
        """False when ``address`` used up its failed-authentication allowance."""
        try:
            return self._limiter.test(self.auth_failures, "auth-failure", address)
        except (redis.RedisError, OSError) as exc:
            return self._storage_down(exc)

    def record_auth_failure(self, address: str) -> None:
        """Count one failed authentication (401/403) from ``address``."""
        try:
            self._limiter.hit(self.auth_failures, "auth-failure", address)
        except (redis.RedisError, OSError) as exc:
            self._storage_down(exc)
