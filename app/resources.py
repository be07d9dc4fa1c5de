"""What one web process builds once, reached through one typed accessor (as flaskr's ``get_db()``).

``create_app`` puts a :class:`WebResources` in ``app.extensions``; each part's ``init_app`` fills
its own field. Views call :func:`resources` (or :func:`get_ctx`) instead of looking up strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from app.dashboard.session import SessionStore
    from app.events import StreamSlots
    from app.metrics import WebhookMetrics
    from app.webhook.intake import Intake
    from app.webhook.ratelimit import AuthFailureLockout
    from core.context import AppContext
    from core.relay import RelayThread

EXTENSION_KEY = "tv2ib"


@dataclass
class WebResources:
    """The shared context plus the per-process parts the blueprints add in ``init_app``."""

    ctx: AppContext
    intake: Intake | None = None
    metrics: WebhookMetrics | None = None
    admin_limiter: AuthFailureLockout | None = None
    streams: StreamSlots | None = None
    sessions: SessionStore | None = None
    relay: RelayThread | None = None  # started by gunicorn's post_worker_init (one per process)

    def close(self) -> None:
        """Where the process ends (gunicorn's worker_exit): stop the relay, then write pending
        ``queued`` marks and close intake's fast-path connections."""
        if self.relay is not None:
            self.relay.stop()
        if self.intake is not None:
            self.intake.close()


def resources(app: Flask | None = None) -> WebResources:
    """This process's resources (the current app's unless ``app`` is given)."""
    return (app or current_app).extensions[EXTENSION_KEY]


def get_ctx(app: Flask | None = None) -> AppContext:
    """Settings, database and Redis of this process."""
    return resources(app).ctx
