"""Dashboard sign-in cookie and CSRF tokens, derived from ``ADMIN_TOKEN`` (no server-side state).

The cookie holds ``<nonce>.<HMAC(token, nonce)>``: a random per-session nonce signed with the
admin token, never the token itself. Changing ``ADMIN_TOKEN`` signs every browser out.
Forms that change state carry ``HMAC(token, "csrf:" + nonce)``: another site can neither read
the cookie nor compute that value, so a cross-site POST fails even where ``SameSite`` is not
honoured.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "tv2ib_session"
# A Bearer-authenticated client has no cookie; browsers never attach a Bearer header on their
# own, so such requests cannot be forged cross-site and share this fixed "nonce".
BEARER_NONCE = "bearer"


def _mac(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()


def new_cookie(token: str) -> str:
    """A fresh signed session value for the cookie."""
    nonce = secrets.token_urlsafe(16)
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
