"""A reliable, in-process consumer of one rq queue.

Why not ``rq worker``: rq's default worker forks a child per job, and a child cannot use the
parent's IB connection. rq's ``SimpleWorker`` runs jobs in-process but drops a job it was running
when the process is killed (rq later files it as "abandoned" in the failed registry). This
consumer keeps rq's data model (jobs enqueued by the web app, ``Job.fetch``, job status; an
alert's job runs from its id alone, ``alert-<id>``, without a round trip first) and takes each
job id with ``BLMOVE rq:queue:<name> → <processing list>``, an atomic move: a job is always
either on the queue or on this worker's processing list. It leaves the list only when the handler
is done. On start, :meth:`recover` puts everything left on the processing
list (the worker died mid-job) back at the head of the queue, and requeues this queue's jobs that
an rq worker filed as failed/abandoned. Running a job twice is harmless (the executor's orderRef
checks), losing one is not.

A worker that dies and is never restarted under the same name (another client id takes its account,
or a worker with IB_ACCOUNT replaces one without) would leave its job on its own processing list
forever. So :meth:`reclaim` (at start, then every few seconds between jobs) moves the jobs of every
other processing list of this queue whose owner's heartbeat is gone (older than
``keys.HEARTBEAT_TTL_SECONDS``) back to the head of the queue, in one Lua script that checks the
heartbeat and moves the ids atomically. Only the worker holding the queue's claim consumes it
(worker/claims.py), so the jobs go to the one worker allowed to run them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

from core.enqueue import alert_job_id
from core.keys import (
    EXECUTE_ALERT_JOB,
    HEARTBEAT_TTL_SECONDS,
    PROCESSING_LISTS,
    TAKEN_PREFIX,
    TAKEN_TTL_SECONDS,
    heartbeat_of_worker,
    processing_key,
    taken_key,
)
from worker.retry import retry

ALERT_JOB_PREFIX = alert_job_id("")  # "alert-": the job ids core/enqueue.py gives alerts

log = logging.getLogger(__name__)

# Finished job hashes are kept this long for inspection (rq's default result_ttl is 500 s).
FINISHED_TTL = 3600
# How often a running consumer looks for processing lists of dead workers of its queue.
RECLAIM_EVERY = 5.0

# KEYS: a processing list, the queue, its owner's heartbeat, the set of processing lists.
# ARGV: now (unix s), the heartbeat age that means dead, the taken marker's prefix and TTL.
# Returns -1 while the owner beats; else the ids moved to the head of the queue (order kept), each
# marked taken first (the relay's sweep leaves them), and the list is forgotten.
_RECLAIM = """
local beat = redis.call('GET', KEYS[3])
if beat then
  local ok, doc = pcall(cjson.decode, beat)
  if not ok or type(doc) ~= 'table' or not tonumber(doc['ts']) then return -1 end
  if tonumber(ARGV[1]) - tonumber(doc['ts']) < tonumber(ARGV[2]) then return -1 end
end
local moved = {}
while true do
  local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not id then break end
  redis.call('SET', ARGV[3] .. id, '1', 'EX', ARGV[4])
  table.insert(moved, id)
end
redis.call('SREM', KEYS[4], KEYS[1])
return moved
"""


# KEYS: a job hash. ARGV: the finished status, its TTL. A hash Redis lost is not made up again.
_FINISH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'status', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
"""


@dataclass(frozen=True)
class Call:
    """What a job runs: its function's name, the handler, the arguments."""

    func_name: str
    handler: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class Consumer:
    """Take jobs one at a time from ``queue_name`` and run the handler named by the job."""

    def __init__(
        self,
        connection: redis.Redis,
        queue_name: str,
        worker_name: str,
        handlers: dict[str, Callable[..., Any]],
        stopping: threading.Event,
        *,
        requeue_exceptions: tuple[type[BaseException], ...] = (),
        retry_exceptions: tuple[type[BaseException], ...] = (),
        retry_delay: float = 1.0,
        block_seconds: float = 1.0,
        run_lock: threading.Lock | None = None,
    ) -> None:
        self.redis = connection
        self.queue = Queue(queue_name, connection=connection)
        self.worker_name = worker_name
        self.processing_key = processing_key(queue_name, worker_name)
        self.reclaim_after = float(HEARTBEAT_TTL_SECONDS)
        self._reclaim_script = connection.register_script(_RECLAIM)
        self._finish_script = connection.register_script(_FINISH)
        self._next_reclaim = 0.0
        self.handlers = handlers
        self.stopping = stopping
        self.requeue_exceptions = requeue_exceptions
        self.retry_exceptions = retry_exceptions
        self.retry_delay = retry_delay
        self.block_seconds = block_seconds
        # Several consumers of one worker (one per served queue) share the executor: one job at a time.
        self.run_lock = run_lock or threading.Lock()
        self.current: str | None = None
        self.done = 0

    def _mark_taken(self, job_ids: list[str]) -> None:
        """Mark jobs that go back on the queue after a worker held them: the relay's sweep leaves
        them alone (their orders may be at IB; the worker that takes them decides)."""
        if job_ids:
            pipe = self.redis.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.set(taken_key(job_id), "1", ex=TAKEN_TTL_SECONDS)
            pipe.execute()

    def recover(self) -> int:
        """Requeue jobs a dead predecessor left behind (this worker's name, and any dead worker's
        list of this queue: :meth:`reclaim`); returns how many."""
        moved = 0
        self._register_lists()
        held = [
            j.decode() if isinstance(j, bytes) else j for j in self.redis.lrange(self.processing_key, 0, -1)
        ]
        self._mark_taken(held)
        while self.redis.lmove(self.processing_key, self.queue.key, "RIGHT", "LEFT") is not None:
            moved += 1
        for registry_cls in (StartedJobRegistry, FailedJobRegistry):
            registry = registry_cls(queue=self.queue)
            try:
                job_ids = registry.get_job_ids()
            except redis.RedisError:
                continue
            for job_id in job_ids:
                try:
                    job = Job.fetch(job_id, connection=self.redis)
                except NoSuchJobError:
                    registry.remove(job_id)
                    continue
                if job.func_name not in self.handlers:
                    continue
                registry.remove(job)
                self._mark_taken([job.id])
                self.queue.push_job_id(job.id, at_front=True)
                job.set_status(JobStatus.QUEUED)
                moved += 1
        if moved:
            log.warning("requeued %d job(s) abandoned by a previous worker", moved)
        return moved + self.reclaim()

    def _register_lists(self) -> None:
        """Put this consumer's processing list, and any list of its queue an older release left
        (found once by SCAN), in the set :meth:`reclaim` reads."""
        found = set(
            self.redis.scan_iter(match=self.processing_key.removesuffix(self.worker_name) + "*", count=1000)
        )
        self.redis.sadd(PROCESSING_LISTS, self.processing_key, *found)

    def reclaim(self) -> int:
        """Move the jobs of dead workers' processing lists of this queue back to the head of the
        queue (a worker is dead when its heartbeat is older than ``reclaim_after``); returns how many."""
        prefix = self.processing_key.removesuffix(self.worker_name)
        moved = 0
        for raw in self.redis.smembers(PROCESSING_LISTS):
            key = raw.decode() if isinstance(raw, bytes) else raw
            owner = key.removeprefix(prefix)
            if not key.startswith(prefix) or key == self.processing_key or ":" not in owner:
                continue  # another queue's list (or a queue whose name continues this one's), or ours
            ids = self._reclaim_script(
                keys=[key, self.queue.key, heartbeat_of_worker(owner), PROCESSING_LISTS],
                args=[time.time(), self.reclaim_after, TAKEN_PREFIX, TAKEN_TTL_SECONDS],
            )
            if isinstance(ids, list) and ids:
                names = ", ".join(i.decode() if isinstance(i, bytes) else str(i) for i in ids)
                log.warning("took back %d job(s) of worker %s, whose heartbeat is older than %.0f s: %s",
                            len(ids), owner, self.reclaim_after, names)  # fmt: skip
                moved += len(ids)
        return moved

    def _reclaim_due(self) -> None:
        """:meth:`reclaim` every :data:`RECLAIM_EVERY` seconds, between jobs (a Redis problem waits
        for the next turn: the take below reports it)."""
        now = time.monotonic()
        if now < self._next_reclaim:
            return
        self._next_reclaim = now + RECLAIM_EVERY
        try:
            self.reclaim()
        except redis.RedisError as exc:
            log.debug("reclaim skipped: %s", exc)

    def run(self) -> None:
        """Consume until ``stopping`` is set (the job in hand is always finished first)."""
        while not self.stopping.is_set():
            self._reclaim_due()
            try:
                job_id = retry(self._take, on=(redis.RedisError,), what="Redis unavailable",
                               base=0.4, cap=5.0, jitter=False, stop=self.stopping)  # fmt: skip
            except redis.RedisError:
                return  # stopping while Redis was down: nothing was taken
            if job_id is None:
                continue
            self.handle(job_id.decode() if isinstance(job_id, bytes) else job_id)

    def _take(self) -> bytes | str | None:
        """Move the next job id onto the processing list (waits up to ``block_seconds``)."""
        return self.redis.blmove(self.queue.key, self.processing_key, self.block_seconds, "LEFT", "RIGHT")

    def _call_of(self, job_id: str) -> Call | None:
        """What the job runs: an alert's job from its id alone (``alert-<id>`` is always
        ``execute_alert(<id>)``: no round trip to Redis before the alert starts), any other job
        from its hash; None when it cannot run (vanished, or no handler: acknowledged here)."""
        alert_handler = self.handlers.get(EXECUTE_ALERT_JOB)
        if alert_handler is not None and job_id.startswith(ALERT_JOB_PREFIX):
            return Call(EXECUTE_ALERT_JOB, alert_handler, (job_id.removeprefix(ALERT_JOB_PREFIX),), {})
        try:
            job = Job.fetch(job_id, connection=self.redis)
        except NoSuchJobError:
            log.warning("job %s vanished from Redis; skipped", job_id)
            self._ack(job_id, finished=False)
            return None
        handler = self.handlers.get(job.func_name)
        if handler is None:
            log.error("job %s: no handler for %s; left in the failed registry", job_id, job.func_name)
            FailedJobRegistry(queue=self.queue).add(job, exc_string=f"unknown function {job.func_name}")
            self._ack(job_id, finished=False)
            return None
        return Call(job.func_name, handler, tuple(job.args), dict(job.kwargs))

    def handle(self, job_id: str) -> None:
        """Run one job and take it off the processing list (or put it back on the queue)."""
        self.current = job_id
        try:
            call = self._call_of(job_id)
            if call is None:
                return
            if not self.run_lock.acquire(blocking=False):
                self.run_lock.acquire()  # another queue's job is running: wait for it
                if self.stopping.is_set():  # stopping meanwhile: this job never started
                    self.run_lock.release()
                    self._put_back(job_id)
                    return
            try:
                self._run(job_id, call)
            finally:
                self.run_lock.release()
        finally:
            self.current = None

    def _run(self, job_id: str, call: Call) -> None:
        """Run the handler and acknowledge the job (or put it back on the queue)."""
        started = time.perf_counter()
        try:
            result = call.handler(*call.args, **call.kwargs)
        except self.requeue_exceptions:
            log.info("job %s put back on the queue (worker stopping)", job_id)
            self._put_back(job_id)
            return
        except self.retry_exceptions:
            log.warning("job %s put back on the queue to retry in %.1fs", job_id, self.retry_delay)
            self.stopping.wait(self.retry_delay)
            self._put_back(job_id)
            return
        except Exception:
            # the handler records its own failures; an exception here means the database or
            # Redis is down: keep the job for the next start rather than lose it
            log.exception("job %s raised; it stays on the processing list", job_id)
            self.stopping.wait(1.0)
            self._mark_taken([job_id])
            self.redis.lmove(self.processing_key, self.queue.key, "RIGHT", "LEFT")
            return
        log.info("job %s %s(%s) -> %s in %.1f ms", job_id, call.func_name,
                 ", ".join(map(str, call.args)), result, (time.perf_counter() - started) * 1000)  # fmt: skip
        self.done += 1
        self._ack(job_id)

    def _put_back(self, job_id: str) -> None:
        """Move the job from the processing list back to the head of the queue (atomically),
        marked as taken (see :meth:`_mark_taken`)."""
        pipe = self.redis.pipeline()
        pipe.set(taken_key(job_id), "1", ex=TAKEN_TTL_SECONDS)
        pipe.lrem(self.processing_key, 1, job_id)
        pipe.lpush(self.queue.key, job_id)
        pipe.execute()

    def _ack(self, job_id: str, finished: bool = True) -> None:
        """Off the processing list; a finished job's hash (if Redis still has it) marked finished
        and kept ``FINISHED_TTL`` seconds, as rq's ``set_status`` would."""
        pipe = self.redis.pipeline()
        pipe.lrem(self.processing_key, 1, job_id)
        if finished:
            self._finish_script(
                keys=[Job.key_for(job_id)], args=[JobStatus.FINISHED.value, FINISHED_TTL], client=pipe
            )
        pipe.execute()
