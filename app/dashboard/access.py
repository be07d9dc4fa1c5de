"""The dashboard's blueprint and its door: the sign-in guard every dashboard route passes, the
security headers of every answer, sign-in and sign-out.

The blueprint is defined here, with its guard, so that no route can join it without the guard.
Access: ``ADMIN_TOKEN`` through the login form or an ``Authorization: Bearer`` header (checked by
:func:`app.admin_auth.token_ok`, failures counted like the API's). The browser then holds a signed
per-session cookie (:mod:`app.dashboard.session`). Every POST must carry the session's CSRF token
and, when the browser sends ``Origin``, come from this host.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.admin_auth import admin_limiter, token_ok
from app.dashboard.session import (
    BEARER_NONCE,
    COOKIE,
    SessionStore,
    cookie_nonce,
    csrf_ok,
    csrf_token,
    new_cookie,
)
from app.resources import get_ctx, resources

log = logging.getLogger("app.dashboard")

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard-static",
)
# Endpoints reachable without signing in (the CSS holds nothing secret).
PUBLIC_ENDPOINTS = {"dashboard.login", "dashboard.static"}


def page(template: str, status: int = 200, **context: Any) -> Response:
    """A dashboard template rendered as an HTML response."""
    return Response(render_template(f"dashboard/{template}", **context), status=status, mimetype="text/html")


def _sessions() -> SessionStore:
    return resources().sessions


def _same_origin() -> bool:
    """True unless the browser says the request comes from another origin."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        # Old browsers and curl send neither; the CSRF token still protects them. "null" comes
        # from sandboxed or privacy-stripped contexts and is refused by the token check too.
        return source != "null"
    return urlsplit(source).netloc == request.host


@bp.before_request
def _guard() -> Response | None:
    token = get_ctx().settings.admin_token
    if not token:
        return page("disabled.html", status=403)
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    address = request.remote_addr or "unknown"
    authorization = request.headers.get("Authorization")
    if authorization:
        if not admin_limiter().auth_attempts_left(address):
            return page("login.html", status=429, message="Too many failed attempts; try again later.")
        if not token_ok(token, authorization):
            admin_limiter().record_auth_failure(address)
            return page("login.html", status=401, message="Wrong bearer token.")
        g.dash_nonce = BEARER_NONCE
    else:
        nonce = cookie_nonce(token, request.cookies.get(COOKIE))
        if nonce is None or not _sessions().touch(nonce):
            return page("login.html", status=401, message=None)
        g.dash_nonce = nonce
    if request.method == "POST":
        presented = request.form.get("csrf_token")
        if not _same_origin() or not csrf_ok(token, g.dash_nonce, presented):
            log.warning("dashboard: refused a cross-site or token-less POST to %s", request.path)
            return page("refused.html", status=403)
    return None


@bp.after_request
def _hardening(response: Response) -> Response:
    # No framing (a framed Flatten button is clickjacking bait), scripts only from our own files
    # (no inline script, no eval), fetch/EventSource only to ourselves, nothing cached.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    nonce = g.get("dash_nonce")
    token = get_ctx().settings.admin_token
    return {"csrf_token": csrf_token(token, nonce) if nonce and token else ""}


@bp.post("/login")
def login() -> ResponseReturnValue:
    """Check the admin token from the form and set the signed session cookie."""
    token = get_ctx().settings.admin_token or ""
    address = request.remote_addr or "unknown"
    if not admin_limiter().auth_attempts_left(address):
        return page("login.html", status=429, message="Too many failed attempts; try again later.")
    if not _same_origin():
        # Login CSRF: another site must not sign this browser in to a session of its choosing.
        return page("refused.html", status=403)
    presented = request.form.get("token", "").strip()
    # The same constant-time check as the admin API (one token check in the code base).
    if presented and token_ok(token, f"Bearer {presented}"):
        try:
            nonce = _sessions().create()
        except redis.RedisError:
            return page("login.html", status=503, message="Sign-in needs Redis, which is unreachable.")
        response = redirect(url_for("dashboard.home"))
        response.set_cookie(
            COOKIE,
            new_cookie(token, nonce),
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
            max_age=int(get_ctx().settings.session_max_age_seconds),
        )
        return response
    admin_limiter().record_auth_failure(address)
    return page("login.html", status=401, message="Wrong token.")


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session on the server (a copy of the cookie stops working too) and drop the cookie."""
    if g.dash_nonce != BEARER_NONCE:
        try:
            _sessions().end(g.dash_nonce)
        except redis.RedisError:
            return page(
                "login.html", status=503, message="Sign-out needs Redis, which is unreachable; try again."
            )
    response = redirect(url_for("dashboard.home"))
    response.delete_cookie(
        COOKIE,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return response
