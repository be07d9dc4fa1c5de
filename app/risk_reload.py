"""The web's risk file under gunicorn: read by the master at start and on every HUP.

* At start a bad file stops gunicorn before any worker starts: one line naming the file, the line
  and the reason, exit code 2 (the worker's code for the same file).
* On HUP (``systemctl reload``) the master reads the file again for the new workers. Whatever is
  wrong with it (not UTF-8, nested too deep, a Python tag, empty, a bad value), the master lives,
  the web keeps routing with the rules it had, the error is logged and an alarm notice is raised.
  The master only records the alarm (it holds no database connection, and a slow database must
  not hold up a reload); the first new worker writes it to the outbox, once (its dedup key is the
  reload's), and any worker's notifier delivers it.

The master keeps its last good :class:`~core.risk_file.RiskFile` on ``server.app`` (gunicorn's
application object, which every worker inherits when it forks); ``post_worker_init`` hands it to
the worker's :class:`~app.resources.WebResources`.
"""

from __future__ import annotations

import html
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.settings import Settings
from core.risk_file import RiskFile, RiskFileError, load_risk_file, resolve_path

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter

    from core.context import AppContext

log = logging.getLogger(__name__)

EXIT_RISK_FILE = 2  # as the worker (worker/__main__.py) and a bad SYMBOL_MAP_FILE
KEPT = "tv2ib_risk_file"  # server.app attribute: the last good rules
ALARM = "tv2ib_risk_alarm"  # server.app attribute: the failed reload's alarm, for the next worker
# Set by gunicorn's master once it has read RISK_FILE itself: its workers then take the master's
# last good rules (app/resources.py), so a file broken before a HUP does not stop them.
RISK_FILE_FROM_MASTER = "TV2IB_RISK_FILE_FROM_MASTER"


@dataclass(frozen=True)
class ReloadAlarm:
    """A HUP that kept the previous rules: what the notice says, and its dedup key."""

    detail: str
    dedup_key: str


def read(settings: Settings | None) -> RiskFile:
    """RISK_FILE (or config/risk.yaml when present) as the web reads it; :class:`RiskFileError`
    for anything wrong with it."""
    try:
        return load_risk_file(resolve_path(settings.risk_file if settings else None))
    except RiskFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - the loader wraps its own; this is the last net
        raise RiskFileError(f"the risk file cannot be loaded: {type(exc).__name__}: {exc}") from None


def load_at_start(server: Arbiter, settings: Settings | None) -> None:
    """gunicorn's ``on_starting``: a bad file ends the master with exit code 2 and one line."""
    try:
        setattr(server.app, KEPT, read(settings))
    except RiskFileError as exc:
        print(f"tv2ib: risk file error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_RISK_FILE)
    setattr(server.app, ALARM, None)


def reload_on_hup(server: Arbiter, settings: Settings | None, settings_error: str | None) -> None:
    """gunicorn's ``on_reload``: the new rules, or the previous ones and an alarm. Never raises:
    an exception here would end the master (exit 255) and close the port."""
    try:
        if settings is None:  # .env broke since: the setting RISK_FILE itself is unknown
            raise RiskFileError(f"settings not read, RISK_FILE unknown: {settings_error}")
        loaded = read(settings)
    except Exception as exc:  # noqa: BLE001 - RiskFileError, and anything else: the master must live
        reason = str(exc) if isinstance(exc, RiskFileError) else f"{type(exc).__name__}: {exc}"
        server.log.error("tv2ib: risk file error after HUP, the web keeps the rules it had: %s", reason)
        setattr(server.app, ALARM, ReloadAlarm(reason, f"risk_file:web:{time.time_ns()}"))
        return
    setattr(server.app, KEPT, loaded)
    setattr(server.app, ALARM, None)
    server.log.info("tv2ib: HUP: web workers restart with the risk file %s", loaded.path or "(none)")


def raise_alarm(ctx: AppContext, alarm: ReloadAlarm | None) -> threading.Thread | None:
    """Write the failed reload's alarm to the outbox, on a thread of its own (a worker's boot does
    not wait for the database). Every new worker tries; the dedup key keeps it to one notice."""
    if alarm is None:
        return None
    thread = threading.Thread(target=_write_alarm, args=(ctx, alarm), name="risk-file-alarm", daemon=True)
    thread.start()
    return thread


def _write_alarm(ctx: AppContext, alarm: ReloadAlarm) -> None:
    from core.notices import NoticeDraft, enqueue_draft
    from core.routing import read_served

    text = "\n".join(
        [
            "⚠️ <b>Risk file not reloaded</b> (web)",
            html.escape(alarm.detail[:1500]),
            "the web keeps routing alerts with the rules it had; fix the file and reload again",
        ]
    )
    try:
        simulator = read_served(ctx.redis).simulator  # the workers trade ibsim: say so
        with ctx.sessions.begin() as session:
            enqueue_draft(
                session, NoticeDraft("alarm", text, alarm.dedup_key), ctx.settings, simulator=simulator
            )
    except Exception:  # noqa: BLE001 - the master's log line already says it
        log.exception("the risk file alarm was not written")
