"""Per-address rate limits for the webhook, counted in Redis (fixed windows).

Two limits, both keyed by client address:

* ``RATE_LIMIT`` (default 120/minute): every webhook request.
* ``AUTH_FAILURE_LIMIT`` (default 10/minute): requests refused with 401/403. Once exhausted, the
  address gets 429 BEFORE its secret is even compared, so guessing gains no information.

One Lua script counts the request and reads the address's failure count in a single round trip
(the limits are parsed with the ``limits`` library that flask-limiter is built on; the counting
is ours so intake pays one Redis call, not four).

Fail open: when Redis is unreachable the request is let through and a warning is logged at most
every 30 s. Losing a real alert because the limiter's storage is down would be worse than
briefly not limiting; authentication still applies.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from limits import RateLimitItem, parse

log = logging.getLogger(__name__)

KEY_PREFIX = "tv2ib:limits"
_CHECK = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
return {n, failures}
"""
_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class WebhookLimiter:
    """The two webhook limits on one Redis client."""

    def __init__(self, client: redis.Redis, rate_limit: str, auth_failure_limit: str):
        self._redis = client
        self.rate: RateLimitItem = parse(rate_limit)
        self.auth_failures: RateLimitItem = parse(auth_failure_limit)
        self._check = client.register_script(_CHECK)
        self._fail = client.register_script(_FAIL)
        self._warned_at = 0.0
        self._lock = threading.Lock()

    def _key(self, kind: str, item: RateLimitItem, address: str) -> str:
        window = int(time.time() // item.get_expiry())
        return f"{KEY_PREFIX}:{kind}:{address}:{window}"

    def _storage_down(self, exc: Exception) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._warned_at > 30:
                self._warned_at = now
                log.warning("rate limiter storage unreachable (%s); not limiting", type(exc).__name__)

    def check(self, address: str) -> tuple[bool, bool]:
        """Count one request: (within ``RATE_LIMIT``, failed-authentication attempts left)."""
        keys = [self._key("req", self.rate, address), self._key("authfail", self.auth_failures, address)]
        try:
            count, failures = self._check(keys=keys, args=[self.rate.get_expiry() + 1])
        except (redis.RedisError, OSError) as exc:
            self._storage_down(exc)
            return True, True
        return int(count) <= self.rate.amount, int(failures) < self.auth_failures.amount

    def auth_attempts_left(self, address: str) -> bool:
        """False when ``address`` used up its failed-authentication allowance."""
        try:
            failures = self._redis.get(self._key("authfail", self.auth_failures, address))
        except (redis.RedisError, OSError) as exc:
            self._storage_down(exc)
            return True
        return int(failures or 0) < self.auth_failures.amount

    def record_auth_failure(self, address: str) -> None:
        """Count one failed authentication (401/403) from ``address``."""
        key = self._key("authfail", self.auth_failures, address)
        try:
            self._fail(keys=[key], args=[self.auth_failures.get_expiry() + 1])
        except (redis.RedisError, OSError) as exc:
            self._storage_down(exc)
