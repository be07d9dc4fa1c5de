"""A modest server-rendered dashboard at ``GET /`` (no build step, no JavaScript).

Shows trading state (paused, workers and IB connection, queues), the newest alerts with their
status and reason, positions and working orders, with pause/resume buttons. It reads the same
:mod:`app.services` functions as the admin API and the Telegram commands.

Access: ``ADMIN_TOKEN`` through a login form (or ``/?token=...`` once); the browser then holds a
cookie with an HMAC of the token (never the token itself), ``HttpOnly`` and ``SameSite=Strict``
so other sites cannot submit the pause/resume forms with it. Without ``ADMIN_TOKEN`` the
dashboard answers 404, like the API.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from flask import Blueprint, Flask, Response, current_app, redirect, render_template_string, request, url_for

from app import services
from app.context import AppContext
from app.errors import error_response

bp = Blueprint("dashboard", __name__)
COOKIE = "tv2ib_session"

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tv2ib</title>
{% if refresh %}<meta http-equiv="refresh" content="5">{% endif %}
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222}
 table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
 .ok{color:#17803d}.bad{color:#b42318}.muted{color:#777}form{display:inline}
 button{padding:.3rem .8rem}pre{background:#f6f6f6;padding:1rem;overflow:auto}
</style></head><body>
<h1>tv2ib</h1>
{{ body|safe }}
</body></html>"""

_LOGIN = """<form method="post" action="{{ url_for('dashboard.login') }}">
<p>{% if failed %}<span class="bad">Wrong token.</span> {% endif %}Admin token:
<input type="password" name="token" autofocus> <button>Sign in</button></p></form>"""

_HOME = """
<p>Trading: {% if status.paused %}<b class="bad">PAUSED</b>{% else %}<b class="ok">active</b>{% endif %}
 <form method="post" action="{{ url_for('dashboard.toggle') }}">
 <input type="hidden" name="paused" value="{{ '0' if status.paused else '1' }}">
 <button>{{ 'Resume' if status.paused else 'Pause' }}</button></form>
 &middot; Redis: {% if status.redis %}<span class="ok">ok</span>{% else %}<span class="bad">down</span>{% endif %}
 &middot; Workers: {% for w in status.workers %}{{ w.account or 'default' }}/{{ w.client_id }}
   IB {% if w.ib_connected %}<span class="ok">connected</span>{% else %}<span class="bad">disconnected</span>{% endif %}
   ({{ w.age_seconds }} s ago){% if not loop.last %}, {% endif %}
 {% else %}<span class="bad">none running</span>{% endfor %}
 &middot; Queues: {% for name, depth in status.queues.items() %}{{ name }}={{ depth }} {% else %}<span class="muted">empty</span>{% endfor %}
 &middot; Today: {{ pnl.fills }} fills, PnL {{ '%.2f'|format(pnl.realized_pnl) }}</p>
<h2>Alerts</h2>
<table><tr><th>received</th><th>id</th><th>status</th><th>strategy</th><th>ticker</th><th>action</th><th>reason</th></tr>
{% for a in alerts %}<tr><td>{{ a.received_at[:19] }}</td>
<td><a href="{{ url_for('dashboard.alert', alert_id=a.id) }}">{{ a.id }}</a></td>
<td>{{ a.status }}</td><td>{{ a.strategy or '' }}</td><td>{{ a.ticker or '' }}</td><td>{{ a.action or '' }}</td>
<td>{{ a.reason or '' }}</td></tr>{% else %}<tr><td colspan="7" class="muted">no alerts yet</td></tr>{% endfor %}</table>
<h2>Positions</h2>
<table><tr><th>account</th><th>symbol</th><th>quantity</th><th>avg cost</th></tr>
{% for p in positions %}<tr><td>{{ p.account }}</td><td>{{ p.local_symbol or p.symbol }}</td><td>{{ p.quantity }}</td>
<td>{{ p.avg_cost }}</td></tr>{% else %}<tr><td colspan="4" class="muted">flat</td></tr>{% endfor %}</table>
<h2>Working orders</h2>
<table><tr><th>alert</th><th>leg</th><th>symbol</th><th>action</th><th>type</th><th>qty</th><th>limit</th><th>stop</th><th>status</th></tr>
{% for o in orders %}<tr><td>{{ o.alert_id }}</td><td>{{ o.leg }}</td><td>{{ o.symbol }}</td><td>{{ o.action }}</td>
<td>{{ o.order_type }}</td><td>{{ o.quantity }}</td><td>{{ o.limit_price or '' }}</td><td>{{ o.stop_price or '' }}</td>
<td>{{ o.status }}</td></tr>{% else %}<tr><td colspan="9" class="muted">none</td></tr>{% endfor %}</table>
<p class="muted">Refreshes every 5 s.</p>"""


def _ctx() -> AppContext:
    return current_app.extensions["tv2ib"]


def _cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"tv2ib-dashboard", hashlib.sha256).hexdigest()


def _signed_in(token: str) -> bool:
    return hmac.compare_digest(request.cookies.get(COOKIE, ""), _cookie_value(token))


def _page(body: str, *, refresh: bool = False, status: int = 200) -> Response:
    html = render_template_string(_LAYOUT, body=body, refresh=refresh)
    return Response(html, status=status, mimetype="text/html")


def _sign_in(token: str) -> Response:
    response = redirect(url_for("dashboard.home"))
    response.set_cookie(COOKIE, _cookie_value(token), httponly=True, samesite="Strict", max_age=7 * 24 * 3600)
    return response


@bp.before_request
def _guard() -> Response | None:
    token = _ctx().settings.admin_token
    if not token:
        return error_response(404, "dashboard disabled: set ADMIN_TOKEN to enable it")
    if request.endpoint == "dashboard.login":
        return None
    presented = request.args.get("token")
    if presented is not None:
        limiter = current_app.extensions["tv2ib_intake"].limiter
        address = request.remote_addr or "unknown"
        if limiter.auth_attempts_left(address) and hmac.compare_digest(presented.encode(), token.encode()):
            return _sign_in(token)
        limiter.record_auth_failure(address)
    if not _signed_in(token):
        return _page(render_template_string(_LOGIN, failed=presented is not None), status=401)
    return None


@bp.post("/login")
def login() -> Response:
    """Check the admin token from the form and set the session cookie."""
    token = _ctx().settings.admin_token or ""
    limiter = current_app.extensions["tv2ib_intake"].limiter
    address = request.remote_addr or "unknown"
    presented = request.form.get("token", "")
    if limiter.auth_attempts_left(address) and hmac.compare_digest(presented.encode(), token.encode()):
        return _sign_in(token)
    limiter.record_auth_failure(address)
    return _page(render_template_string(_LOGIN, failed=True), status=401)


@bp.get("/")
def home() -> Response:
    """State, newest alerts, positions and working orders."""
    ctx = _ctx()
    body = render_template_string(
        _HOME,
        status=services.status(ctx.sessions, ctx.redis),
        pnl=services.pnl_today(ctx.sessions),
        alerts=services.recent_alerts(ctx.sessions, limit=50),
        positions=services.list_positions(ctx.sessions),
        orders=services.list_orders(ctx.sessions, working_only=True),
    )
    return _page(body, refresh=True)


@bp.get("/alerts/<alert_id>")
def alert(alert_id: str) -> Response:
    """One alert in full (payload, raw body, errors, plan, orders, fills, events)."""
    doc = services.get_alert(_ctx().sessions, alert_id[:26])
    if doc is None:
        return _page("<p>No such alert.</p>", status=404)
    body = render_template_string(
        "<p><a href=\"{{ url_for('dashboard.home') }}\">&larr; back</a></p><pre>{{ text }}</pre>",
        text=json.dumps(doc, indent=2, ensure_ascii=False),
    )
    return _page(body)


@bp.post("/control")
def toggle() -> Response:
    """Pause or resume new entries (the same switch as /api/pause and Telegram's /pause)."""
    services.set_paused(_ctx().sessions, request.form.get("paused") == "1", by="dashboard")
    return redirect(url_for("dashboard.home"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
