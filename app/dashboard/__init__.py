"""A server-rendered operator dashboard at ``GET /`` (Jinja templates, one CSS file, one small script).

Shows trading state (paused, database, Redis, workers and IB connection, queues), today's SVG
charts, alerts with search and pages, positions and all orders (working first), one alert in
full, one strategy, and pause / resume / flatten (flatten asks for confirmation first).
``static/live.js`` keeps the page current from the server-sent events at ``/events``. Every figure
comes from the same :mod:`core.services` functions as the admin API and the Telegram commands.

* :mod:`~app.dashboard.access`     the blueprint, its sign-in guard and security headers, sign-in and out
* :mod:`~app.dashboard.pages`      home, one alert, one strategy, the live event stream
* :mod:`~app.dashboard.control`    pause / resume, flatten
* :mod:`~app.dashboard.formatting` the Jinja filters: times, ages, numbers, money, status colours
* :mod:`~app.dashboard.charts`     the SVG pictures
* :mod:`~app.dashboard.session`    the signed cookie and the server-side sessions

Access: ``ADMIN_TOKEN`` through the login form or an ``Authorization: Bearer`` header (checked
by :func:`app.admin_auth.token_ok`, failures counted like the API's). The browser then holds a signed
per-session cookie (:mod:`app.dashboard.session`: ``HttpOnly``, ``SameSite=Strict``, ``Secure``
over HTTPS; the session lives on the server, ends at sign-out and expires). The
token is never accepted in a URL: URLs end up in proxy logs and browser history. Every POST
must carry the session's CSRF token and, when the browser sends ``Origin``, come from this
host. Without ``ADMIN_TOKEN`` the dashboard answers 403 with a page saying how to enable it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Register the dashboard blueprint, with the routes of its modules, and its template filters."""
    from app.dashboard import control, pages  # noqa: F401 - importing them adds their routes to the blueprint
    from app.dashboard.access import bp
    from app.dashboard.formatting import FILTERS

    app.register_blueprint(bp)
    app.jinja_env.filters.update(FILTERS)
