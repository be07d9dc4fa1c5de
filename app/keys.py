"""Names shared by the web app and the worker: queues, job function, Redis keys, pub/sub channel.

Kept in one place because the two processes meet only through these strings.
"""

from __future__ import annotations

# rq job that executes one alert; its only argument is the alert id.
EXECUTE_ALERT_JOB = "worker.jobs.execute_alert"
QUEUE_PREFIX = "tv2ib:orders:"
# Live events (order status, fills, alert state changes) as JSON, for the dashboard and notifier.
EVENTS_CHANNEL = "tv2ib:events"
HEARTBEAT_PREFIX = "tv2ib:worker:heartbeat:"
# A worker heartbeat older than this means the worker is gone.
HEARTBEAT_TTL_SECONDS = 15


def queue_name(account: str | None) -> str:
    """The rq queue of an account (``default`` when the alert names none)."""
    return f"{QUEUE_PREFIX}{account or 'default'}"


def heartbeat_key(account: str | None, client_id: int) -> str:
    """Redis key a worker refreshes; value is JSON {"ts", "ib_connected", "account", "client_id", ...}."""
    return f"{HEARTBEAT_PREFIX}{account or 'default'}:{client_id}"
