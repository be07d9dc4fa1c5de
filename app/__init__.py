"""tv2ib web application: ``create_app`` builds the Flask app; gunicorn runs ``'app:create_app()'``.

Nothing is created at import time: the database engine, Redis client and settings live in one
:class:`~core.context.AppContext`, inside the process's :class:`~app.resources.WebResources`
(reached with :func:`app.resources.resources` / :func:`app.resources.get_ctx`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from config.settings import Settings
    from core.context import AppContext


def create_app(settings: Settings | None = None, *, context: AppContext | None = None) -> Flask:
    """Build the web app. Without arguments, settings come from the environment and ``.env``.

    A missing or too short ``WEBHOOK_SECRET`` ends the process with a clear message and exit code 1
    (``SystemExit``), not a traceback; a bad ``RISK_FILE`` ends it with its line and the reason on
    stderr and exit code 2.
    Starting migrates the database to the latest schema.
    """
    from flask import Flask
    from flask.json.provider import DefaultJSONProvider
    from werkzeug.middleware.proxy_fix import ProxyFix

    from app import api, dashboard, errors, health, metrics, openapi, webhook
    from app.resources import EXTENSION_KEY, WebResources, load_web_risk_file
    from config.logging_setup import configure_logging
    from config.settings import SettingsError, load_settings
    from core.context import AppContext

    if context is not None:
        settings = context.settings
    elif settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            raise SystemExit(f"tv2ib: configuration error: {exc}") from None
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    risk_file = load_web_risk_file(settings.risk_file)  # before connecting: a bad file stops us here
    # Alembic narrates every migration check at INFO; core.db logs the one line that matters.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if context is None:
        context = AppContext.build(settings)

    app = Flask(__name__)
    assert isinstance(app.json, DefaultJSONProvider)  # Flask's own, unless replaced
    app.json.sort_keys = False
    web = app.extensions[EXTENSION_KEY] = WebResources.build(context, risk_file)
    if settings.trusted_proxies:
        # ProxyFix takes the N-th value from the right of X-Forwarded-For and X-Forwarded-Proto:
        # entries a client forged on the left are never reached, so a forged header gains nothing.
        # The scheme makes request.is_secure true behind a TLS proxy (Secure dashboard cookie).
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    errors.init_app(app)
    metrics.init_app(app, web.metrics, context.engine)
    health.init_app(app)
    webhook.init_app(app)
    api.init_app(app)
    dashboard.init_app(app)
    openapi.init_app(app)
    return app
