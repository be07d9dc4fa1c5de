"""A server-rendered operator dashboard at ``GET /`` (Jinja templates, one CSS file, one small script).

Shows trading state (paused, database, Redis, workers and IB connection, queues), today's SVG
charts, alerts with search and pages, positions and all orders (working first), one alert in
full, one strategy (:mod:`.pages`), and pause / resume / flatten (flatten asks for confirmation
first). ``static/live.js`` keeps the page current from the server-sent events at ``/events``. Every figure comes from the same
:mod:`core.services` functions as the admin API and the Telegram commands.

Access: ``ADMIN_TOKEN`` through the login form or an ``Authorization: Bearer`` header (checked
by :func:`app.api.token_ok`, failures counted like the API's). The browser then holds a signed
per-session cookie (:mod:`app.dashboard.session`: ``HttpOnly``, ``SameSite=Strict``, ``Secure``
over HTTPS; the session lives on the server, ends at sign-out and expires). The
token is never accepted in a URL: URLs end up in proxy logs and browser history. Every POST
must carry the session's CSRF token and, when the browser sends ``Origin``, come from this
host. Without ``ADMIN_TOKEN`` the dashboard answers 403 with a page saying how to enable it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import (
    Blueprint,
    Flask,
    Response,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.exc import InterfaceError, OperationalError

from app import events
from app.api import admin_limiter, token_ok
from app.dashboard import session as dsession
from app.resources import get_ctx, resources
from core import events as core_events
from core import keys, routing, services
from core.context import AppContext
from core.models import IB_ENDED_UNFILLED_STATUSES, AlertStatus

log = logging.getLogger(__name__)

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard-static",
)
COOKIE = dsession.COOKIE
# Endpoints reachable without signing in (the CSS holds nothing secret).
PUBLIC_ENDPOINTS = {"dashboard.login", "dashboard.static"}
STATUS_CLASS = {
    "received": "st-pending",
    "queued": "st-pending",
    "processing": "st-pending",
    "submitted": "st-working",
    "partially_filled": "st-working",
    "filled": "st-ok",
    "cancelled": "st-muted",
    "duplicate": "st-muted",
    "rejected": "st-bad",
    "invalid": "st-bad",
    "failed": "st-bad",
    "fanned_out": "st-muted",  # a fan-out parent: its children carry the trading states
}


def _ctx() -> AppContext:
    return get_ctx()


# ---- formatting helpers (Jinja filters) -------------------------------------------------------


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_iso(value: str | datetime | None) -> str:
    """``2026-11-22T08:55:01Z`` (seconds precision, always UTC)."""
    moment = _parse(value)
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def age(value: str | datetime | None, now: datetime | None = None) -> str:
    """A short relative age such as ``42 s ago``, ``3 min ago``, ``5 h ago``, ``2 d ago``."""
    moment = _parse(value)
    if moment is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def number(value: Any) -> str:
    """Numbers without float noise (``10`` not ``10.0``); empty for None."""
    if value is None or value == "":
        return ""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{as_float:.10f}".rstrip("0").rstrip(".") if as_float != int(as_float) else str(int(as_float))


def money(value: Any) -> str:
    """Money with thousands separators (``4,123,456`` / ``1,234.50``); empty for None."""
    if value is None or value == "":
        return ""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{amount:,.0f}" if amount == int(amount) else f"{amount:,.2f}"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def status_class(value: str | None) -> str:
    return STATUS_CLASS.get(value or "", "st-muted")


def order_class(order: dict[str, Any]) -> str:
    """Colour of an IB order status: working blue, filled green, refused red, else grey."""
    if order.get("status") in services.WORKING_ORDER_STATUSES:
        return "st-working"
    if order.get("status") == "Filled":
        return "st-ok"
    if order.get("status") in (IB_ENDED_UNFILLED_STATUSES - {"Cancelled"}) | {"Unknown"} or (
        order.get("last_error") and order.get("status") != "Cancelled"
    ):
        return "st-bad"
    return "st-muted"


# ---- access --------------------------------------------------------------------------------------


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(f"dashboard/{template}", **context), status=status, mimetype="text/html")


def _sessions() -> dsession.SessionStore:
    store = resources().sessions
    assert store is not None, "dashboard.init_app not called"
    return store


def _limiter() -> Any:
    return admin_limiter()


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
    token = _ctx().settings.admin_token
    if not token:
        return _page("disabled.html", status=403)
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    address = request.remote_addr or "unknown"
    authorization = request.headers.get("Authorization")
    if authorization:
        if not _limiter().auth_attempts_left(address):
            return _page("login.html", status=429, message="Too many failed attempts; try again later.")
        if not token_ok(token, authorization):
            _limiter().record_auth_failure(address)
            return _page("login.html", status=401, message="Wrong bearer token.")
        g.dash_nonce = dsession.BEARER_NONCE
    else:
        nonce = dsession.cookie_nonce(token, request.cookies.get(COOKIE))
        if nonce is None or not _sessions().touch(nonce):
            return _page("login.html", status=401, message=None)
        g.dash_nonce = nonce
    if request.method == "POST":
        presented = request.form.get("csrf_token")
        if not _same_origin() or not dsession.csrf_ok(token, g.dash_nonce, presented):
            log.warning("dashboard: refused a cross-site or token-less POST to %s", request.path)
            return _page("refused.html", status=403)
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
    return {"csrf_token": dsession.csrf_token(token, nonce) if nonce and token else ""}


@bp.post("/login")
def login() -> Response:
    """Check the admin token from the form and set the signed session cookie."""
    token = _ctx().settings.admin_token or ""
    address = request.remote_addr or "unknown"
    if not _limiter().auth_attempts_left(address):
        return _page("login.html", status=429, message="Too many failed attempts; try again later.")
    if not _same_origin():
        # Login CSRF: another site must not sign this browser in to a session of its choosing.
        return _page("refused.html", status=403)
    presented = request.form.get("token", "").strip()
    # The same constant-time check as the admin API (one token check in the code base).
    if presented and token_ok(token, f"Bearer {presented}"):
        try:
            nonce = _sessions().create()
        except redis.RedisError:
            return _page("login.html", status=503, message="Sign-in needs Redis, which is unreachable.")
        response = redirect(url_for("dashboard.home"))
        response.set_cookie(
            COOKIE,
            dsession.new_cookie(token, nonce),
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
            max_age=int(_ctx().settings.session_max_age_seconds),
        )
        return response
    _limiter().record_auth_failure(address)
    return _page("login.html", status=401, message="Wrong token.")


@bp.post("/logout")
def logout() -> Response:
    """End the session on the server (a copy of the cookie stops working too) and drop the cookie."""
    if g.dash_nonce != dsession.BEARER_NONCE:
        try:
            _sessions().end(g.dash_nonce)
        except redis.RedisError:
            return _page(
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


# ---- pages ---------------------------------------------------------------------------------------


def _working_first(sessions: Any) -> list[dict[str, Any]]:
    # Every working order (however old) on top, then the newest others; each group newest first.
    working = services.list_orders(sessions, working_only=True, limit=500)
    refs = {o["order_ref"] for o in working}
    return working + [o for o in services.list_orders(sessions, limit=100) if o["order_ref"] not in refs]


@bp.get("/")
def home() -> Response:
    """State, today's pictures, alerts (search and pages, see :mod:`.pages`), positions, orders."""
    ctx = _ctx()
    try:
        state = services.status(ctx.sessions, ctx.redis)
        pnl = services.pnl_today(ctx.sessions)
        found = pages.search_context()
        pictures = pages.charts_context()
        positions = services.list_positions(ctx.sessions)
        orders = _working_first(ctx.sessions)
    except (OperationalError, InterfaceError) as exc:
        log.warning("dashboard: database unreachable: %s", type(exc).__name__)
        return _page("home.html", status=503, database_ok=False, refresh=True, statuses=list(AlertStatus))
    return _page(
        "home.html",
        database_ok=True,
        live=True,
        state=state,
        pnl=pnl,
        **found,
        **pictures,
        positions=positions,
        orders=orders,
        working=services.WORKING_ORDER_STATUSES,
        webhook_url=request.host_url + "webhook",
    )


@bp.get("/alerts/<alert_id>")
def alert(alert_id: str) -> Response:
    """One alert in full: summary, raw body, payload, errors, plan, orders, fills, audit trail."""
    doc = services.get_alert(_ctx().sessions, alert_id[:26])
    if doc is None:
        return _page("not_found.html", status=404, alert_id=alert_id[:26])
    plan = doc.get("plan") or None
    extra_plan = {}
    if isinstance(plan, dict):
        shown = {"kind", "legs", "reference_price", "reference_source", "notes", "instrument"}
        extra_plan = {k: v for k, v in plan.items() if k not in shown}
    return _page(
        "alert.html", a=doc, plan=plan, extra_plan=extra_plan, live=True, timeline=pages.alert_timeline(doc)
    )


@bp.post("/control")
def toggle() -> Response:
    """Pause or resume new entries (the same switch as /api/pause and Telegram's /pause)."""
    paused = request.form.get("paused") == "1"
    services.set_paused(_ctx().sessions, paused, by="dashboard")
    events.publish(_ctx().redis, core_events.paused(paused, by="dashboard"))
    return redirect(url_for("dashboard.home"))


def _accounts() -> tuple[list[str], bool]:
    """Accounts a flatten can go to (those live workers serve), and whether any worker runs.

    ``default`` (the queue of alerts naming no account) is no account: its worker trades the
    account it also serves by name, listed already. Without any account known the deployment's own
    account is offered, else "" (the worker that takes alerts naming no account): the job waits on
    its queue until the worker starts (the same rule as ``POST /api/flatten``)."""
    ctx = _ctx()
    served = routing.read_served(ctx.redis)
    accounts = sorted(a for a in served.accounts if a != keys.DEFAULT_ACCOUNT)
    return (accounts or [ctx.settings.ib_account or ""]), served.workers > 0


def _confirm_page(status: int = 200, refused: str | None = None) -> Response:
    accounts, workers = _accounts()
    return _page("flatten_confirm.html", status=status, accounts=accounts, workers=workers, refused=refused)


@bp.get("/flatten")
def flatten_confirm() -> Response:
    """Ask for confirmation before flattening."""
    return _confirm_page()


@bp.post("/flatten")
def flatten() -> Response:
    """Enqueue ``worker.jobs.flatten_all`` on the chosen account's queue and show the job id."""
    account = request.form.get("account") or None
    if request.form.get("confirm") != "yes":
        return _confirm_page(400)
    try:
        result = services.request_flatten(_ctx().redis, account, by="dashboard")
    except services.FlattenRefused as exc:
        return _confirm_page(422, refused=str(exc))
    except redis.RedisError as exc:
        log.warning("dashboard: flatten not enqueued: %s", type(exc).__name__)
        return _page("flatten_done.html", status=503, result=None)
    log.warning("dashboard: flatten requested for %s (job %s)", result["account"] or "the default account",
                result["job_id"])  # fmt: skip
    return _page("flatten_done.html", result=result)


def init_app(app: Flask) -> None:
    """Register the dashboard blueprint and its template filters."""
    app.register_blueprint(bp)
    ctx = get_ctx(app)
    resources(app).sessions = dsession.SessionStore(
        ctx.redis, ctx.settings.session_max_age_seconds, ctx.settings.session_idle_seconds
    )
    app.jinja_env.filters.update(
        utc_iso=utc_iso,
        age=age,
        number=number,
        money=money,
        pretty_json=pretty_json,
        status_class=status_class,
        order_class=order_class,
    )


# Routes of the pictures, search, strategy page and live stream (they use ``bp`` defined above).
from app.dashboard import pages  # noqa: E402
