"""gunicorn settings for the web process: ``gunicorn 'app:create_app()' -c config/gunicorn.conf.py``.

Worker class ``gthread`` (threads): each worker process serves ``WEB_THREADS`` requests at once.
Our subclass (``config/gunicorn_gthread.py``) reads every request, headers and whole body, on the
worker's event loop and gives it to a thread only once it is complete; one not complete within
``REQUEST_TIMEOUT_SECONDS`` gets 408. Slow clients therefore hold no thread and cannot stall intake.

The hooks (settings and ``RISK_FILE`` checked in the master before any worker starts, the risk file
read again on HUP, one outbox relay thread per worker, the metrics directory of all the workers)
are the app's: ``app/server_hooks.py``. This file names them by import path, which gunicorn
resolves, so that the settings never import the app above them.
"""

from __future__ import annotations

from config.settings import Settings, SettingsError, load_settings

try:
    _settings: Settings | None = load_settings()
except SettingsError:
    _settings = None  # on_starting says why and exits with code 1

bind = f"0.0.0.0:{_settings.port if _settings else 8000}"
# gthread that reads whole requests before a thread takes them (config/gunicorn_gthread.py).
worker_class = "config.gunicorn_gthread.TimeoutThreadWorker"
workers = _settings.web_workers if _settings else 2
threads = _settings.web_threads if _settings else 4
# A worker whose main loop does not check in for this long is killed and replaced.
timeout = 30
graceful_timeout = 10
# Reverse proxies keep connections open; a few seconds saves a TCP handshake per alert.
# An idle kept-alive connection is closed after 10 s: longer than the idle expiry of the usual
# clients (httpx 5 s, Node about 5 s, nginx's upstream pool in deploy/nginx 8 s), so that the
# client closes first. Equal timeouts race: a request sent as the server closes is reset, and a
# client that does not resend loses the alert.
keepalive = 10
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

on_starting = "app.server_hooks.on_starting"
on_reload = "app.server_hooks.on_reload"
on_exit = "app.server_hooks.on_exit"
child_exit = "app.server_hooks.child_exit"
post_worker_init = "app.server_hooks.post_worker_init"
worker_exit = "app.server_hooks.worker_exit"
