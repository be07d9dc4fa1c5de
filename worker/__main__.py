"""``python -m worker``: run the execution worker with settings from the environment (and .env)."""

from __future__ import annotations

import sys

from config.logging_setup import configure_logging
from config.settings import SettingsError, load_settings
from core.context import AppContext
from core.risk_file import RiskFileError, load_risk_file, resolve_path
from worker.runtime import Worker


def main() -> int:
    """Load settings, build the context, run until SIGTERM."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"tv2ib worker: {exc}", file=sys.stderr)
        return 2
    try:  # a bad risk file stops the worker before it trades, naming the line and the reason
        risk_file = load_risk_file(resolve_path(settings.risk_file))
    except RiskFileError as exc:
        print(f"tv2ib worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    # The IB loop shares the GIL with the database and notifier threads: switch more often than
    # the default 5 ms so an order never waits a whole slice behind a busy database write.
    sys.setswitchinterval(0.0005)
    ctx = AppContext.build(settings)
    try:
        worker = Worker(ctx, risk_file=risk_file)
    except SettingsError as exc:  # a bad SYMBOL_MAP_FILE: its file, line and reason
        print(f"tv2ib worker: {exc}", file=sys.stderr)
        ctx.close()
        return 2
    worker.install_signal_handlers()
    try:
        code = worker.run()
    finally:
        ctx.close()
    if worker.refused:  # another live worker serves this account: exit 2 with the reason, like a bad setting
        print(f"tv2ib worker: {worker.refused}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
