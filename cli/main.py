"""The ``tv2ib`` command (click): the group, its options, and where each subcommand lives.

* :mod:`cli.send`     ``send``: a signal, followed to its outcome
* :mod:`cli.reading`  ``alerts``, ``alert``, ``orders``, ``positions``, ``status``, ``performance``, ``tail``
* :mod:`cli.control`  ``pause``, ``resume``, ``flatten``, ``approve``, ``reject``
* :mod:`cli.offline`  ``replay``, ``db upgrade``
* :mod:`cli.context`  what every command shares: settings, output, failures and exit codes

Human output goes through rich (tables, a live status line) on stdout; ``--json`` prints plain JSON
on stdout instead (errors too, as ``{"error", "message", "fields"}``). Exit codes: :mod:`cli.exitcodes`.
"""

from __future__ import annotations

import click

from cli.context import EXIT_CODES_HELP, Ctx
from cli.control import approve, flatten, pause, reject, resume
from cli.offline import db, replay
from cli.reading import alert, alerts, orders, performance, positions, status, tail
from cli.send import send
from cli.settings import DEFAULT_URL


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


for _command in (
    send,
    alerts,
    alert,
    orders,
    positions,
    status,
    performance,
    pause,
    resume,
    flatten,
    approve,
    reject,
    tail,
    replay,
    db,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tv2ib")
