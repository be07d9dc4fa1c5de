"""Per-address limits for the webhook and for the admin token.

Who pays which limit (all keyed by client address, fixed windows; the limits are parsed with the
``limits`` library that flask-limiter is built on, the counting is ours):

* A request carrying a **valid secret** (a trader's alert): only ``AUTHENTICATED_RATE_LIMIT``
  (default 6000/minute), counted in this process by :class:`BurstAllowance`, no Redis call.
  TradingView sends every alert of every trader from four fixed addresses, and a strategy on 100+
  tickers fires them all in the same second at bar close: this ceiling is a fuse against a runaway
  sender, not a throttle. Nothing else refuses a valid secret here: failures of OTHER senders on
  the same address never lock a trader out.
* A request **without a valid secret** (none, a wrong one, a body too broken to read one, an
  address ``TRADINGVIEW_IPS_ONLY`` refuses): ``RATE_LIMIT`` (default 120/minute), and for failed
  authentication ``AUTH_FAILURE_LIMIT`` (default 10/minute); past either, such requests get 429.
  Counted in Redis (shared by every web process) in one Lua call per request; the same call
  counts the request for the ``auth_failed`` notice (:mod:`core.notice_digest`).
* A wrong **admin token** (``/api``, the dashboard, ``/readyz`` details): ``ADMIN_AUTH_FAILURE_LIMIT``
  (default 10/minute) on its own Redis counter (:class:`AuthFailureLockout`), so webhook guessing
  never locks the admin out and the reverse. Once exhausted the address gets 429 BEFORE the token
  is compared, so guessing gains no information.

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

from core.keys import RATE_LIMIT_PREFIX
from core.notice_digest import (
    AUTH_BUCKET,
    COUNT_AUTH_FAILURE,
    DUE_KEY,
    MAX_AUTH_ADDRESSES,
    auth_field,
    bucket_ttl,
)

log = logging.getLogger(__name__)

# KEYS: request counter, failure counter, then the auth_failed notice's bucket and due set.
# ARGV: request TTL, failure TTL, '1' for a failed authentication (counted even past the limit:
# every refused guess was still a guess), then, to count the request for the notice, ARGV 4-8 of
# core.notice_digest.COUNT_AUTH_FAILURE (ARGV[4] empty: not counted).
_UNAUTHENTICATED = (
    """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local failures
if ARGV[3] == '1' then
  failures = redis.call('INCR', KEYS[2])
  if failures == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
else
  failures = tonumber(redis.call('GET', KEYS[2]) or '0')
end
if ARGV[4] ~= '' then
"""
    + COUNT_AUTH_FAILURE
    + """
end
return {n, failures}
"""
)
_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def _window_key(kind: str, item: RateLimitItem, address: str) -> str:
    window = int(time.time() // item.get_expiry())
    return f"{RATE_LIMIT_PREFIX}:{kind}:{address}:{window}"


class _StorageWarning:
    """One warning per 30 s while Redis is unreachable (the limits then fail open)."""

    def __init__(self) -> None:
        self._warned_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, exc: Exception) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._warned_at > 30:
                self._warned_at = now
                log.warning("rate limiter storage unreachable (%s); not limiting", type(exc).__name__)


class BurstAllowance:
    """``AUTHENTICATED_RATE_LIMIT``: valid alerts per address, counted in THIS process.

    Why not Redis: at intake's saturation the limiter's Redis round trip was 28% of the wall time
    of a request, more than the database insert, for a ceiling a real trader almost never reaches.
    Each gunicorn worker process keeps its own count, so an address gets at least the configured
    number per window and at most ``WEB_WORKERS`` times it. That is the right side to err on: the
    senders are authenticated, and refusing a valid alert loses a trade. Only the current window's
    addresses are kept, so memory stays bounded by the senders of one window.
    """

    def __init__(self, limit: str):
        self.item: RateLimitItem = parse(limit)
        self._window = -1
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, address: str) -> bool:
        """Count one valid alert from ``address``: False when it is over the ceiling."""
        window = int(time.time() // self.item.get_expiry())
        with self._lock:
            if window != self._window:
                self._window = window
                self._counts = {}
            count = self._counts.get(address, 0) + 1
            self._counts[address] = count
        return count <= self.item.amount


class WebhookLimiter:
    """The webhook's limits: in process for valid secrets, in Redis for everything else."""

    def __init__(
        self,
        client: redis.Redis,
        rate_limit: str,
        auth_failure_limit: str,
        authenticated_rate_limit: str,
        failure_digest_seconds: float | None = None,
    ):
        """``failure_digest_seconds``: count failed authentications for the ``auth_failed``
        notice, reported once per run of this many seconds (None: not counted)."""
        self.rate: RateLimitItem = parse(rate_limit)
        self.failure_digest_seconds = failure_digest_seconds
        self.auth_failures: RateLimitItem = parse(auth_failure_limit)
        self.authenticated = BurstAllowance(authenticated_rate_limit)
        self._unauthenticated = client.register_script(_UNAUTHENTICATED)
        self._storage_down = _StorageWarning()

    def authenticated_ok(self, address: str) -> bool:
        """Count one request with a valid secret; False past ``AUTHENTICATED_RATE_LIMIT``."""
        return self.authenticated.take(address)

    def unauthenticated(
        self, address: str, *, auth_failure: bool, cause: str | None = None
    ) -> RateLimitItem | None:
        """Count one request WITHOUT a valid secret (``auth_failure``: it presented a wrong one,
        or came from an address that may not send). ``cause`` (see
        :data:`core.intake_notices.CAUSE_TEXTS`) counts it for the ``auth_failed`` notice too.
        Returns the limit it is over (answer 429), or None. One Redis call, the notice's count
        included."""
        keys = [
            _window_key("req", self.rate, address),
            _window_key("authfail", self.auth_failures, address),
            AUTH_BUCKET,
            DUE_KEY,
        ]
        args: list[str | int | float] = [
            self.rate.get_expiry() + 1,
            self.auth_failures.get_expiry() + 1,
            int(auth_failure),
        ]
        window = self.failure_digest_seconds
        if cause is not None and window is not None:
            args += [
                auth_field(cause, address),
                repr(time.time()),
                window,
                MAX_AUTH_ADDRESSES,
                bucket_ttl(window),
            ]
        else:
            args.append("")
        try:
            count, failures = self._unauthenticated(keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            self._storage_down(exc)
            return None
        if int(count) > self.rate.amount:
            return self.rate
        if auth_failure and int(failures) > self.auth_failures.amount:
            return self.auth_failures
        return None


class AuthFailureLockout:
    """Failed admin-token attempts per address (``ADMIN_AUTH_FAILURE_LIMIT``), in Redis.

    Callers check :meth:`auth_attempts_left` BEFORE comparing the token and
    :meth:`record_auth_failure` after a wrong one."""

    def __init__(self, client: redis.Redis, limit: str, kind: str = "adminfail"):
        self.limit: RateLimitItem = parse(limit)
        self.kind = kind
        self._redis = client
        self._fail = client.register_script(_FAIL)
        self._storage_down = _StorageWarning()

    def auth_attempts_left(self, address: str) -> bool:
        """False when ``address`` used up its failed-authentication allowance."""
        try:
            failures = self._redis.get(_window_key(self.kind, self.limit, address))
        except (redis.RedisError, OSError) as exc:
            self._storage_down(exc)
            return True
        return int(failures or 0) < self.limit.amount

    def record_auth_failure(self, address: str) -> None:
        """Count one failed authentication from ``address``."""
        key = _window_key(self.kind, self.limit, address)
        try:
            self._fail(keys=[key], args=[self.limit.get_expiry() + 1])
        except (redis.RedisError, OSError) as exc:
            self._storage_down(exc)
