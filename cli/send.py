"""``tv2ib send``: a signal sent exactly as a TradingView alert would be, followed to its outcome."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, get_args

import click

from cli import exitcodes, render
from cli.client import ApiClient
from cli.context import EXIT_CODES_HELP, Ctx, command
from cli.payload import build_alert
from core.payload import Action, QuantityType

if TYPE_CHECKING:
    from cli.follow import Outcome

# the choices come from the payload's one definition, so the CLI offers exactly what intake accepts
ACTIONS: tuple[str, ...] = get_args(Action)
QUANTITY_TYPES: tuple[str, ...] = get_args(QuantityType)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("ticker")
@click.argument("action", type=click.Choice(ACTIONS, case_sensitive=False))
@click.argument("quantity", required=False)
@click.option(
    "--tp",
    "take_profit",
    metavar="PRICE|PCT%",
    help="Take-profit: an absolute price (195) or a percent from the entry (2%).",
)
@click.option(
    "--sl",
    "stop_loss",
    metavar="PRICE|PCT%",
    help="Stop-loss: an absolute stop price (185) or a percent from the entry (1%).",
)
@click.option("--limit", metavar="PRICE", help="Entry as a limit order at PRICE (with --stop: a stop-limit).")
@click.option(
    "--stop", metavar="PRICE", help="Entry as a stop order triggered at PRICE (with --limit: a stop-limit)."
)
@click.option(
    "--qty-type",
    "quantity_type",
    type=click.Choice(QUANTITY_TYPES),
    help="How QUANTITY is meant (default: a number of shares or contracts).",
)
@click.option(
    "--position-size",
    metavar="N",
    help="The signed position wanted after the trade (TradingView's strategy.position_size); wins over QUANTITY.",
)
@click.option("--strategy", help="Strategy name (per-strategy risk limits and secrets).")
@click.option("--account", help="IB account to route to (default: the worker's account).")
@click.option(
    "--id",
    "alert_id",
    metavar="KEY",
    help="Idempotency key: the same KEY again is answered with the first alert.",
)
@click.option(
    "--price", metavar="PRICE", help="Reference price, as TradingView's {{close}} (sizing, percent targets)."
)
@click.option("--no-wait", is_flag=True, help="Return once the server accepted the alert; do not follow it.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(min=0), help="Seconds to follow the alert before giving up (exit code 7).")  # fmt: skip
@command
def send(
    ctx: Ctx, ticker: str, action: str, quantity: str | None, no_wait: bool, timeout: float, **options: Any
) -> None:
    """Send a signal, exactly as a TradingView alert would, and follow it to its outcome.

    \b
    Examples:
      tv2ib send AAPL buy 10 --tp 2% --sl 1%
      tv2ib send AAPL buy 10 --limit 189.50 --tp 195 --sl 185
      tv2ib send ES1! sell --position-size -2 --strategy trend
      tv2ib send AAPL exit

    Follows GET /api/alerts/ID until the alert is filled, its entry order is working at IB (a limit or
    stop waiting for its price), or it ends otherwise (rejected, cancelled, ...). Following needs
    ADMIN_TOKEN; without it the command returns once the alert is accepted.
    """
    payload = build_alert(ticker, action, quantity, **options)
    with ctx.api(secret=True, token=False) as client:
        answer = client.post_alert(payload)
        alert_id = answer["alert_id"]
        if no_wait or not client.token:
            if ctx.as_json:
                ctx.emit_json(
                    {"alert_id": alert_id, "status": answer.get("status"), "duplicate": answer["duplicate"]}
                )
            else:
                what = "duplicate of" if answer["duplicate"] else "accepted:"
                ctx.out.print(f"{what} alert {alert_id} ({answer.get('status')})")
                if not no_wait:
                    ctx.err.print("not following the alert: ADMIN_TOKEN is not set")
            return
        if answer["duplicate"] and not ctx.as_json:
            ctx.out.print(
                f"duplicate: the server answered with the first alert {alert_id} "
                "(the same signal within the dedup window; give --id to send it again on purpose)"
            )
        outcome = _follow(ctx, client, alert_id, timeout)
    if ctx.as_json:
        ctx.emit_json({"alert_id": alert_id, "outcome": outcome.state, "exit_code": outcome.exit_code,
                       "duplicate": answer["duplicate"], "alert": outcome.alert})  # fmt: skip
    else:
        ctx.out.print(render.alert_line(outcome.alert))
        for part in render.alert_detail(outcome.alert)[1:]:
            if part.title != "Audit trail":
                ctx.out.print(part)
        if outcome.exit_code == exitcodes.REJECTED:
            ctx.err.print(f"[bold red]{outcome.state}:[/] {outcome.alert.get('reason') or 'no reason given'}")
        elif outcome.exit_code == exitcodes.TIMEOUT:
            ctx.err.print(f"[yellow]no outcome within {timeout:g} s;[/] the alert is {outcome.alert.get('status')}; "
                          f"see: tv2ib alert {alert_id}")  # fmt: skip
        elif outcome.state == "working":
            ctx.out.print("the entry order is working at IB")
    sys.exit(outcome.exit_code)


def _follow(ctx: Ctx, client: ApiClient, alert_id: str, timeout: float) -> Outcome:
    from cli.follow import follow_alert

    if ctx.as_json or not ctx.out.is_terminal:
        return follow_alert(client, alert_id, timeout)
    with ctx.out.status(f"{alert_id} received") as status:
        return follow_alert(
            client, alert_id, timeout, on_update=lambda a: status.update(render.alert_line(a))
        )
