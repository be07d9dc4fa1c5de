"""The dashboard's controls: pause / resume new entries, flatten (after a confirmation page), and
approve or reject an alert that waits for approval.

The same switches as ``/api/pause``, ``/api/flatten`` and Telegram's commands (:mod:`core.services`).
"""

from __future__ import annotations

import logging

import redis
from flask import Response, redirect, request, url_for
from flask.typing import ResponseReturnValue

from app.dashboard.access import bp, page
from app.events import publish
from app.resources import get_ctx
from core import approval, keys, routing, services
from core import events as core_events

log = logging.getLogger("app.dashboard")


@bp.post("/alerts/<alert_id>/approval")
def approval_decision(alert_id: str) -> Response:
    """Approve or reject an alert that waits for approval (as ``POST /api/alerts/<id>/approve``
    and Telegram's buttons); recorded as the dashboard's on its audit trail."""
    decision, ctx = request.form.get("decision"), get_ctx()
    try:  # the alert's page then shows what it is now (a refusal: decided already, or too late)
        if decision in ("approve", "reject"):
            approval.decide(ctx.sessions, ctx.redis, ctx.settings, alert_id[:26],
                            approve=decision == "approve", by="the dashboard")  # fmt: skip
    except approval.ApprovalRefused as exc:
        log.info("dashboard: %s of alert %s refused: %s", decision, alert_id[:26], exc)
    return redirect(url_for("dashboard.alert", alert_id=alert_id[:26]))


@bp.post("/control")
def toggle() -> ResponseReturnValue:
    """Pause or resume new entries (the same switch as /api/pause and Telegram's /pause)."""
    paused = request.form.get("paused") == "1"
    services.set_paused(get_ctx().sessions, paused, by="dashboard")
    publish(get_ctx().redis, core_events.paused(paused, by="dashboard"))
    return redirect(url_for("dashboard.home"))


def _accounts() -> tuple[list[str], bool]:
    """Accounts a flatten can go to (those live workers serve), and whether any worker runs.

    ``default`` (the queue of alerts naming no account) is no account: its worker trades the
    account it also serves by name, listed already. Without any account known the deployment's own
    account is offered, else "" (the worker that takes alerts naming no account): the job waits on
    its queue until the worker starts (the same rule as ``POST /api/flatten``)."""
    ctx = get_ctx()
    served = routing.read_served(ctx.redis)
    accounts = sorted(a for a in served.accounts if a != keys.DEFAULT_ACCOUNT)
    return (accounts or [ctx.settings.ib_account or ""]), served.workers > 0


def _confirmpage(status: int = 200, refused: str | None = None) -> Response:
    accounts, workers = _accounts()
    return page("flatten_confirm.html", status=status, accounts=accounts, workers=workers, refused=refused)


@bp.get("/flatten")
def flatten_confirm() -> Response:
    """Ask for confirmation before flattening."""
    return _confirmpage()


@bp.post("/flatten")
def flatten() -> Response:
    """Enqueue ``worker.jobs.flatten_all`` on the chosen account's queue and show the job id."""
    account = request.form.get("account") or None
    if request.form.get("confirm") != "yes":
        return _confirmpage(400)
    try:
        result = services.request_flatten(get_ctx().redis, account, by="dashboard")
    except services.FlattenRefused as exc:
        return _confirmpage(422, refused=str(exc))
    except redis.RedisError as exc:
        log.warning("dashboard: flatten not enqueued: %s", type(exc).__name__)
        return page("flatten_done.html", status=503, result=None)
    log.warning("dashboard: flatten requested for %s (job %s)", result["account"] or "the default account",
                result["job_id"])  # fmt: skip
    return page("flatten_done.html", result=result)
