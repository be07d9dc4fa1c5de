"""The TradingView webhook: ``POST /webhook`` (see :mod:`app.webhook.views`)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the webhook route and its rate limiter."""
    from app.webhook import views

    views.init_app(app)
