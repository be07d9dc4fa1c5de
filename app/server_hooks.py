"""gunicorn's hooks for the web process, named by import path in ``config/gunicorn.conf.py``.

The settings file names them (``on_starting = "app.server_hooks.on_starting"``) and gunicorn
imports them, so that ``config/`` (settings) never imports the app above it.

* The master refuses to start on broken settings (one line, exit code 1) or a broken ``RISK_FILE``
  (exit code 2), and reads the risk file again on every HUP (:mod:`app.risk_reload`).
* Each worker starts the outbox relay thread after it boots (a Redis lock makes only one of them
  relay at a time), and writes its pending ``queued`` marks when it exits.
* Metrics from every worker: before any worker forks, the master gives this server start a fresh,
  empty ``PROMETHEUS_MULTIPROC_DIR`` (a new temporary directory, or the operator's own directory
  emptied), where prometheus_client keeps each process's values; ``/metrics`` sums them
  (:mod:`app.metrics`). ``child_exit`` marks a dead worker's live gauges as gone, and the directory
  is removed when gunicorn exits (an operator's own directory is only emptied).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING

from config.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

_METRICS_DIR_OWNED = "TV2IB_METRICS_DIR_OWNED"
# The master imports only what its hooks need, never app.resources (the web's parts) nor
# prometheus_client: prometheus_client picks its value store when imported, so imported in the
# master before _fresh_metrics_dir sets PROMETHEUS_MULTIPROC_DIR, every worker it forks would count
# alone and /metrics would show one worker's counts.


def _settings() -> tuple[Settings | None, str | None]:
    """The settings as the configuration file read them (from ``.env`` and the environment), or why not."""
    try:
        return load_settings(), None
    except SettingsError as exc:
        return None, str(exc)


def on_starting(server: Arbiter) -> None:
    """Refuse to start with broken settings: one clear line, exit code 1, no traceback."""
    settings, error = _settings()
    if error is not None:
        print(f"tv2ib: configuration error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    _check_risk_file(server, settings)
    _fresh_metrics_dir()


def _check_risk_file(server: Arbiter, settings: Settings | None) -> None:
    """A bad RISK_FILE stops the server before any worker starts: exit code 2, file:line: reason.

    The master keeps the file it read on ``server.app`` (gunicorn's application object, which every
    worker inherits when it forks): each worker takes its rules from there (``post_worker_init``),
    so a HUP with a broken file keeps the rules the web had instead of leaving it without workers
    (app/risk_reload.py)."""
    from app.risk_reload import RISK_FILE_FROM_MASTER, load_at_start

    load_at_start(server, settings)
    os.environ[RISK_FILE_FROM_MASTER] = "1"


def on_reload(server: Arbiter) -> None:
    """HUP: read RISK_FILE again for the new workers; a broken file (or any error reading it) is
    logged, the previous rules stay and an alarm notice is raised. Never raises: an exception in
    this hook ends gunicorn's master."""
    from app.risk_reload import reload_on_hup

    settings, error = _settings()
    reload_on_hup(server, settings, error)


def _fresh_metrics_dir() -> None:
    """A fresh multiprocess directory for this server start (leftover files would add old counts)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given and os.environ.get(_METRICS_DIR_OWNED) != given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.unlink(os.path.join(given, name))
        return
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tv2ib-metrics-")
    os.environ[_METRICS_DIR_OWNED] = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_exit(server: Arbiter) -> None:
    """Remove the metrics directory this server created (an operator's own one is left)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and os.environ.get(_METRICS_DIR_OWNED) == path:
        shutil.rmtree(path, ignore_errors=True)


def child_exit(server: Arbiter, worker: Worker) -> None:
    """A dead worker's live gauges leave the totals; its counters stay (totals never go back)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker: Worker) -> None:
    """Start this worker's outbox relay thread (only one process relays at a time)."""
    from core.relay import start_relay_thread

    # Request threads hold the GIL only briefly between I/O; a shorter switch interval (default
    # 5 ms) keeps one thread's CPU burst from adding milliseconds to the others' latency.
    sys.setswitchinterval(0.001)

    from app.resources import EXTENSION_KEY

    extensions = getattr(worker.wsgi, "extensions", {})
    web = extensions.get(EXTENSION_KEY)
    if web is not None:  # not for other apps served with this config (bench's bare app)
        from app.risk_reload import ALARM, KEPT, raise_alarm

        kept = getattr(worker.app, KEPT, None)
        if kept is not None:  # the master's last good RISK_FILE (see _check_risk_file)
            web.use_risk_file(kept)
        raise_alarm(web.ctx, getattr(worker.app, ALARM, None))  # a HUP that kept the rules
        web.relay = start_relay_thread(web.ctx)


def worker_exit(server: Arbiter, worker: Worker) -> None:
    """Write the worker's pending ``queued`` marks (the relay would do it otherwise)."""
    from app.resources import EXTENSION_KEY

    web = getattr(getattr(worker, "wsgi", None), "extensions", {}).get(EXTENSION_KEY)
    if web is not None:
        web.close()
