"""What one web process builds once, reached through one typed accessor (as flaskr's ``get_db()``).

``create_app`` puts a :class:`WebResources` in ``app.extensions``, its parts all built at once
(:meth:`WebResources.build`); each blueprint's ``init_app`` only registers routes. Views call
:func:`resources` (or :func:`get_ctx`) instead of looking up strings. The parts' own modules never
import this one: they take what they need as arguments.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from app.dashboard.session import SessionStore
from app.events import StreamSlots
from app.metrics import WebhookMetrics
from app.risk_reload import RISK_FILE_FROM_MASTER
from app.webhook.intake import Intake
from app.webhook.ratelimit import AuthFailureLockout
from core.risk_file import RiskFile

if TYPE_CHECKING:
    from core.context import AppContext
    from core.relay import RelayThread

log = logging.getLogger(__name__)

EXTENSION_KEY = "tv2ib"


@dataclass
class WebResources:
    """The shared context plus the per-process parts the blueprints add in ``init_app``."""

    ctx: AppContext
    # RISK_FILE, read once when the process starts (the web uses its fan-out accounts); a HUP to
    # gunicorn starts new workers, which read it again.
    risk_file: RiskFile
    intake: Intake
    metrics: WebhookMetrics
    admin_limiter: AuthFailureLockout  # failed admin tokens (API, dashboard, /readyz)
    streams: StreamSlots  # live event streams this process may serve at once
    sessions: SessionStore  # the dashboard's server-side sessions
    relay: RelayThread | None = None  # started by gunicorn's post_worker_init (one per process)

    @classmethod
    def build(cls, ctx: AppContext, risk_file: RiskFile) -> WebResources:
        """Every part of one web process, from its context and its risk file."""
        settings = ctx.settings
        return cls(
            ctx,
            risk_file,
            intake=Intake(ctx, risk_file),
            metrics=WebhookMetrics(),
            admin_limiter=AuthFailureLockout(ctx.redis, settings.admin_auth_failure_limit),
            streams=StreamSlots(settings.events_max_streams),
            sessions=SessionStore(ctx.redis, settings.session_max_age_seconds, settings.session_idle_seconds),
        )

    def use_risk_file(self, risk_file: RiskFile) -> None:
        """Route alerts with ``risk_file`` from now on (gunicorn hands each worker the master's copy)."""
        self.risk_file = risk_file
        self.intake.risk_file = risk_file

    def close(self) -> None:
        """Where the process ends (gunicorn's worker_exit): stop the relay, then write pending
        ``queued`` marks and close intake's fast-path connections."""
        if self.relay is not None:
            self.relay.stop()
        self.intake.close()


def resources(app: Flask | None = None) -> WebResources:
    """This process's resources (the current app's unless ``app`` is given)."""
    return (app or current_app).extensions[EXTENSION_KEY]


def load_web_risk_file(risk_file_setting: str | None) -> RiskFile:
    """``RISK_FILE`` for the web (default ``config/risk.yaml`` when present). A bad file ends the
    process: the file, the line and the reason on stderr, ``SystemExit`` with exit code 2 (as the
    worker for the same file).

    Under gunicorn the master has read the file already (it refused to start on a bad one) and
    hands its copy to each worker before the worker serves a request; a file broken since (before a
    HUP) is then logged here and the master's copy, the last good one, is used."""
    from core.risk_file import RiskFileError, load_risk_file, resolve_path

    try:
        return load_risk_file(resolve_path(risk_file_setting))
    except RiskFileError as exc:
        if os.environ.get(RISK_FILE_FROM_MASTER):
            log.error("risk file error: %s; using the rules gunicorn's master read last", exc)
            return RiskFile()  # replaced by the master's copy in post_worker_init, before any request
        print(f"tv2ib: risk file error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def get_ctx(app: Flask | None = None) -> AppContext:
    """Settings, database and Redis of this process."""
    return resources(app).ctx
