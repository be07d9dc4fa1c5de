"""What every ``tv2ib`` command shares: the settings (read once), how to print (rich tables on
stdout, or plain JSON with ``--json``), and how a known failure becomes a message and an exit code
(:mod:`cli.exitcodes`)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from rich.console import Console

from cli import exitcodes
from cli.client import ApiClient, CliError
from cli.payload import PayloadError
from cli.settings import CliConfigError, CliSettings, load_cli_settings

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {code}  {meaning}" for code, meaning in sorted(exitcodes.MEANINGS.items())
)


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
