"""Outbox: Redis down at intake, the relay catching up, and Redis losing every job."""

from __future__ import annotations

import threading

import pytest
import redis
from app_helpers import alert_body, alerts, get_alert, post, queued_jobs
from sqlalchemy import update
from support import wait_until

from app.resources import get_ctx
from core import enqueue
from core.context import AppContext
from core.enqueue import alert_job_id
from core.keys import RELAY_LOCK_KEY as LOCK_KEY
from core.models import Alert, AlertStatus
from core.relay import relay_once, start_relay_thread

DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


def test_redis_down_still_answers_202_and_relay_enqueues_once_back_up(make_app, make_settings, redis_client):
    down_app = make_app(REDIS_URL=DOWN)
    answers = [post(down_app.test_client(), alert_body(id=f"a{i}")) for i in range(3)]
    assert [a.status_code for a in answers] == [202] * 3
    assert {a.get_json()["status"] for a in answers} == {"received"}
    down_ctx = get_ctx(down_app)
    assert relay_once(down_ctx) == 0  # Redis still down: nothing, no error

    ctx = AppContext.build(make_settings())  # Redis is back (the real one)
    try:
        assert relay_once(ctx) == 3
        assert relay_once(ctx) == 0
        ids = [a.get_json()["alert_id"] for a in answers]
        assert [j.args[0] for j in queued_jobs(redis_client)] == ids
        for alert_id in ids:
            alert = get_alert(ctx, alert_id)
            assert alert.status == AlertStatus.QUEUED and alert.enqueue_attempts == 1
    finally:
        ctx.close()


def test_redis_flushed_relay_reenqueues_lost_jobs_exactly_once(app, ctx, client, redis_client, monkeypatch):
    monkeypatch.setattr("core.relay.REQUEUE_GRACE_SECONDS", 0.0)
    first = post(client, alert_body(id="x1")).get_json()["alert_id"]
    second = post(client, alert_body(id="x2")).get_json()["alert_id"]
    assert relay_once(ctx) == 0  # jobs exist: nothing to do
    redis_client.flushdb()  # what a Redis restart without persistence does
    assert relay_once(ctx) == 2
    assert relay_once(ctx) == 0
    assert sorted(j.id for j in queued_jobs(redis_client)) == sorted(
        [alert_job_id(first), alert_job_id(second)]
    )
    assert get_alert(ctx, first).enqueue_attempts == 2


def test_an_alert_a_worker_was_processing_when_redis_restarted_empty_is_enqueued_again(
    ctx, client, redis_client, monkeypatch
):
    """Found by the chaos run: a worker took the job (its processing list), wrote 'processing'
    (waiting for IB) and was killed; Redis then restarted empty and forgot the list. The alert
    must get a job again (a rerun is harmless), not stay 'processing' for good."""
    monkeypatch.setattr("core.relay.REQUEUE_GRACE_SECONDS", 0.0)
    alert_id = post(client, alert_body(id="held")).get_json()["alert_id"]
    wait_until(lambda: get_alert(ctx, alert_id).status == AlertStatus.QUEUED, 5, "never marked queued")
    processing = "tv2ib:processing:tv2ib:orders:default:1"
    assert redis_client.blmove("rq:queue:tv2ib:orders:default", processing, 1, "LEFT", "RIGHT")
    with ctx.sessions.begin() as session:
        session.execute(update(Alert).where(Alert.id == alert_id).values(status=AlertStatus.PROCESSING))
    assert relay_once(ctx, full_scan=True) == 0  # the worker holds its job: nothing to do
    redis_client.flushdb()  # the worker died, then Redis restarted without persistence
    assert relay_once(ctx) == 1
    assert [j.id for j in queued_jobs(redis_client)] == [alert_job_id(alert_id)]
    assert get_alert(ctx, alert_id).status == AlertStatus.PROCESSING  # the worker moves it on
    assert relay_once(ctx, full_scan=True) == 0


def test_an_alert_queued_just_before_redis_restarted_is_reenqueued_after_the_grace(
    ctx, client, redis_client, monkeypatch
):
    """Found by the chaos run: the scan right after Redis came back empty leaves an alert queued
    less than the grace before (its job may be finished); it must not then wait for the next
    scan in ten minutes (FULL_SCAN_SECONDS), but be enqueued once the grace has passed."""
    monkeypatch.setattr("core.relay.REQUEUE_GRACE_SECONDS", 5.0)  # room for a loaded machine
    alert_id = post(client, alert_body(id="young")).get_json()["alert_id"]
    wait_until(lambda: get_alert(ctx, alert_id).status == AlertStatus.QUEUED, 5, "never marked queued")
    redis_client.flushdb()  # Redis restarted empty a moment after intake enqueued the alert
    assert relay_once(ctx) == 0  # the scan runs (marker gone) but the alert is within its grace
    assert wait_until(lambda: relay_once(ctx), 10, "the young alert was never re-enqueued") == 1
    assert [j.id for j in queued_jobs(redis_client)] == [alert_job_id(alert_id)]
    assert relay_once(ctx) == 0


def test_concurrent_relays_in_several_processes_enqueue_once(
    make_app, make_settings, redis_client, monkeypatch
):
    monkeypatch.setattr("core.relay.REQUEUE_GRACE_SECONDS", 0.0)
    down_client = make_app(REDIS_URL=DOWN).test_client()
    ids = [post(down_client, alert_body(id=f"c{i}")).get_json()["alert_id"] for i in range(20)]
    contexts = [AppContext.build(make_settings()) for _ in range(4)]
    counts: list[int] = []
    barrier = threading.Barrier(len(contexts))

    def relay(ctx: AppContext) -> None:
        barrier.wait()
        total = 0
        for _ in range(5):
            total += relay_once(ctx)
            redis_client.delete(LOCK_KEY)  # defeat the lock: uniqueness must hold without it
        counts.append(total)

    threads = [threading.Thread(target=relay, args=(c,)) for c in contexts]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(counts) == 20
        job_ids = [j.id for j in queued_jobs(redis_client)]
        assert sorted(job_ids) == sorted(alert_job_id(i) for i in ids)
    finally:
        for c in contexts:
            c.close()


def test_relay_thread_runs_and_stops(make_app, make_settings, redis_client):
    down_client = make_app(REDIS_URL=DOWN).test_client()
    alert_id = post(down_client, alert_body()).get_json()["alert_id"]
    ctx = AppContext.build(make_settings())
    thread = start_relay_thread(ctx, interval=0.05)
    try:
        wait_until(lambda: queued_jobs(redis_client), 4, "the relay thread enqueued nothing")
        assert [j.args[0] for j in queued_jobs(redis_client)] == [alert_id]
    finally:
        thread.stop()
        ctx.close()
    assert not thread.is_alive()


def test_duplicates_and_invalid_alerts_are_never_relayed(make_app, make_settings, redis_client):
    down_client = make_app(REDIS_URL=DOWN).test_client()
    post(down_client, alert_body(id="d"))
    post(down_client, alert_body(id="d"))
    post(down_client, alert_body(quantity=0))
    ctx = AppContext.build(make_settings())
    try:
        assert relay_once(ctx) == 1
        assert sorted(a.status for a in alerts(ctx)) == ["duplicate", "invalid", "queued"]
    finally:
        ctx.close()


def test_lost_job_scan_runs_when_redis_lost_its_marker_or_when_forced(ctx, client, redis_client, monkeypatch):
    from rq.job import Job

    monkeypatch.setattr("core.relay.REQUEUE_GRACE_SECONDS", 0.0)
    alert_id = post(client, alert_body()).get_json()["alert_id"]
    assert relay_once(ctx) == 0  # first pass scans (no marker yet) and sets the marker
    redis_client.delete(Job.key_for(alert_job_id(alert_id)))  # one job lost, marker still there
    assert relay_once(ctx) == 0  # not scanned on every tick: the queued set may be large
    assert relay_once(ctx, full_scan=True) == 1
    assert relay_once(ctx, full_scan=True) == 0
    assert [j.id for j in queued_jobs(redis_client)] == [alert_job_id(alert_id)]  # listed once


def test_relay_marks_alerts_whose_job_is_queued_but_row_still_received(ctx, redis_client):
    """A web process that died between enqueue and the 'queued' mark leaves exactly this."""
    from app.webhook import store
    from core.enqueue import enqueue_alert

    recorded = store.record_valid(
        ctx.engine,
        payload={"ticker": "AAPL", "action": "buy"},
        raw_body="{}",
        client_ip=None,
        idempotency_key="k",
        window_seconds=60,
    )
    assert enqueue_alert(ctx.redis, recorded.alert_id, None)
    assert relay_once(ctx) == 0  # nothing new on a queue...
    alert = get_alert(ctx, recorded.alert_id)
    assert alert.status == AlertStatus.QUEUED  # ...but the row caught up
    assert len(queued_jobs(redis_client)) == 1


def test_queue_is_registered_for_rq_tools(client, redis_client):
    from rq import Queue

    post(client, alert_body(account="DU77"))
    assert "tv2ib:orders:DU77" in [q.name for q in Queue.all(connection=redis_client)]


def test_intake_writes_the_job_rq_itself_would_write(redis_client):
    """The consumer, the relay and ``rq info`` read intake's job as rq's own: same hash fields and
    values (but the alert's id, call and timestamps), same queue, same registry; at most once."""
    from rq import Queue
    from rq.job import Job

    from core import enqueue

    queue = Queue("tv2ib:orders:DU5", connection=redis_client)
    queue.enqueue_call(
        "worker.jobs.execute_alert",
        args=("RQ1",),
        job_id=alert_job_id("RQ1"),
        unique=True,
        timeout=enqueue.JOB_TIMEOUT,
        result_ttl=enqueue.JOB_RESULT_TTL,
        failure_ttl=enqueue.JOB_FAILURE_TTL,
        description="execute alert RQ1",
    )
    assert enqueue.enqueue_alert(redis_client, "OURS1", "DU5")
    assert not enqueue.enqueue_alert(redis_client, "OURS1", "DU5")  # already there: not twice
    by_rq = redis_client.hgetall(Job.key_for(alert_job_id("RQ1")))
    ours = redis_client.hgetall(Job.key_for(alert_job_id("OURS1")))
    per_alert = {b"data", b"description", b"created_at", b"enqueued_at"}
    assert set(ours) == set(by_rq)
    assert {k: v for k, v in ours.items() if k not in per_alert} == {
        k: v for k, v in by_rq.items() if k not in per_alert
    }
    assert redis_client.ttl(Job.key_for(alert_job_id("OURS1"))) == -1  # kept, as rq keeps it
    assert queue.job_ids == [alert_job_id("RQ1"), alert_job_id("OURS1")]
    job = Job.fetch(alert_job_id("OURS1"), connection=redis_client)
    assert (job.func_name, job.args, job.kwargs) == ("worker.jobs.execute_alert", ("OURS1",), {})
    assert (job.origin, job.description, job.timeout) == ("tv2ib:orders:DU5", "execute alert OURS1", 300)
    assert job.get_status() == "queued" and job.enqueued_at is not None
    assert "tv2ib:orders:DU5" in [q.name for q in Queue.all(connection=redis_client)]


def test_queued_marks_of_a_batch_move_only_received_alerts_each_once(ctx):
    """The marker's batch: alerts on two queues move to 'queued' with one audit row each; an alert
    a worker already took stays where it is (never backwards), and marking again changes nothing."""
    from sqlalchemy import select, update

    from app.webhook import store
    from core import alert_rows
    from core.models import Alert, AlertEvent

    ids = [
        store.record_valid(
            ctx.engine,
            payload={"ticker": "AAPL", "action": "buy"},
            raw_body="{}",
            client_ip=None,
            idempotency_key=f"batch-{i}",
            window_seconds=60,
        ).alert_id
        for i in range(4)
    ]
    with ctx.engine.begin() as conn:  # a worker was faster than the mark
        conn.execute(update(Alert).where(Alert.id == ids[2]).values(status=AlertStatus.PROCESSING))
    batch = [(ids[0], "tv2ib:orders:DU1"), (ids[1], "tv2ib:orders:DU2"), (ids[2], "tv2ib:orders:DU1")]
    batch.append((ids[3], "tv2ib:orders:DU1"))
    with ctx.engine.connect() as conn:
        assert alert_rows.mark_queued_many(conn, batch) == 3
        assert alert_rows.mark_queued_many(conn, batch) == 0
    assert [(get_alert(ctx, i).status, get_alert(ctx, i).queue_name) for i in ids] == [
        (AlertStatus.QUEUED, "tv2ib:orders:DU1"),
        (AlertStatus.QUEUED, "tv2ib:orders:DU2"),
        (AlertStatus.PROCESSING, None),
        (AlertStatus.QUEUED, "tv2ib:orders:DU1"),
    ]
    with ctx.sessions() as session:
        queued = session.execute(
            select(AlertEvent.alert_id, AlertEvent.message).where(AlertEvent.status == "queued")
        ).all()
    assert sorted(queued) == sorted(
        [
            (ids[0], "queued on tv2ib:orders:DU1"),
            (ids[1], "queued on tv2ib:orders:DU2"),
            (ids[3], "queued on tv2ib:orders:DU1"),
        ]
    )
    assert get_alert(ctx, ids[0]).enqueue_attempts == 1


def test_enqueue_survives_redis_forgetting_its_scripts_and_closing_its_connection(redis_client):
    """Intake's enqueue runs on a connection of its thread's own (core/enqueue.py): after Redis
    forgot the script (a restart: NOSCRIPT) it loads it again, and after Redis closed the
    connection it retries once on a new one; either way the job is on its queue once."""

    assert enqueue.enqueue_alert(redis_client, "WIRE1", "DU9")
    redis_client.script_flush()
    assert enqueue.enqueue_alert(redis_client, "WIRE2", "DU9")

    own = redis_client.__dict__["_tv2ib_thread_connections"].connection
    own.send_command("CLIENT", "ID")
    redis_client.client_kill_filter(_id=own.read_response())
    assert enqueue.enqueue_alert(redis_client, "WIRE3", "DU9")
    assert not enqueue.enqueue_alert(redis_client, "WIRE3", "DU9")  # at most once, as before
    assert redis_client.lrange("rq:queue:tv2ib:orders:DU9", 0, -1) == [
        alert_job_id(a).encode() for a in ("WIRE1", "WIRE2", "WIRE3")
    ]

    down = redis.Redis.from_url(DOWN)
    with pytest.raises(redis.ConnectionError):  # intake then leaves the alert for the relay
        enqueue.enqueue_alert(down, "WIRE4", "DU9")


def test_concurrent_enqueues_from_many_threads_each_land_once(redis_client):
    names = [f"T{i}" for i in range(8)]
    threads = [threading.Thread(target=enqueue.enqueue_alert, args=(redis_client, n, "DU8")) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(redis_client.lrange("rq:queue:tv2ib:orders:DU8", 0, -1)) == sorted(
        alert_job_id(n).encode() for n in names
    )
