"""The floor for this stack: a Flask endpoint that returns 200 and does nothing else.

Served by bench/webhook.py under the same gunicorn settings as the real app
(``gunicorn 'bare_app:create_app()' -c config/gunicorn.conf.py`` with bench/ on PYTHONPATH).
"""

from __future__ import annotations

from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhook")
    def webhook():  # noqa: ANN202
        return jsonify({"status": "ok"}), 200

    @app.get("/healthz")
    def healthz():  # noqa: ANN202
        return jsonify({"status": "ok"})

    return app
