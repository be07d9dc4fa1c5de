"""A reliable, in-process consumer of one rq queue.

Why not ``rq worker``: rq's default worker forks a child per job, and a child cannot use the
parent's IB connection. rq's ``SimpleWorker`` runs jobs in-process but drops a job it was running
when the process is killed (rq later files it as "abandoned" in the failed registry). This
consumer keeps rq's data model (jobs enqueued by the web app with ``Queue.enqueue``, ``Job.fetch``,
job status) and takes each job id with ``BLMOVE rq:queue:<name> → <processing list>``, an atomic
move: a job is always either on the queue or on this worker's processing list. It leaves the list
only when the handler is done. On start, :meth:`recover` puts everything left on the processing
list (the worker died mid-job) back at the head of the queue, and requeues this queue's jobs that
an rq worker filed as failed/abandoned. Running a job twice is harmless (the executor's orderRef
checks), losing one is not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

from core.keys import TAKEN_TTL_SECONDS, processing_key, taken_key
from worker.retry import retry

log = logging.getLogger(__name__)

# Finished job hashes are kept this long for inspection (rq's default result_ttl is 500 s).
FINISHED_TTL = 3600


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
        self.processing_key = processing_key(queue_name, worker_name)
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
        """Requeue jobs a dead predecessor left behind; returns how many."""
        moved = 0
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
        return moved

    def run(self) -> None:
        """Consume until ``stopping`` is set (the job in hand is always finished first)."""
        while not self.stopping.is_set():
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

    def handle(self, job_id: str) -> None:
        """Run one job and take it off the processing list (or put it back on the queue)."""
        self.current = job_id
        try:
            try:
                job = Job.fetch(job_id, connection=self.redis)
            except NoSuchJobError:
                log.warning("job %s vanished from Redis; skipped", job_id)
                self._ack(job_id)
                return
            handler = self.handlers.get(job.func_name)
            if handler is None:
                log.error("job %s: no handler for %s; left in the failed registry", job_id, job.func_name)
                FailedJobRegistry(queue=self.queue).add(job, exc_string=f"unknown function {job.func_name}")
                self._ack(job_id)
                return
            if not self.run_lock.acquire(blocking=False):
                self.run_lock.acquire()  # another queue's job is running: wait for it
                if self.stopping.is_set():  # stopping meanwhile: this job never started
                    self.run_lock.release()
                    self._put_back(job_id)
                    return
            try:
                self._run(job_id, job, handler)
            finally:
                self.run_lock.release()
        finally:
            self.current = None

    def _run(self, job_id: str, job: Job, handler: Callable[..., Any]) -> None:
        """Run the handler and acknowledge the job (or put it back on the queue)."""
        started = time.perf_counter()
        try:
            result = handler(*job.args, **job.kwargs)
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
        log.info("job %s %s(%s) -> %s in %.1f ms", job_id, job.func_name,
                 ", ".join(map(str, job.args)), result, (time.perf_counter() - started) * 1000)  # fmt: skip
        self.done += 1
        self._ack(job_id, job)

    def _put_back(self, job_id: str) -> None:
        """Move the job from the processing list back to the head of the queue (atomically),
        marked as taken (see :meth:`_mark_taken`)."""
        pipe = self.redis.pipeline()
        pipe.set(taken_key(job_id), "1", ex=TAKEN_TTL_SECONDS)
        pipe.lrem(self.processing_key, 1, job_id)
        pipe.lpush(self.queue.key, job_id)
        pipe.execute()

    def _ack(self, job_id: str, job: Job | None = None) -> None:
        pipe = self.redis.pipeline()
        pipe.lrem(self.processing_key, 1, job_id)
        if job is not None:
            job.set_status(JobStatus.FINISHED, pipeline=pipe)
            pipe.expire(job.key, FINISHED_TTL)
        pipe.execute()
