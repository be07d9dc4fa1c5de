"""The ``tv2ib`` command (click): every subcommand, its help text and its exit code.

Human output goes through rich (tables, a live status line) on stdout; ``--json`` prints plain JSON
on stdout instead (errors too, as ``{"error", "message", "fields"}``). Exit codes: :mod:`cli.exitcodes`.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, get_args

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli import exitcodes, render
from cli.client import ApiClient, CliError
from cli.payload import PayloadError, build_alert
from cli.settings import DEFAULT_URL, CliConfigError, CliSettings, load_cli_settings
from core.account_ids import account_id_problem
from core.events import published_kinds
from core.models import ALERT_STATUSES
from core.payload import Action, QuantityType

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {code}  {meaning}" for code, meaning in sorted(exitcodes.MEANINGS.items())
)

# the choices come from the payload's one definition, so the CLI offers exactly what intake accepts
ACTIONS: tuple[str, ...] = get_args(Action)
QUANTITY_TYPES: tuple[str, ...] = get_args(QuantityType)
# what the event stream can carry (a kind it never carries would make ``tail`` wait forever)
EVENT_KINDS: tuple[str, ...] = tuple(sorted(published_kinds()))


class Ctx:
    """What every command gets: the settings (read once) and how to print."""

    def __init__(self, url: str | None, dotenv: str) -> None:
        self._url = url
        self._dotenv = dotenv
        self._settings: CliSettings | None = None
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)
        self.as_json = False

    @property
    def settings(self) -> CliSettings:
        if self._settings is None:
            self._settings = load_cli_settings(self._url, dotenv_path=self._dotenv)
        return self._settings

    def api(self, *, secret: bool = False, token: bool = True, timeout: float = 10.0) -> ApiClient:
        s = self.settings
        return ApiClient(
            s.url,
            secret=s.require_secret() if secret else None,
            token=s.require_token() if token else s.admin_token,
            timeout=timeout,
        )

    def emit_json(self, doc: Any) -> None:
        click.echo(json.dumps(doc, indent=2, default=str))

    def fail(
        self, code: int, message: str, fields: dict[str, Any] | None = None, error: str = "error"
    ) -> NoReturn:
        if self.as_json:
            self.emit_json({"error": error, "message": message, "fields": fields or {}, "exit_code": code})
        else:
            self.err.print(f"[bold red]error:[/] {message}", markup=True)
            for name, problems in (fields or {}).items():
                text = "; ".join(map(str, problems)) if isinstance(problems, list) else str(problems)
                self.err.print(f"  [red]{name}[/]: {text}", markup=True)
        sys.exit(code)


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command ``--json`` and turn known failures into a message and an exit code."""

    @click.option(
        "--json", "as_json", is_flag=True, help="Print plain JSON on stdout (for scripts) instead of tables."
    )
    @click.pass_obj
    @functools.wraps(fn)
    def wrapper(ctx: Ctx, *args: Any, as_json: bool, **kwargs: Any) -> Any:
        ctx.as_json = as_json
        try:
            return fn(ctx, *args, **kwargs)
        except CliError as exc:
            ctx.fail(exc.exit_code, exc.message, exc.fields, error="request")
        except CliConfigError as exc:
            ctx.fail(exitcodes.CONFIG, str(exc), error="config")
        except PayloadError as exc:
            ctx.fail(exitcodes.USAGE, str(exc), error="usage")

    return wrapper


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="TV2IB_URL", default=None, show_envvar=True,
              help=f"The tv2ib server to talk to (default {DEFAULT_URL}).")  # fmt: skip
@click.option("--env-file", default=".env", show_default=True, type=click.Path(dir_okay=False),
              help="The .env file to read WEBHOOK_SECRET, ADMIN_TOKEN and DATABASE_URL from (the environment wins).")  # fmt: skip
@click.version_option(package_name="tv2ib")
@click.pass_context
def cli(click_ctx: click.Context, url: str | None, env_file: str) -> None:
    """tv2ib: send signals to a tv2ib server, watch what it does, replay a strategy's alerts.

    The secret and the admin token come from the same settings as the server's (WEBHOOK_SECRET,
    ADMIN_TOKEN in the environment or .env); each command asks only for what it needs.
    """
    click_ctx.obj = Ctx(url, env_file)


# --------------------------------------------------------------------------------------- send


@cli.command(epilog=EXIT_CODES_HELP)
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


def _follow(ctx: Ctx, client: ApiClient, alert_id: str, timeout: float) -> Any:
    from cli.follow import follow_alert

    if ctx.as_json or not ctx.out.is_terminal:
        return follow_alert(client, alert_id, timeout)
    with ctx.out.status(f"{alert_id} received") as status:
        return follow_alert(
            client, alert_id, timeout, on_update=lambda a: status.update(render.alert_line(a))
        )


# --------------------------------------------------------------------------------------- reading


@cli.command(epilog=EXIT_CODES_HELP)
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


@cli.command(epilog=EXIT_CODES_HELP)
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


@cli.command(epilog=EXIT_CODES_HELP)
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


@cli.command(epilog=EXIT_CODES_HELP)
@command
def positions(ctx: Ctx) -> None:
    """List non-zero positions as IB last reported them."""
    with ctx.api() as client:
        rows = client.get("/api/positions")["positions"]
    if ctx.as_json:
        ctx.emit_json(rows)
    else:
        ctx.out.print(render.positions_table(rows))


@cli.command(epilog=EXIT_CODES_HELP)
@command
def status(ctx: Ctx) -> None:
    """Paused or not, workers and their IB connection, queue depths, last alert, today's PnL."""
    with ctx.api() as client:
        doc = client.get("/api/status")
    if ctx.as_json:
        ctx.emit_json(doc)
    else:
        ctx.out.print(render.status_panel(doc))


# --------------------------------------------------------------------------------------- kill switch


@cli.command(epilog=EXIT_CODES_HELP)
@command
def pause(ctx: Ctx) -> None:
    """Stop new entries (durable); exits and protective orders keep working."""
    with ctx.api() as client:
        doc = client.post("/api/pause")
    ctx.emit_json(doc) if ctx.as_json else ctx.out.print(
        "trading paused: new entries are refused until tv2ib resume"
    )


@cli.command(epilog=EXIT_CODES_HELP)
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


@cli.command(epilog=EXIT_CODES_HELP)
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


# --------------------------------------------------------------------------------------- tail


@cli.command(epilog=EXIT_CODES_HELP)
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


# --------------------------------------------------------------------------------------- replay


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--timeout",
    default=20.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to follow each alert.",
)
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), help="Keep the private stack's logs and SQLite file in this folder.")  # fmt: skip
@command
def replay(ctx: Ctx, file: Path, timeout: float, keep: Path | None) -> None:
    """Dry-run a file of alerts against a private simulated stack and summarise what would have traded.

    FILE has one alert message per line (JSON), as in TradingView's alert log; a time column before
    the JSON is allowed, blank lines and lines starting with # are skipped, other lines are reported.
    The command starts its own redis-server, ibsim, web server and worker on free ports with SQLite in
    a temp dir, so the live server, its queues and the broker are never touched.
    """
    from cli.replay import read_file, run_replay

    parsed = read_file(file)
    if not parsed.alerts:
        ctx.fail(exitcodes.USAGE, f"{file}: no alerts found", {f"line {n}": [why] for n, why in parsed.bad})
    if parsed.bad and not ctx.as_json:
        for number, why in parsed.bad:
            ctx.err.print(f"[yellow]{file}:{number}:[/] skipped: {why}")
    if ctx.as_json or not ctx.out.is_terminal:
        result = run_replay(parsed.alerts, timeout=timeout, keep_dir=keep)
    else:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=ctx.out, transient=True)  # fmt: skip
        with progress:
            task = progress.add_task("starting", total=len(parsed.alerts))

            def step(row: dict[str, Any]) -> None:
                progress.update(
                    task,
                    advance=1,
                    description=f"line {row['line']}: {row['ticker']} {row['action']} -> {row['status']}",
                )

            result = run_replay(parsed.alerts, timeout=timeout, keep_dir=keep, on_step=step,
                                on_phase=lambda what: progress.update(task, description=what))  # fmt: skip
    result.bad_lines = parsed.bad
    if ctx.as_json:
        ctx.emit_json(result.to_json())
        return
    _print_replay(ctx, result)


def _print_replay(ctx: Ctx, result: Any) -> None:
    table = Table(title="Alerts replayed", title_justify="left")
    for column in ("line", "time", "ticker", "action", "outcome", "status", "reason"):
        table.add_column(column, overflow="fold")
    for row in result.rows:
        table.add_row(str(row["line"]), row["time"] or "", str(row["ticker"] or ""), str(row["action"] or ""),
                      render.status_text(row["outcome"]), render.status_text(row["status"]), row["reason"] or "")  # fmt: skip
    ctx.out.print(table)
    ctx.out.print(render.orders_table(result.orders))
    if result.fills:
        ctx.out.print(render.fills_table(result.fills))
    ctx.out.print(render.positions_table(result.positions))
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts().items()))
    pnl = result.realized_pnl()
    ctx.out.print(f"[bold]{len(result.rows)} alerts:[/] {counts}; {len(result.orders)} orders, {len(result.fills)} fills; "
                  f"realized PnL {'n/a' if pnl is None else f'{pnl:,.2f}'}"
                  + (f"; {len(result.bad_lines)} bad lines skipped" if result.bad_lines else ""))  # fmt: skip


# --------------------------------------------------------------------------------------- db


@cli.group(epilog=EXIT_CODES_HELP)
def db() -> None:
    """Database maintenance."""


@db.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--database-url", help="SQLAlchemy URL to migrate (default: DATABASE_URL, as the server reads it)."
)
@command
def upgrade(ctx: Ctx, database_url: str | None) -> None:
    """Run the Alembic migrations up to the latest schema (what the server does when it starts)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import current_revision, head_revision, make_engine, migrate

    url = database_url or ctx.settings.database_url
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        migrate(engine)
        after = current_revision(engine)
    except SQLAlchemyError as exc:
        raise CliError(exitcodes.UNREACHABLE, f"cannot migrate the database: {exc.__class__.__name__}: {exc.orig if hasattr(exc, 'orig') else exc}") from None  # fmt: skip
    finally:
        engine.dispose()
    safe_url = engine.url.render_as_string(hide_password=True)
    doc = {
        "database": safe_url,
        "from": before,
        "to": after,
        "head": head_revision(),
        "changed": before != after,
    }
    if ctx.as_json:
        ctx.emit_json(doc)
    elif before == after:
        ctx.out.print(f"{safe_url} is already at the latest schema ({after})")
    else:
        ctx.out.print(f"{safe_url} migrated from {before or 'empty'} to {after}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tv2ib")
