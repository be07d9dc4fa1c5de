"""The outbox relay: every committed alert reaches its rq queue, even across Redis outages.

Intake commits an alert as ``received`` and then enqueues it. When Redis is down at that moment
the alert stays ``received``; when Redis restarts it forgets every queued job (it keeps nothing
on disk here). :func:`relay_once` repairs both:

1. ``received`` alerts are enqueued and marked ``queued``;
2. ``queued`` and ``processing`` alerts whose rq job no longer exists are enqueued again (same
   job id).

3. alerts still ``received``/``queued`` longer than ``STALE_ALERT_SECONDS`` end as ``rejected``
   with the reason and a notice (:func:`sweep_unconsumed`): no worker took them in time.

   Alerts that waited for a trader's approval past their ``approval_deadline`` end the same way
   (:func:`sweep_unapproved`; core/approval.py).

4. the digest notices of intake's refusals that are due are written (:mod:`core.notice_digest`).

Step 2 checks every ``queued`` alert against Redis, so it does not run on every tick: it runs
when the marker key ``tv2ib:relay:scan`` is missing (Redis restarted empty or was flushed, which
is exactly when jobs get lost), on ``relay_once(ctx, full_scan=True)``, and at least every
``FULL_SCAN_SECONDS`` as a safety net. An alert queued less than ``REQUEUE_GRACE_SECONDS`` before
the scan whose job is gone is not enqueued then (its worker may have finished the job before the
recorder wrote the alert's next state); the scan runs again once the grace has passed, so an alert
accepted just before Redis restarted is re-enqueued seconds later, not after the safety net's ten
minutes (found by the chaos run, ``bench/chaos.py``). Step 1 uses the status index and is cheap.

Never twice on a queue: the job id is deterministic (``alert-<id>``) and created with rq's
atomic ``unique=True`` (see :mod:`core.enqueue`), so concurrent relays, or a relay racing
intake, cannot both enqueue; a second job can only appear after the first one is gone from Redis.
A Redis lock (``tv2ib:relay:lock``) additionally makes one process do the scan at a time, which
keeps the database work of N gunicorn workers plus the execution worker at one scan per tick.

Interfaces: ``relay_once(ctx, *, full_scan=False) -> int`` (safe to call from any process at any time; the worker
calls it at start), ``start_relay_thread(ctx, interval=2.0) -> RelayThread`` (the web app starts
one per gunicorn worker from ``app/server_hooks.py``'s ``post_worker_init``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

import redis
from rq import Queue
from rq.job import Job
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core import alert_rows, events, notice_digest
from core.context import AppContext
from core.enqueue import alert_job_id, enqueue_alert
from core.keys import (
    DEFAULT_ACCOUNT,
    EVENTS_CHANNEL,
    RELAY_LOCK_KEY,
    RELAY_SCAN_MARKER_KEY,
    queue_name,
    taken_key,
)
from core.models import Alert, AlertEvent, AlertStatus, staleness_start, utcnow
from core.notices import alert_rejected_draft, enqueue_draft
from core.routing import Served, read_served

log = logging.getLogger(__name__)


class Parts(Protocol):
    """What :func:`reject_waiting` writes with (an :class:`AppContext` has them)."""

    sessions: sessionmaker[Session]
    redis: redis.Redis
    settings: Settings


FULL_SCAN_SECONDS = 600.0
LOCK_TTL_MS = 30_000
BATCH = 500
# A 'queued' alert younger than this is left alone: intake may be between enqueue and commit.
REQUEUE_GRACE_SECONDS = 5.0
# Take an alert's job off its queue unless a worker ever held it (then its orders may be at IB and
# that worker decides): -1 held before, 0 not on the queue, 1 taken. Atomic against the worker's
# BLMOVE, so a job is either taken by a worker or by the sweep, never both.
_CLAIM = """
if redis.call('exists', KEYS[2]) == 1 then return -1 end
return redis.call('lrem', KEYS[1], 0, ARGV[1])
"""
_UNCONSUMED = (AlertStatus.RECEIVED.value, AlertStatus.QUEUED.value)
_IN_FLIGHT = (AlertStatus.QUEUED.value, AlertStatus.PROCESSING.value)  # a job of theirs should exist
_PENDING = (AlertStatus.PENDING_APPROVAL.value,)  # waits for a trader, no job: sweep_unapproved
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def _enqueue_received(ctx: AppContext) -> int:
    enqueued = 0
    last_id = ""
    while True:
        with ctx.sessions() as session:
            rows = session.execute(
                select(Alert.id, Alert.account, Alert.approved_at)
                .where(Alert.status == AlertStatus.RECEIVED.value, Alert.id > last_id)
                .order_by(Alert.id)
                .limit(BATCH)
            ).all()
        for alert_id, account, approved_at in rows:
            # approved (core/approval.py) while Redis was down: its run replaces the job that waited
            if enqueue_alert(ctx.redis, alert_id, account, approved=approved_at is not None):
                enqueued += 1
                log.info("relay: enqueued alert %s on %s", alert_id, queue_name(account))
            with ctx.engine.connect() as conn:
                alert_rows.mark_queued(conn, alert_id, queue_name(account))
        if len(rows) < BATCH:
            return enqueued
        last_id = rows[-1][0]


def _requeue_lost(ctx: AppContext) -> tuple[int, int]:
    """Enqueue again the ``queued`` and ``processing`` alerts whose job is gone; (enqueued, left
    for later): an alert queued less than ``REQUEUE_GRACE_SECONDS`` ago whose job is gone is left
    to the next scan. A ``processing`` alert's job lived on its worker's processing list, which a
    Redis restarted empty forgets with the rest (found by the chaos run: a worker killed while its
    job waited for IB, then Redis restarted, left the alert ``processing`` for good); running it
    again is harmless (the executor re-reads a finished alert and resumes a decided one)."""
    enqueued = young = 0
    last_id = ""
    cutoff = utcnow() - timedelta(seconds=REQUEUE_GRACE_SECONDS)
    while True:
        with ctx.sessions() as session:
            rows = session.execute(
                select(Alert.id, Alert.account, Alert.enqueued_at, Alert.status)
                .where(Alert.status.in_(_IN_FLIGHT), Alert.id > last_id)
                .order_by(Alert.id)
                .limit(BATCH)
            ).all()
        if rows:
            pipe = ctx.redis.pipeline(transaction=False)
            for alert_id, *_ in rows:
                pipe.exists(Job.key_for(alert_job_id(alert_id)))
            present = pipe.execute()
            for (alert_id, account, enqueued_at, status), exists in zip(rows, present, strict=True):
                if exists:
                    continue
                if enqueued_at is not None and enqueued_at >= cutoff:
                    young += 1  # its worker may have just finished it; the scan after the grace decides
                    continue
                # A job hash can vanish while its id is still listed (keys deleted by hand):
                # drop the stale id so the queue cannot hold the alert twice.
                ctx.redis.lrem(
                    f"{Queue.redis_queue_namespace_prefix}{queue_name(account)}", 0, alert_job_id(alert_id)
                )
                if not enqueue_alert(ctx.redis, alert_id, account):
                    continue
                enqueued += 1
                log.warning("relay: re-enqueued alert %s: its job was gone (Redis restarted?)", alert_id)
                now = utcnow()
                with ctx.sessions.begin() as session:
                    session.execute(
                        update(Alert)
                        .where(Alert.id == alert_id)
                        .values(enqueued_at=now, enqueue_attempts=Alert.enqueue_attempts + 1)
                    )
                    session.add(
                        AlertEvent(
                            alert_id=alert_id,
                            at=now,
                            status=str(status),
                            message="re-enqueued: its job was gone from Redis (restart?)",
                        )
                    )
        if len(rows) < BATCH:
            return enqueued, young
        last_id = rows[-1][0]


def waits_for_its_worker(payload: Mapping[str, Any] | None, account: str | None, served: Served) -> bool:
    """An exit or a flatten (``action: exit``, ``sentiment: flat``) a live worker serves the queue
    of stays queued, however old: the worker runs it once IB is back (a job it already holds
    waits the same way; worker/decision/connectivity.py). With no live worker, or only workers of
    other accounts, it is swept like any other alert, so that the trader hears of it."""
    doc = payload or {}
    exits = doc.get("action") == "exit" or doc.get("sentiment") == "flat"
    # a live worker that has not learned its account yet (IB down since it started) may be its own
    return (
        exits and served.workers > 0 and (not served.known or (account or DEFAULT_ACCOUNT) in served.accounts)
    )


def _why_untaken(account: str | None, served: Served, limit: float) -> str:
    """The reason stored on an alert no worker took within ``limit`` seconds."""
    head = f"no worker took it within {limit:.0f} s"
    name = account or DEFAULT_ACCOUNT
    if served.workers == 0:
        return f"{head}: workers were down (no worker heartbeat)"
    if not served.known:
        return f"{head}: the worker had not yet learned its account from IB (IB not connected?)"
    what = f"account {account}" if account else "alerts without an account"
    if name not in served.accounts:
        return f"{head}: no worker serves {what} (workers serve: {served.names()})"
    return f"{head}: the worker of {what} did not take it (stopped or stuck)"


def sweep_unconsumed(ctx: AppContext) -> int:
    """Reject alerts that waited in ``received``/``queued`` longer than ``STALE_ALERT_SECONDS``.

    A worker that holds an alert's job rejects it as stale by itself, so this only ends alerts no
    worker took: those whose job the sweep can take off its queue (:data:`_CLAIM`) and those never
    enqueued (``received`` without a job). The state change is conditional (only from
    received/queued) and a notice is written in the same transaction. A worker never places an
    alert rejected here: it cannot hold the job any more, and a job id that reappears anyway
    finds the alert ``rejected`` when the executor reads it. Returns how many it rejected.
    """
    limit = ctx.settings.stale_alert_seconds
    cutoff = utcnow() - timedelta(seconds=limit)
    with ctx.sessions() as session:
        rows = session.execute(
            select(Alert.id, Alert.account, Alert.status, Alert.payload)
            .where(Alert.status.in_(_UNCONSUMED), staleness_start() < cutoff)
            .order_by(Alert.id)
            .limit(BATCH)
        ).all()
    if not rows:
        return 0
    served = read_served(ctx.redis)
    claim = ctx.redis.register_script(_CLAIM)
    rejected = 0
    for alert_id, account, status, payload in rows:
        if waits_for_its_worker(payload, account, served):
            continue  # an exit waits for IB like the job the worker holds (it never goes stale)
        job_id = alert_job_id(alert_id)
        queue_key = f"{Queue.redis_queue_namespace_prefix}{queue_name(account)}"
        taken = claim(keys=[queue_key, taken_key(job_id)], args=[job_id])
        never_enqueued = (
            taken == 0 and status == AlertStatus.RECEIVED.value and not ctx.redis.exists(Job.key_for(job_id))
        )
        if taken != 1 and not never_enqueued:
            continue  # a worker holds it (it rejects it as stale itself) or the relay re-enqueues it
        if never_enqueued:
            reason = (
                f"no worker took it within {limit:.0f} s: it never reached a queue (Redis was unreachable)"
            )
        else:
            reason = _why_untaken(account, served, limit)
        try:
            done = reject_waiting(ctx, alert_id, reason, _UNCONSUMED, simulator=served.simulator)
        except Exception:
            if taken == 1:  # put the job back: nothing may get lost on a database error
                ctx.redis.lpush(queue_key, job_id)
            raise
        if taken == 1:
            ctx.redis.delete(Job.key_for(job_id))
        if done:
            rejected += 1
    return rejected


def reject_waiting(
    ctx: Parts, alert_id: str, reason: str, waiting: tuple[str, ...], *, simulator: bool = False
) -> bool:
    """End an alert that is still in one of the ``waiting`` states ``rejected`` with ``reason``:
    its audit row and ``alert_rejected`` notice in the same transaction, its events after the
    commit. False (nothing written) when it has left those states meanwhile."""
    now = utcnow()
    with ctx.sessions.begin() as session:
        changed = session.execute(
            update(Alert)
            .where(Alert.id == alert_id, Alert.status.in_(waiting))
            .values(status=AlertStatus.REJECTED.value, reason=reason, updated_at=now)
        ).rowcount
        if not changed:
            return False
        alert = session.get(Alert, alert_id)
        assert alert is not None
        session.add(AlertEvent(alert_id=alert_id, at=now, status=AlertStatus.REJECTED.value, message=reason))
        draft = alert_rejected_draft(
            alert_id,
            reason,
            action=alert.action,
            ticker=alert.ticker,
            strategy=alert.strategy,
            account=alert.fanout_account,
        )
        enqueue_draft(session, draft, ctx.settings, simulator=simulator)
        status = AlertStatus.REJECTED.value
        published = [
            events.alert_status(alert_id, status, reason),
            events.alert_rejected(
                alert_id, strategy=alert.strategy, ticker=alert.ticker, action=alert.action,
                status=status, reason=reason, account=alert.fanout_account,
            ),
        ]  # fmt: skip
    log.warning("alert %s rejected: %s", alert_id, reason)
    try:  # live views (dashboard) learn it now; best effort like the worker's events
        pipe = ctx.redis.pipeline(transaction=False)
        for event in published:
            pipe.publish(EVENTS_CHANNEL, json.dumps(event))
        pipe.execute()
    except redis.RedisError:
        pass
    return True


def sweep_unapproved(ctx: AppContext) -> int:
    """Reject the alerts whose approval window (``approval_timeout``, core/approval.py) closed
    while they waited; returns how many."""
    since = (
        select(func.max(AlertEvent.at))
        .where(AlertEvent.alert_id == Alert.id, AlertEvent.status == _PENDING[0])
        .scalar_subquery()
    )
    with ctx.sessions() as session:
        rows = session.execute(
            select(Alert.id, Alert.approval_deadline, since)
            .where(Alert.status == _PENDING[0], Alert.approval_deadline < utcnow())
            .order_by(Alert.id)
            .limit(BATCH)
        ).all()
    simulator = bool(rows) and read_served(ctx.redis).simulator
    rejected = 0
    for alert_id, deadline, waited_from in rows:
        window = f" within {(deadline - waited_from).total_seconds():.0f} s" if waited_from else ""
        reason = f"not approved{window} (approval_timeout): the window closed at {deadline:%H:%M:%S} UTC"
        rejected += reject_waiting(ctx, alert_id, reason, _PENDING, simulator=simulator)
    return rejected


def _scan_due(ctx: AppContext) -> bool:
    last = ctx.redis.get(RELAY_SCAN_MARKER_KEY)
    try:
        return last is None or time.time() - float(last) > FULL_SCAN_SECONDS
    except ValueError:
        return True


def relay_once(ctx: AppContext, *, full_scan: bool = False) -> int:
    """One relay pass; returns how many alerts it put on a queue (0 when Redis is down or
    another process holds the relay lock). Database errors propagate to the caller.

    ``full_scan=True`` forces the lost-job check of every ``queued`` alert (the worker passes
    it at start); otherwise that check runs only when due (see the module docstring)."""
    token = uuid.uuid4().hex
    try:
        if not ctx.redis.set(RELAY_LOCK_KEY, token, nx=True, px=LOCK_TTL_MS):
            return 0
    except redis.RedisError:
        return 0
    try:
        # the sweep first: an alert that waited too long is ended, not enqueued now to trade late
        sweep_unconsumed(ctx)
        sweep_unapproved(ctx)
        count = _enqueue_received(ctx)
        if full_scan or _scan_due(ctx):
            started = time.time()
            requeued, young = _requeue_lost(ctx)
            count += requeued
            if young:  # scan again once they are old enough, not only after FULL_SCAN_SECONDS
                started -= FULL_SCAN_SECONDS - REQUEUE_GRACE_SECONDS
            ctx.redis.set(RELAY_SCAN_MARKER_KEY, repr(started))
        with ctx.engine.connect() as conn:
            alert_rows.purge_expired_claims(conn)
        _flush_notice_digests(ctx)
        return count
    except redis.RedisError as exc:
        log.info("relay: Redis unavailable (%s); will retry", type(exc).__name__)
        return 0
    finally:
        try:
            ctx.redis.eval(_RELEASE, 1, RELAY_LOCK_KEY, token)
        except redis.RedisError:
            pass  # the lock expires by itself


def _flush_notice_digests(ctx: AppContext) -> None:
    """Write the due digests of intake's refusals (``alert_invalid``, ``auth_failed``). Last and
    on its own: a failure here never costs the alerts of this pass; the counts wait in Redis."""
    try:
        notice_digest.flush_due(ctx)
    except Exception as exc:  # noqa: BLE001 - e.g. the database is down: the next pass retries
        log.warning("relay: notice digests not written (%s: %s)", type(exc).__name__, exc)


class RelayThread(threading.Thread):
    """Calls :func:`relay_once` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, ctx: AppContext, interval: float = 2.0):
        super().__init__(name="tv2ib-relay", daemon=True)
        self.ctx = ctx
        self.interval = interval
        self._stopping = threading.Event()
        self._last_error_log = 0.0

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                relay_once(self.ctx)
            except Exception as exc:  # noqa: BLE001 - e.g. database down: keep trying, log sparingly
                now = time.monotonic()
                if now - self._last_error_log > 60:
                    self._last_error_log = now
                    log.warning("relay pass failed (%s: %s); retrying", type(exc).__name__, exc)
            self._stopping.wait(self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish its pass and wait for it."""
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)


def start_relay_thread(ctx: AppContext, interval: float = 2.0) -> RelayThread:
    """Start a daemon relay thread for this process and return it (call ``.stop()`` on exit)."""
    thread = RelayThread(ctx, interval)
    thread.start()
    return thread
