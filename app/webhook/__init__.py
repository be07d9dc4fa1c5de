"""The TradingView webhook: ``POST /webhook``.

One module per step, in the order a request meets them:

* :mod:`~app.webhook.views`     the route, the canonical log line and the metrics
* :mod:`~app.webhook.intake`    the pipeline (:class:`~app.webhook.intake.Intake`) and its answers
* :mod:`~app.webhook.ratelimit` per-address request and auth-failure limits in Redis (fail open)
* :mod:`~app.webhook.auth`      secret (constant time), per-strategy secrets, TradingView addresses
* :mod:`~app.webhook.parsing`   bounded body read, strict JSON, secret removal for storage
* :mod:`~app.webhook.screening` unknown keys (with hints), unfilled placeholders, deep nesting
* :mod:`~app.webhook.schema`    validation into THE normalised payload (:class:`core.payload.AlertPayload`),
  field by field (:mod:`~app.webhook.fields`) and across fields
* :mod:`~app.webhook.fanout`    one alert, several accounts: the accounts an alert goes to
* :mod:`~app.webhook.dedup`     idempotency keys
* :mod:`~app.webhook.store`     persistence (race-free dedup claims), committed before the answer
* :mod:`~core.enqueue`   the rq job, at most once per alert (shared with :mod:`core.relay`)
* :mod:`~app.webhook.marker`    ``received -> queued`` after the answer, batched
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the webhook route with its intake pipeline."""
    from app.webhook import views

    views.init_app(app)
