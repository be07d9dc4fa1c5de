"""``GET /metrics`` in the Prometheus text format: webhook answers by outcome and a latency histogram.

Counters are process-local (each gunicorn worker counts its own requests; a scrape reaches one
worker). That is enough to see outcomes and latency trends on one machine; for exact totals run
one worker or aggregate in Prometheus with ``sum without(instance)`` over scrapes.
"""

from __future__ import annotations

import threading
from collections import Counter

from flask import Flask, Response

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


def init_app(app: Flask) -> None:
    app.extensions["tv2ib_metrics"] = WebhookMetrics()

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(get_metrics(app).render(), mimetype="text/plain; version=0.0.4")
