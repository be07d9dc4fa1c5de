"""The kill switch: ``pause`` and ``resume`` new entries, ``flatten`` an account (asks first); and
the answer to an alert that waits for approval: ``approve`` / ``reject``."""

from __future__ import annotations

import click

from cli import exitcodes
from cli.context import EXIT_CODES_HELP, Ctx, command
from core.account_ids import account_id_problem


@click.command(epilog=EXIT_CODES_HELP)
@command
def pause(ctx: Ctx) -> None:
    """Stop new entries (durable); exits and protective orders keep working."""
    with ctx.api() as client:
        doc = client.post("/api/pause")
    ctx.emit_json(doc) if ctx.as_json else ctx.out.print(
        "trading paused: new entries are refused until tv2ib resume"
    )


@click.command(epilog=EXIT_CODES_HELP)
@command
def resume(ctx: Ctx) -> None:
    """Allow new entries again after a pause."""
    with ctx.api() as client:
        doc = client.post("/api/resume")
    ctx.emit_json(doc) if ctx.as_json else ctx.out.print("trading resumed: new entries are accepted")


def _account_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--account``: an account id by the alerts' own rule (core/account_ids.py), checked before
    the question is asked."""
    if value is not None and (problem := account_id_problem(value)) is not None:
        raise click.BadParameter(problem)
    return value


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--account", callback=_account_id,
              help="Only this IB account (default: the worker that takes alerts naming no account).")  # fmt: skip
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@command
def flatten(ctx: Ctx, account: str | None, yes: bool) -> None:
    """Cancel every working order and close every position (asks first)."""
    ctx.settings.require_token()
    if not yes:
        target = f"account {account}" if account else "the default account"
        if not click.confirm(
            f"Cancel all working orders and close all positions of {target}?", default=False, err=True
        ):
            ctx.fail(exitcodes.FAILED, "not flattened: the question was answered no", error="declined")
    with ctx.api() as client:
        doc = client.post("/api/flatten", account=account)
    if ctx.as_json:
        ctx.emit_json(doc)
    else:
        ctx.out.print(
            f"flatten requested for {doc.get('account') or 'the default account'} (job {doc.get('job_id')}); "
            "watch it with tv2ib orders"
        )


def _answer(ctx: Ctx, alert_id: str, verb: str) -> None:
    """Approve or reject one alert that waits for approval (POST /api/alerts/<id>/<verb>)."""
    with ctx.api() as client:
        doc = client.post(f"/api/alerts/{alert_id}/{verb}")
    if ctx.as_json:
        ctx.emit_json(doc)
    else:
        done = "approved: the worker decides it now" if verb == "approve" else "rejected: nothing is sent"
        ctx.out.print(f"alert {doc.get('alert_id', alert_id)} {done} ({doc.get('status', '?')})")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("alert_id")
@command
def approve(ctx: Ctx, alert_id: str) -> None:
    """Approve an alert that waits for approval (its strategy has require_approval): the worker
    decides it now, on the position and prices of this moment."""
    _answer(ctx, alert_id, "approve")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("alert_id")
@command
def reject(ctx: Ctx, alert_id: str) -> None:
    """Reject an alert that waits for approval: it ends rejected, nothing is sent."""
    _answer(ctx, alert_id, "reject")
