"""Putting an alert on its account's rq queue, at most once (shared by intake and the relay).

Job id scheme: ``alert-<alert id>`` (:func:`alert_job_id`). The job is an ordinary rq job (the
worker's consumer reads it with ``Job.fetch``; ``rq info`` lists it), written by ONE Lua script
that checks that no job with that id exists, saves the job hash, pushes the id on the queue and
adds the queue to rq's queue registry, atomically. So however many processes try at once (intake,
several relays), the alert is on its queue once. When Redis loses everything (it keeps nothing on
disk here), the job vanishes with it and the relay may enqueue the alert again; that is the only
way an alert is enqueued twice, and then only after its first job is gone. The one planned second
job: an alert that waited for a trader's approval runs again once approved (``approved=True``,
which replaces the finished first job under the same id; core/approval.py).

Why not ``Queue.enqueue_call(..., unique=True)``: it runs the same kind of script, but builds an
rq ``Job`` object, its dictionary and twenty-odd script arguments per alert, and adds the queue to
the registry in a round trip of its own. On the intake's hot path that cost as much CPU as the
round trip itself. Here the fields that are the same for every alert are constants of the script
(sent once: the script is called by its SHA), and an alert sends its id, queue, pickled call and
timestamp. The hash is field for field the one rq writes (tests/app/test_outbox.py compares them).
"""

from __future__ import annotations

import os
import threading
import zlib

import redis
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError
from rq.job import Job
from rq.queue import Queue
from rq.serializers import DefaultSerializer
from rq.utils import now, utcformat

from core.keys import EXECUTE_ALERT_JOB, queue_name

# Keep finished/failed jobs long enough that "job gone" reliably means "Redis lost it".
JOB_RESULT_TTL = 7 * 24 * 3600
JOB_FAILURE_TTL = 30 * 24 * 3600
JOB_TIMEOUT = 300

# The job hash fields rq writes for a new queued job without callbacks, retries, meta or TTL
# (rq.job.Job.to_dict), other than the per-alert ones the script takes as arguments.
_CONSTANT_FIELDS: dict[str, str | int] = {
    "success_callback_name": "",
    "failure_callback_name": "",
    "stopped_callback_name": "",
    "started_at": "",
    "ended_at": "",
    "last_heartbeat": "",
    "worker_name": "",
    "group_id": "",
    "timeout": JOB_TIMEOUT,
    "result_ttl": JOB_RESULT_TTL,
    "failure_ttl": JOB_FAILURE_TTL,
    "status": "queued",
}


def _lua_pairs(fields: dict[str, str | int]) -> str:
    """``'k1', 'v1', 'k2', 'v2'`` as Lua literals (the values above hold no quote or backslash)."""
    return ", ".join(f"'{k}', '{v}'" for k, v in fields.items())


# KEYS: job hash, queue list, rq's queue registry set. ARGV: job id, queue name (rq's "origin"),
# pickled and compressed call, timestamp (created and enqueued), description.
_ENQUEUE = f"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'created_at', ARGV[4], 'data', ARGV[3], 'origin', ARGV[2],
  'description', ARGV[5], 'enqueued_at', ARGV[4], {_lua_pairs(_CONSTANT_FIELDS)})
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], KEYS[2])
return 1
"""


# An approved alert's second run (core/approval.py): its first job (the one that left the alert
# waiting for approval) is replaced by a new one under the same id, marked APPROVED_FIELD, unless
# the marked job exists already (a second approval path, the relay, finds it and does nothing).
# The first job is done with the alert once it waits (only its acknowledgement may follow, which
# marks whichever hash holds the id finished: harmless, the id is on the queue either way).
APPROVED_FIELD = "tv2ib_approved"
_ENQUEUE_APPROVED = f"""
if redis.call('HGET', KEYS[1], '{APPROVED_FIELD}') == '1' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'created_at', ARGV[4], 'data', ARGV[3], 'origin', ARGV[2],
  'description', ARGV[5], 'enqueued_at', ARGV[4], '{APPROVED_FIELD}', '1', {_lua_pairs(_CONSTANT_FIELDS)})
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], KEYS[2])
return 1
"""


# A submitted alert whose bracket never reached IB whole (a connection lost between its legs; the
# worker's sweep, worker/lost_placements.py) runs again under its own id: the finished job is
# replaced, unless a job with that id is still queued or running (rq's status stays "queued" until
# the consumer acknowledges it), which will do the work itself. Its approval mark is kept.
_ENQUEUE_RERUN = f"""
if redis.call('HGET', KEYS[1], 'status') == 'queued' then return 0 end
local approved = redis.call('HGET', KEYS[1], '{APPROVED_FIELD}')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'created_at', ARGV[4], 'data', ARGV[3], 'origin', ARGV[2],
  'description', ARGV[5], 'enqueued_at', ARGV[4], {_lua_pairs(_CONSTANT_FIELDS)})
if approved then redis.call('HSET', KEYS[1], '{APPROVED_FIELD}', approved) end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], KEYS[2])
return 1
"""


def alert_job_id(alert_id: str) -> str:
    """The rq job id of an alert's execution job."""
    return f"alert-{alert_id}"


def _script(client: redis.Redis, source: str = _ENQUEUE, name: str = "_tv2ib_enqueue_script") -> Script:
    # Kept on the client object, like rq caches the server version there: no module state.
    script: Script | None = client.__dict__.get(name)
    if script is None:
        script = client.__dict__[name] = client.register_script(source)
    return script


def enqueue_alert(client: redis.Redis, alert_id: str, account: str | None, *, approved: bool = False) -> bool:
    """Enqueue ``worker.jobs.execute_alert(alert_id)`` on ``queue_name(account)``: one Redis call.

    Returns True when this call put the job on the queue, False when a job with that id already
    exists. Raises ``redis.RedisError`` when Redis is unreachable (the caller leaves the alert
    'received' for the relay). ``approved``: the alert's run after its approval, which replaces
    the job that left it waiting (:data:`APPROVED_FIELD`); False when that run is enqueued already.
    """
    script = _script(client, _ENQUEUE_APPROVED, "_tv2ib_approved_script") if approved else _script(client)
    return _run(script, alert_id, queue_name(account), f"execute alert {alert_id}")


def enqueue_rerun(client: redis.Redis, alert_id: str, queue: str) -> bool:
    """Run the alert's job again on ``queue`` (see ``_ENQUEUE_RERUN``): True when this call put it
    on the queue, False when its job is still queued or running."""
    script = _script(client, _ENQUEUE_RERUN, "_tv2ib_rerun_script")
    return _run(script, alert_id, queue, f"execute alert {alert_id} (again)")


def _run(script: Script, alert_id: str, queue: str, description: str) -> bool:
    """One of the scripts above for the alert's job on ``queue`` (their KEYS and ARGV)."""
    job_id = alert_job_id(alert_id)
    call = zlib.compress(DefaultSerializer.dumps((EXECUTE_ALERT_JOB, None, (alert_id,), {})))
    keys = [Job.key_for(job_id), Queue.redis_queue_namespace_prefix + queue, Queue.redis_queues_keys]
    return bool(_evalsha(script, keys, [job_id, queue, call, utcformat(now()), description]))


class _ThreadConnections(threading.local):
    """This thread's own connection to the client's Redis (and the process that made it)."""

    connection: AbstractConnection | None = None
    pid: int = 0


def _evalsha(script: Script, keys: list[str], args: list[object]) -> object:
    """The script on this thread's own connection: one write and one read.

    redis-py's command path (the pool's checkout, its check that the connection holds no stray
    reply, its observability counters, the retry wrapper) cost as much CPU as the round trip on
    intake's hot path, and one more release of the GIL. A connection of one thread holds no stray
    reply: every call reads its whole answer, and any error drops the connection. A connection
    Redis closed meanwhile (a restart) is retried once on a new one; the scripts are idempotent
    (EXISTS, or the job's own marks), so a second run after a lost answer changes nothing. After
    a restart Redis has forgotten the script: it is loaded again (``NOSCRIPT``)."""
    client = script.registered_client
    mine = client.__dict__.get("_tv2ib_thread_connections")
    if mine is None:
        mine = client.__dict__.setdefault("_tv2ib_thread_connections", _ThreadConnections())
    for attempt in (1, 2):
        connection = mine.connection
        if connection is None or mine.pid != os.getpid():
            pool = client.connection_pool
            connection = mine.connection = pool.connection_class(**pool.connection_kwargs)
            mine.pid = os.getpid()
        try:
            connection.send_packed_command(
                connection.pack_command("EVALSHA", script.sha, len(keys), *keys, *args), check_health=False
            )
            return connection.read_response()
        except NoScriptError:
            return script(keys=keys, args=args)  # loads it, then runs it (redis-py's own path)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            connection.disconnect()
            mine.connection = None
            if attempt == 2 or isinstance(exc, redis.TimeoutError):
                raise
        except BaseException:
            connection.disconnect()  # whatever stopped the read: its reply must not reach the next call
            mine.connection = None
            raise
    raise AssertionError("unreachable")


def job_pending(client: redis.Redis, alert_id: str) -> bool:
    """Whether the alert's job is queued or running: rq's status of a job stays "queued" until the
    worker's consumer acknowledges it (the test ``_ENQUEUE_RERUN`` makes)."""
    return client.hget(Job.key_for(alert_job_id(alert_id)), "status") in (b"queued", "queued")


def job_exists(client: redis.Redis, alert_id: str) -> bool:
    """Whether the alert's job is still known to Redis (any state)."""
    return Job.exists(alert_job_id(alert_id), client)
