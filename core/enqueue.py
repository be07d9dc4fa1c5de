"""Putting an alert on its account's rq queue, at most once (shared by intake and the relay).

Job id scheme: ``alert-<alert id>`` (:func:`alert_job_id`). The job is created with rq's
``unique=True``: one Lua script checks that no job with that id exists, saves it and pushes it,
atomically. So however many processes try at once (intake, several relays), the alert is on its
queue once. When Redis loses everything (it keeps nothing on disk here), the job vanishes with it
and the relay may enqueue the alert again; that is the only way an alert is enqueued twice, and
then only after its first job is gone.
"""

from __future__ import annotations

import logging
import time

import redis
from redis.client import Pipeline
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job

from core.keys import EXECUTE_ALERT_JOB, queue_name

log = logging.getLogger(__name__)

# Keep finished/failed jobs long enough that "job gone" reliably means "Redis lost it".
JOB_RESULT_TTL = 7 * 24 * 3600
JOB_FAILURE_TTL = 30 * 24 * 3600
JOB_TIMEOUT = 300
REGISTRY_REFRESH_SECONDS = 60.0


def alert_job_id(alert_id: str) -> str:
    """The rq job id of an alert's execution job."""
    return f"alert-{alert_id}"


def enqueue_alert(client: redis.Redis, alert_id: str, account: str | None) -> bool:
    """Enqueue ``worker.jobs.execute_alert(alert_id)`` on ``queue_name(account)``.

    Returns True when this call put the job on the queue, False when a job with that id already
    exists. Raises ``redis.RedisError`` when Redis is unreachable (the caller leaves the alert
    'received' for the relay).
    """
    queue = Queue(queue_name(account), connection=client)
    # rq adds the queue to its registry set ("rq:queues", read by `rq info`) in a separate round
    # trip before the atomic unique-enqueue script. Collect that on a pipeline and send it only
    # once a minute per queue and process: one Redis round trip less per alert.
    registry = client.pipeline(transaction=False)
    try:
        queue.enqueue_call(
            EXECUTE_ALERT_JOB,
            args=(alert_id,),
            job_id=alert_job_id(alert_id),
            unique=True,
            timeout=JOB_TIMEOUT,
            result_ttl=JOB_RESULT_TTL,
            failure_ttl=JOB_FAILURE_TTL,
            description=f"execute alert {alert_id}",
            pipeline=registry,
        )
    except DuplicateJobError:
        return False
    finally:
        _register_queue(client, queue.key, registry)
    return True


def _register_queue(client: redis.Redis, key: str, registry: Pipeline) -> None:
    # Kept on the client object, like rq caches the server version there: no module state.
    seen: dict[str, float] = client.__dict__.setdefault("_tv2ib_registered_queues", {})
    now = time.monotonic()
    if now - seen.get(key, -REGISTRY_REFRESH_SECONDS) >= REGISTRY_REFRESH_SECONDS:
        registry.execute()
        seen[key] = now
    else:
        registry.reset()


def job_exists(client: redis.Redis, alert_id: str) -> bool:
    """Whether the alert's job is still known to Redis (any state)."""
    return Job.exists(alert_job_id(alert_id), client)
