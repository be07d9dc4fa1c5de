"""The admin token: one constant-time check, and the failed-attempts counter it shares.

``/api`` (:mod:`app.api`), ``/readyz``'s details (:mod:`app.health`) and the dashboard
(:mod:`app.dashboard.access`) take ``Authorization: Bearer $ADMIN_TOKEN``; failures count towards
the address's ``ADMIN_AUTH_FAILURE_LIMIT`` in all three, apart from the webhook's
``AUTH_FAILURE_LIMIT`` (neither side's failures lock the other out).
"""

from __future__ import annotations

import hmac

from app.resources import resources
from app.webhook.ratelimit import AuthFailureLockout


def admin_limiter() -> AuthFailureLockout:
    """The app's failed-admin-token counter (``ADMIN_AUTH_FAILURE_LIMIT``)."""
    return resources().admin_limiter


def token_ok(expected: str | None, authorization: str | None) -> bool:
    """Constant-time check of an ``Authorization: Bearer <token>`` header."""
    if not expected or not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())
