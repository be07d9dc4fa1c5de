"""Dashboard sign-in: the session cookie, its server-side record, and CSRF tokens.

The cookie holds ``<nonce>.<HMAC(token, nonce)>``: a random per-session nonce signed with the
admin token, never the token itself. Changing ``ADMIN_TOKEN`` signs every browser out.
Forms that change state carry ``HMAC(token, "csrf:" + nonce)``: another site can neither read
the cookie nor compute that value, so a cross-site POST fails even where ``SameSite`` is not
honoured.

A signature alone cannot be taken back, so every session also lives in Redis
(:class:`SessionStore`, key ``tv2ib:dashboard:session:<nonce>``): sign-out deletes it (a copied
cookie stops working at once), it ends ``SESSION_MAX_AGE_SECONDS`` after sign-in whatever
happens, and ``SESSION_IDLE_SECONDS`` after the last request. Without Redis no cookie is
accepted (fail closed); the ``Authorization: Bearer`` header still works.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable

import redis

from core.keys import DASHBOARD_SESSION_PREFIX

log = logging.getLogger(__name__)

COOKIE = "tv2ib_session"
# A Bearer-authenticated client has no cookie; browsers never attach a Bearer header on their
# own, so such requests cannot be forged cross-site and share this fixed "nonce".
BEARER_NONCE = "bearer"


def _mac(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def new_cookie(token: str, nonce: str | None = None) -> str:
    """A signed session value for the cookie (a fresh nonce unless given)."""
    nonce = nonce or new_nonce()
    return f"{nonce}.{_mac(token, 'session:' + nonce)}"


def cookie_nonce(token: str, value: str | None) -> str | None:
    """The nonce of a valid cookie value, or None when missing or not signed with ``token``."""
    if not value or "." not in value:
        return None
    nonce, _, signature = value.partition(".")
    if not hmac.compare_digest(signature.encode(), _mac(token, "session:" + nonce).encode()):
        return None
    return nonce


def csrf_token(token: str, nonce: str) -> str:
    """The value state-changing forms of this session must send back."""
    return _mac(token, "csrf:" + nonce)


def csrf_ok(token: str, nonce: str, presented: str | None) -> bool:
    """Constant-time check of a form's CSRF value."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), csrf_token(token, nonce).encode())


class SessionStore:
    """Server-side dashboard sessions in Redis: created at sign-in, ended at sign-out or expiry.

    The record holds the sign-in time; its Redis TTL is the idle lifetime, renewed on each use
    but never past the absolute lifetime.
    """

    def __init__(
        self,
        client: redis.Redis,
        max_age: float,
        idle: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.max_age = max_age
        self.idle = idle
        self.clock = clock

    def create(self) -> str:
        """Record a new session; returns its nonce (raises ``redis.RedisError`` when Redis is down)."""
        nonce = new_nonce()
        self.redis.set(DASHBOARD_SESSION_PREFIX + nonce, f"{self.clock():.3f}", px=self._ttl_ms(self.max_age))
        return nonce

    def touch(self, nonce: str) -> bool:
        """True when the session is live (and extend its idle lifetime); False when ended or unknown."""
        key = DASHBOARD_SESSION_PREFIX + nonce
        try:
            started = self.redis.get(key)
            if started is None:
                return False
            left = self.max_age - (self.clock() - float(started))
            if left <= 0:
                self.redis.delete(key)
                return False
            self.redis.pexpire(key, self._ttl_ms(left))
            return True
        except (redis.RedisError, ValueError) as exc:
            log.warning("dashboard session check failed (%s): treated as signed out", type(exc).__name__)
            return False

    def end(self, nonce: str) -> None:
        """Sign-out: the session stops working everywhere, whoever holds a copy of the cookie."""
        self.redis.delete(DASHBOARD_SESSION_PREFIX + nonce)

    def _ttl_ms(self, left: float) -> int:
        return max(1, int(min(self.idle, left) * 1000))
