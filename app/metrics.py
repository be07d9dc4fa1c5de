"""``GET /metrics`` in the Prometheus text format: webhook answers by outcome and a latency histogram.

Under gunicorn the counts cover **every worker process**: its hooks (``app/server_hooks.py``) give each
server start a fresh ``PROMETHEUS_MULTIPROC_DIR`` before the workers fork, prometheus_client then
keeps every process's values in small memory-mapped files there, and a scrape (whichever worker
answers it) sums them with ``MultiProcessCollector``. Counters of a worker that exited stay in the
totals (its files remain), so a restarted worker never makes a counter go backwards.

Without that variable (``flask run``, tests with the test client) each app counts in its own
private registry. The backlog gauge ``tv2ib_alerts_waiting`` comes from the database at scrape
time, so every process reports the same value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from core.models import Alert

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Upper bounds in seconds, chosen around the intake target (a few ms) and TradingView's 3 s timeout.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0)


def multiprocess_dir() -> str | None:
    """The directory shared by the gunicorn workers, when the server set one up."""
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


class WebhookMetrics:
    """The web process's counters (thread-safe; one increment and one observation per request)."""

    def __init__(self) -> None:
        # A private registry: several apps in one process (tests) must not collide in the global one.
        # In multiprocess mode the values live in the shared directory whatever the registry.
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tv2ib_webhook_requests",
            "Webhook requests by outcome and HTTP status (all web worker processes).",
            ["outcome", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tv2ib_webhook_latency_seconds",
            "Time to answer a webhook request (all web worker processes).",
            buckets=BUCKETS,
            registry=self.registry,
        )

    def observe(self, outcome: str, status: int, seconds: float) -> None:
        """Count one webhook answer."""
        self.requests.labels(outcome, str(status)).inc()
        self.latency.observe(seconds)

    def render(self, engine: Engine | None = None) -> bytes:
        """The Prometheus text exposition: every process's counters plus the database backlog."""
        registry = CollectorRegistry(auto_describe=False)
        shared = multiprocess_dir()
        if shared is not None:
            MultiProcessCollector(registry, path=shared)
        else:
            registry.register(_Forward(self.registry))
        if engine is not None:
            registry.register(BacklogCollector(engine))
        return generate_latest(registry)


class _Forward:
    """Expose another registry's metrics inside the per-scrape registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


_WAITING = ("received", "queued", "pending_approval")


class BacklogCollector:
    """Alerts not yet taken by a worker, from the database (the same in every process).

    ``received`` growing means Redis is unreachable (the relay is waiting); ``queued`` growing
    means no worker is consuming; ``pending_approval``: alerts waiting for the trader's approval
    (core/approval.py). Omitted when the database does not answer.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        query = select(Alert.status, func.count()).where(Alert.status.in_(_WAITING)).group_by(Alert.status)
        try:
            with self.engine.connect() as conn:
                counts = dict(conn.execute(query).all())
        except SQLAlchemyError:
            return
        family = GaugeMetricFamily(
            "tv2ib_alerts_waiting",
            "Alerts stored and waiting for a worker, or for the trader's approval, by status (database).",
            labels=["status"],
        )
        for status in _WAITING:
            family.add_metric([status], counts.get(status, 0))
        yield family


def init_app(app: Flask, counters: WebhookMetrics, engine: Engine) -> None:
    """Serve ``counters`` (the process's) and the backlog in ``engine``'s database at ``/metrics``."""

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus text: webhook answers by outcome and status, latency, the alerts waiting."""
        return Response(counters.render(engine), content_type=CONTENT_TYPE_LATEST)
