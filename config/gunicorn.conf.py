"""gunicorn settings for the web process: ``gunicorn 'app:create_app()' -c config/gunicorn.conf.py``.

Worker class ``gthread`` (threads): each worker process serves ``WEB_THREADS`` requests at once.
Our subclass (``config/gunicorn_gthread.py``) reads every request, headers and whole body, on the
worker's event loop and gives it to a thread only once it is complete; one not complete within
``REQUEST_TIMEOUT_SECONDS`` gets 408. Slow clients therefore hold no thread and cannot stall intake.

Each worker starts the outbox relay thread after it boots (``post_worker_init``); a Redis lock
makes only one of them relay at a time. Settings are validated in the master before any worker
starts, so a missing ``WEBHOOK_SECRET`` stops gunicorn with one clear line and exit code 1.

Metrics from every worker: before any worker forks, the master gives this server start a fresh,
empty ``PROMETHEUS_MULTIPROC_DIR`` (a new temporary directory, or the operator's own directory
emptied), where prometheus_client keeps each process's values; ``/metrics`` sums them
(``app/metrics.py``). ``child_exit`` marks a dead worker's live gauges as gone, and the directory
is removed when gunicorn exits (an operator's own directory is only emptied).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from config.settings import Settings, SettingsError, load_settings

try:
    _settings: Settings | None = load_settings()
    _settings_error: str | None = None
except SettingsError as exc:
    _settings, _settings_error = None, str(exc)

bind = f"0.0.0.0:{_settings.port if _settings else 8000}"
# gthread that reads whole requests before a thread takes them (config/gunicorn_gthread.py).
worker_class = "config.gunicorn_gthread.TimeoutThreadWorker"
workers = _settings.web_workers if _settings else 2
threads = _settings.web_threads if _settings else 4
# A worker whose main loop does not check in for this long is killed and replaced.
timeout = 30
graceful_timeout = 10
# Reverse proxies keep connections open; a few seconds saves a TCP handshake per alert.
keepalive = 5
accesslog = None  # the app logs one line per webhook with more useful fields
errorlog = "-"
loglevel = "info"
proc_name = "tv2ib-web"
# gunicorn >= 25 opens a control socket at one fixed per-user path; several servers on one machine
# (tests, benchmarks, a second deployment) would take it from each other. We do not use gunicornc.
control_socket_disable = True
# TRUSTED_PROXIES is applied by the app (werkzeug ProxyFix); gunicorn itself must not rewrite
# the client address or scheme from forwarded headers. Its defaults trust X-Forwarded-Proto (and
# -Ssl, -Protocol) from loopback: any local process, or a proxy passing the client's own header,
# could then make a plain-HTTP request "https" (the dashboard's Secure cookie follows it) even
# with TRUSTED_PROXIES=0. No address is trusted and no header sets the scheme here.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}


def on_starting(server):  # noqa: ANN001 - gunicorn hook signature
    """Refuse to start with broken settings: one clear line, exit code 1, no traceback."""
    if _settings_error is not None:
        print(f"tv2ib: configuration error: {_settings_error}", file=sys.stderr, flush=True)
        sys.exit(1)
    _check_risk_file(server)
    _fresh_metrics_dir()


def _check_risk_file(server) -> None:  # noqa: ANN001 - gunicorn's Arbiter
    """A bad RISK_FILE stops the server before any worker starts: exit code 2, file:line: reason.

    The master keeps the file it read on ``server.app`` (gunicorn's application object, which every
    worker inherits when it forks): each worker takes its rules from there (``post_worker_init``),
    so a HUP with a broken file keeps the rules the web had instead of leaving it without workers
    (app/risk_reload.py)."""
    from app.resources import RISK_FILE_FROM_MASTER
    from app.risk_reload import load_at_start

    load_at_start(server, _settings)
    os.environ[RISK_FILE_FROM_MASTER] = "1"


def on_reload(server):  # noqa: ANN001 - gunicorn hook signature
    """HUP: read RISK_FILE again for the new workers; a broken file (or any error reading it) is
    logged, the previous rules stay and an alarm notice is raised. Never raises: an exception in
    this hook ends gunicorn's master."""
    from app.risk_reload import reload_on_hup

    reload_on_hup(server, _settings, _settings_error)


_METRICS_DIR_OWNED = "TV2IB_METRICS_DIR_OWNED"


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


def on_exit(server):  # noqa: ANN001 - gunicorn hook signature
    """Remove the metrics directory this server created (an operator's own one is left)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and os.environ.get(_METRICS_DIR_OWNED) == path:
        shutil.rmtree(path, ignore_errors=True)


def child_exit(server, worker):  # noqa: ANN001 - gunicorn hook signature
    """A dead worker's live gauges leave the totals; its counters stay (totals never go back)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):  # noqa: ANN001 - gunicorn hook signature
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


def worker_exit(server, worker):  # noqa: ANN001 - gunicorn hook signature
    from app.resources import EXTENSION_KEY

    web = getattr(getattr(worker, "wsgi", None), "extensions", {}).get(EXTENSION_KEY)
    if web is not None:  # pending 'queued' marks are written (the relay would do it otherwise)
        web.close()
