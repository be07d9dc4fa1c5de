"""The job names the web app enqueues (``core.keys.EXECUTE_ALERT_JOB``, ``core.services.FLATTEN_JOB``).

These jobs need the worker's one IB connection, so they run only inside ``python -m worker``,
whose consumer dispatches them by name (see ``worker/consumer.py`` and ``worker/runtime.py``).
``rq worker`` must not be used for these queues: it would fork away from the connection.
"""

from __future__ import annotations

_WHY = "this job runs only inside `python -m worker` (it needs the worker's IB connection), not under `rq worker`"


def execute_alert(alert_id: str) -> str:
    """Placeholder for ``worker.jobs.execute_alert``: refuses to run outside the worker."""
    raise RuntimeError(_WHY)


def flatten_all(account: str | None = None, by: str = "api") -> str:
    """Placeholder for ``worker.jobs.flatten_all``: refuses to run outside the worker."""
    raise RuntimeError(_WHY)
