"""``GET /metrics`` in the Prometheus text format: webhook answers by outcome and a latency histogram.

Webhook counters are process-local: each gunicorn worker counts its own requests and a scrape
reaches whichever worker accepts it, so successive scrapes may come from different workers. That
is enough to watch outcomes and latency on one machine; for exact totals run one web worker
(``WEB_WORKERS=1``) or count the webhook log lines. The backlog
gauge ``tv2ib_alerts_waiting`` comes from the database, so every process reports the same value.
"""

from __future__ import annotations

import threading
from collections import Counter

from flask import Flask, Response
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from app.models import Alert

# Upper bounds in seconds, chosen around the intake target (a few ms) and TradingView's 3 s timeout.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0)


class WebhookMetrics:
    """Thread-safe counters for one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outcomes: Counter[tuple[str, int]] = Counter()
        self._buckets = [0] * len(BUCKETS)
        self._count = 0
        self._sum = 0.0

    def observe(self, outcome: str, status: int, seconds: float) -> None:
        """Count one webhook answer."""
        with self._lock:
            self._outcomes[(outcome, status)] += 1
            self._count += 1
            self._sum += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._buckets[i] += 1

    def render(self) -> str:
        """The Prometheus text exposition."""
        with self._lock:
            lines = [
                "# HELP tv2ib_webhook_requests_total Webhook requests by outcome and HTTP status (this process).",
                "# TYPE tv2ib_webhook_requests_total counter",
            ]
            for (outcome, status), n in sorted(self._outcomes.items()):
                lines.append(f'tv2ib_webhook_requests_total{{outcome="{outcome}",status="{status}"}} {n}')
            lines += [
                "# HELP tv2ib_webhook_latency_seconds Time to answer a webhook request (this process).",
                "# TYPE tv2ib_webhook_latency_seconds histogram",
            ]
            for bound, n in zip(BUCKETS, self._buckets, strict=True):
                lines.append(f'tv2ib_webhook_latency_seconds_bucket{{le="{bound}"}} {n}')
            lines.append(f'tv2ib_webhook_latency_seconds_bucket{{le="+Inf"}} {self._count}')
            lines.append(f"tv2ib_webhook_latency_seconds_sum {self._sum:.6f}")
            lines.append(f"tv2ib_webhook_latency_seconds_count {self._count}")
        return "\n".join(lines) + "\n"


def get_metrics(app: Flask) -> WebhookMetrics:
    return app.extensions["tv2ib_metrics"]


def backlog_lines(engine: Engine) -> list[str]:
    """Alerts not yet taken by a worker, from the database (the same in every process).

    ``received`` growing means Redis is unreachable (the relay is waiting); ``queued`` growing
    means no worker is consuming. Omitted when the database does not answer.
    """
    query = (
        select(Alert.status, func.count())
        .where(Alert.status.in_(("received", "queued")))
        .group_by(Alert.status)
    )
    try:
        with engine.connect() as conn:
            counts = dict(conn.execute(query).all())
    except SQLAlchemyError:
        return []
    lines = [
        "# HELP tv2ib_alerts_waiting Alerts stored but not yet taken by a worker, by status (database).",
        "# TYPE tv2ib_alerts_waiting gauge",
    ]
    for status in ("received", "queued"):
        lines.append(f'tv2ib_alerts_waiting{{status="{status}"}} {counts.get(status, 0)}')
    return lines


def init_app(app: Flask) -> None:
    app.extensions["tv2ib_metrics"] = WebhookMetrics()

    @app.get("/metrics")
    def metrics() -> Response:
        text = get_metrics(app).render()
        backlog = backlog_lines(app.extensions["tv2ib"].engine)
        if backlog:
            text += "\n".join(backlog) + "\n"
        return Response(text, mimetype="text/plain; version=0.0.4")
