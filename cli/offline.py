"""The commands that need no running server: ``replay`` (a dry run against a private simulated
stack) and ``db upgrade`` (the migrations the server runs when it starts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli import exitcodes, render
from cli.client import CliError
from cli.context import EXIT_CODES_HELP, Ctx, command

if TYPE_CHECKING:
    from cli.replay import ReplayResult, ReplayRow


@click.command(epilog=EXIT_CODES_HELP)
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

            def step(row: ReplayRow) -> None:
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


def _print_replay(ctx: Ctx, result: ReplayResult) -> None:
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


@click.group(epilog=EXIT_CODES_HELP)
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
