"""The commands that read what the server knows: alerts, one alert, orders, positions, status,
execution quality (``performance``), and the live events (``tail``)."""

from __future__ import annotations

import functools
import json

import click

from cli import render, render_execution
from cli.context import EXIT_CODES_HELP, Ctx, command
from core.events import published_kinds
from core.models import ALERT_STATUSES

# what the event stream can carry (a kind it never carries would make ``tail`` wait forever)
EVENT_KINDS: tuple[str, ...] = tuple(sorted(published_kinds()))


@click.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--status",
    type=click.Choice(ALERT_STATUSES, case_sensitive=False),
    metavar="STATE",
    help=f"Only alerts in this state: {', '.join(ALERT_STATUSES)}.",
)
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 500),
    help="How many of the newest alerts.",
)
@command
def alerts(ctx: Ctx, status: str | None, limit: int) -> None:
    """List the newest alerts with their state and reason."""
    with ctx.api() as client:
        rows = client.get("/api/alerts", status=status, limit=limit)["alerts"]
    if ctx.as_json:
        ctx.emit_json(rows)
    else:
        ctx.out.print(render.alerts_table(rows))


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("alert_id")
@command
def alert(ctx: Ctx, alert_id: str) -> None:
    """Show one alert: state, reason, orders, fills and its audit trail."""
    with ctx.api() as client:
        doc = client.get(f"/api/alerts/{alert_id}")
    if ctx.as_json:
        ctx.emit_json(doc)
    else:
        for part in render.alert_detail(doc):
            ctx.out.print(part)


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--working", is_flag=True, help="Only orders that can still fill.")
@command
def orders(ctx: Ctx, working: bool) -> None:
    """List orders as IB last reported them, newest first."""
    with ctx.api() as client:
        rows = client.get("/api/orders", working="1" if working else None)["orders"]
    if ctx.as_json:
        ctx.emit_json(rows)
    else:
        ctx.out.print(render.orders_table(rows, "Working orders" if working else "Orders"))


@click.command(epilog=EXIT_CODES_HELP)
@command
def positions(ctx: Ctx) -> None:
    """List non-zero positions as IB last reported them."""
    with ctx.api() as client:
        rows = client.get("/api/positions")["positions"]
    if ctx.as_json:
        ctx.emit_json(rows)
    else:
        ctx.out.print(render.positions_table(rows))


@click.command(epilog=EXIT_CODES_HELP)
@command
def status(ctx: Ctx) -> None:
    """Paused or not, workers and their IB connection, queue depths, last alert, today's PnL."""
    with ctx.api() as client:
        doc = client.get("/api/status")
    if ctx.as_json:
        ctx.emit_json(doc)
    else:
        ctx.out.print(render.status_panel(doc))


@click.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--strategy", help="Only this strategy, with its newest filled alerts ('(none)': alerts naming none)."
)
@click.option(
    "--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="The window, in days."
)
@command
def performance(ctx: Ctx, strategy: str | None, days: int) -> None:
    """Slippage against the alert's price (positive is a cost) and signal-to-fill latency, per strategy."""
    with ctx.api() as client:
        doc = client.get("/api/performance", strategy=strategy, days=days)
    if ctx.as_json:
        ctx.emit_json(doc)
        return
    ctx.out.print(render_execution.strategies_table(doc["strategies"], doc["days"]))
    if strategy is not None:
        ctx.out.print(render_execution.alerts_table(doc.get("alerts") or []))


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--kind", "kinds", multiple=True, metavar="KIND", type=click.Choice(EVENT_KINDS),
              help=f"Only events of this kind: {', '.join(EVENT_KINDS)}; repeatable.")  # fmt: skip
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many events.")
@command
def tail(ctx: Ctx, kinds: tuple[str, ...], count: int | None) -> None:
    """Print live events as the worker publishes them (GET /api/events), until Ctrl-C.

    With --json each event is one JSON line: {"event": KIND, "data": {...}}.
    """
    from datetime import UTC, datetime

    from cli.events import describe, parse_sse

    seen = 0
    with ctx.api() as client:
        try:
            opened = functools.partial(
                ctx.err.print, f"following live events from {client.url} (Ctrl-C to stop)"
            )
            for kind, data in parse_sse(client.stream_lines("/api/events", on_open=opened)):
                if kinds and kind not in kinds:
                    continue
                if ctx.as_json:
                    click.echo(json.dumps({"event": kind, "data": data}, default=str))
                else:
                    stamp = datetime.now(UTC).strftime("%H:%M:%S")
                    ctx.out.print(f"[dim]{stamp}[/] {describe(kind, data)}", markup=True)
                seen += 1
                if count is not None and seen >= count:
                    return
        except KeyboardInterrupt:
            return
