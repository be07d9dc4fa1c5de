"""Small helpers shared by the tests of the web app."""

from __future__ import annotations

import json
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from sqlalchemy import select
from support import TEST_SECRET

from app.resources import resources
from core.context import AppContext
from core.keys import queue_name
from core.models import Alert

SECRET = TEST_SECRET  # the secret of the base_env fixture


def alert_body(**fields: Any) -> dict[str, Any]:
    """A valid alert with the test secret; keyword arguments override or add fields."""
    body: dict[str, Any] = {"secret": SECRET, "ticker": "NASDAQ:AAPL", "action": "buy", "quantity": 10}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def raw_alert(extra: str) -> str:
    """A hand-written alert body (for JSON a dict cannot express), ``extra`` spliced in last."""
    return '{"secret": "' + SECRET + '", "ticker": "AAPL", "action": "buy", ' + extra + "}"


def post(client: Any, body: Any, *, content_type: str = "application/json", **headers: str) -> Any:
    """POST ``body`` (a dict/list is JSON-encoded, str/bytes sent as is) to /webhook."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    answer = client.post("/webhook", data=data, content_type=content_type, headers=headers)
    settle(client.application)
    return answer


def settle(app: Any) -> None:
    """Wait until the app recorded 'queued' for what it enqueued (done after the answer)."""
    assert resources(app).intake.marker.flush(5)


def alerts(ctx: AppContext) -> list[Alert]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def get_alert(ctx: AppContext, alert_id: str) -> Alert:
    with ctx.sessions() as session:
        row = session.get(Alert, alert_id)
        assert row is not None
        return row


def queued_jobs(client: redis.Redis, account: str | None = None) -> list[Job]:
    """The jobs waiting on an account's queue, in order."""
    queue = Queue(queue_name(account), connection=client)
    return [Job.fetch(job_id, connection=client) for job_id in queue.job_ids]
