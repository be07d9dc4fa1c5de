"""Approval by hand, on the web's side (issue 21): the admin API's and the dashboard's answers to an
alert that waits for approval, the second job an approval enqueues, and the relay's sweeps (the
window that closes, the staleness that counts from the approval). The worker's side and the whole
path with Telegram: tests/worker/test_worker_approval.py, tests/notify/test_notify_approval.py,
tests/e2e/test_e2e_approval.py."""

from __future__ import annotations

from datetime import timedelta

import redis
from app_helpers import alert_body, post, queued_jobs
from rq.job import Job, JobStatus
from sqlalchemy import select, update
from support import TEST_ADMIN_TOKEN
from test_dashboard import csrf_of, sign_in

from core import relay
from core.approval import decide
from core.enqueue import APPROVED_FIELD, alert_job_id
from core.keys import queue_name
from core.models import Alert, AlertEvent, AlertStatus, Notice, utcnow

ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


def waiting(client, ctx, *, left: float = 300, received_ago: float = 0) -> str:
    """An alert as the worker leaves it when its strategy requires approval: its first job taken
    and finished (as worker/consumer.py acknowledges it), the alert ``pending_approval`` until
    ``left`` seconds from now; returns its id."""
    answer = post(client, alert_body(strategy="careful"))
    alert_id = answer.get_json()["alert_id"]
    job_id = alert_job_id(alert_id)
    assert ctx.redis.lrem(f"rq:queue:{queue_name(None)}", 0, job_id) == 1  # the worker took it
    Job.fetch(job_id, connection=ctx.redis).set_status(JobStatus.FINISHED)
    now = utcnow()
    with ctx.sessions.begin() as session:
        session.execute(
            update(Alert)
            .where(Alert.id == alert_id)
            .values(status=AlertStatus.PENDING_APPROVAL, approval_deadline=now + timedelta(seconds=left),
                    received_at=now - timedelta(seconds=received_ago), reason="waiting for approval")
        )  # fmt: skip
        since = now + timedelta(seconds=left - 300)  # an approval_timeout of 5 minutes
        session.add(AlertEvent(alert_id=alert_id, at=since, status="pending_approval", message="waiting"))
    return alert_id


def row(ctx, alert_id: str) -> Alert:
    with ctx.sessions() as session:
        found = session.get(Alert, alert_id)
        assert found is not None
        return found


def audit(ctx, alert_id: str) -> list[tuple[str, str]]:
    with ctx.sessions() as session:
        query = select(AlertEvent.status, AlertEvent.message).where(AlertEvent.alert_id == alert_id)
        return [(s, m or "") for s, m in session.execute(query.order_by(AlertEvent.id))]


def notices(ctx, kind: str) -> list[str]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Notice.text).where(Notice.kind == kind)))


def test_an_approval_by_the_api_puts_the_alert_back_on_its_queue_once(client, ctx) -> None:
    alert_id = waiting(client, ctx)
    answer = client.post(f"/api/alerts/{alert_id}/approve", headers=ADMIN)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {
        "alert_id": alert_id, "decision": "approved", "status": "queued", "by": "the admin API",
    }  # fmt: skip
    # its second job replaced the finished first one, under the same id, and is on the queue once
    [job] = queued_jobs(ctx.redis)
    assert job.id == alert_job_id(alert_id) and job.args == (alert_id,)
    assert job.func_name == "worker.jobs.execute_alert"
    assert ctx.redis.hget(job.key, APPROVED_FIELD) == b"1"
    alert = row(ctx, alert_id)
    assert alert.status == AlertStatus.QUEUED and alert.reason is None
    assert alert.approved_at is not None and alert.approved_at > alert.received_at
    assert ("received", "approved by the admin API: back on its queue, decided now on the position and "
            "prices of this moment") in audit(ctx, alert_id)  # fmt: skip
    # the relay finds the job and adds nothing; a second answer is refused with what it is now
    relay.relay_once(ctx, full_scan=True)
    assert [j.id for j in queued_jobs(ctx.redis)] == [alert_job_id(alert_id)]
    again = client.post(f"/api/alerts/{alert_id}/reject", headers=ADMIN)
    assert again.status_code == 409
    assert again.get_json()["message"] == f"alert {alert_id} is queued, not waiting for approval"
    shown = client.get(f"/api/alerts/{alert_id}", headers=ADMIN).get_json()
    assert shown["approved_at"] and shown["approval_deadline"]


def test_a_rejection_ends_the_alert_with_who_rejected_it(client, ctx) -> None:
    alert_id = waiting(client, ctx)
    assert client.post(f"/api/alerts/{alert_id}/reject").status_code == 401  # the admin token only
    answer = client.post(f"/api/alerts/{alert_id}/reject", headers=ADMIN)
    assert answer.status_code == 200 and answer.get_json()["status"] == "rejected"
    alert = row(ctx, alert_id)
    assert alert.status == AlertStatus.REJECTED and alert.reason == "rejected by the admin API"
    assert audit(ctx, alert_id)[-1] == ("rejected", "rejected by the admin API")
    assert any("rejected by the admin API" in text for text in notices(ctx, "alert_rejected"))
    assert queued_jobs(ctx.redis) == []
    assert client.post(f"/api/alerts/{alert_id}/approve", headers=ADMIN).status_code == 409
    unknown = client.post("/api/alerts/01NOSUCHALERT0000000000000/approve", headers=ADMIN)
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"


def test_the_window_closes_and_the_relay_rejects_with_the_reason(client, ctx) -> None:
    alert_id = waiting(client, ctx, left=-1)
    late = client.post(f"/api/alerts/{alert_id}/approve", headers=ADMIN)
    assert late.status_code == 409 and "the approval window closed at" in late.get_json()["message"]
    assert row(ctx, alert_id).status == AlertStatus.PENDING_APPROVAL
    assert relay.sweep_unapproved(ctx) == 1
    alert = row(ctx, alert_id)
    assert alert.status == AlertStatus.REJECTED
    assert alert.reason.startswith("not approved within 300 s (approval_timeout): the window closed at ")
    assert any("not approved within" in text for text in notices(ctx, "alert_rejected"))
    assert queued_jobs(ctx.redis) == []  # nothing was enqueued for it
    assert relay.sweep_unapproved(ctx) == 0


def test_an_approved_alert_goes_stale_from_its_approval_not_its_arrival(client, ctx) -> None:
    # received ten minutes ago (STALE_ALERT_SECONDS is 120), approved now: no worker took it yet,
    # and the relay's sweep leaves it to the worker; once the limit has passed since the approval,
    # it is swept like any alert nobody took
    alert_id = waiting(client, ctx, received_ago=600)
    assert client.post(f"/api/alerts/{alert_id}/approve", headers=ADMIN).status_code == 200
    assert relay.sweep_unconsumed(ctx) == 0
    assert row(ctx, alert_id).status == AlertStatus.QUEUED
    with ctx.sessions.begin() as session:
        session.execute(
            update(Alert).where(Alert.id == alert_id).values(approved_at=utcnow() - timedelta(seconds=121))
        )
    assert relay.sweep_unconsumed(ctx) == 1
    assert row(ctx, alert_id).reason.startswith("no worker took it within 120 s")


def test_an_approval_while_redis_is_down_is_kept_and_the_relay_enqueues_it(client, ctx) -> None:
    alert_id = waiting(client, ctx)
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    doc = decide(ctx.sessions, down, ctx.settings, alert_id, approve=True, by="the admin API")
    assert doc["status"] == "received"
    assert queued_jobs(ctx.redis) == []  # the first job is finished, nothing new yet
    relay.relay_once(ctx)  # Redis is back: the approved alert's job replaces the finished one
    [job] = queued_jobs(ctx.redis)
    assert job.id == alert_job_id(alert_id) and ctx.redis.hget(job.key, APPROVED_FIELD) == b"1"
    assert row(ctx, alert_id).status == AlertStatus.QUEUED


def test_the_dashboard_approves_with_its_csrf_token(client, ctx) -> None:
    alert_id = waiting(client, ctx)
    csrf = sign_in(client)
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Waiting for your approval" in page and 'value="approve"' in page
    assert csrf_of(page) == csrf
    forged = client.post(f"/alerts/{alert_id}/approval", data={"decision": "approve"})
    assert forged.status_code == 403
    assert row(ctx, alert_id).status == AlertStatus.PENDING_APPROVAL
    done = client.post(f"/alerts/{alert_id}/approval", data={"decision": "approve", "csrf_token": csrf})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/alerts/{alert_id}")
    assert row(ctx, alert_id).status == AlertStatus.QUEUED
    assert audit(ctx, alert_id)[-2][1].startswith("approved by the dashboard")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Waiting for your approval" not in page and "Approved " in page
    # a second press (another tab) changes nothing and shows the alert as it is
    again = client.post(f"/alerts/{alert_id}/approval", data={"decision": "reject", "csrf_token": csrf})
    assert again.status_code == 302 and row(ctx, alert_id).status == AlertStatus.QUEUED
    listed = client.get("/?status=pending_approval").get_data(as_text=True)
    assert alert_id not in listed
