"""Alerts and flattens go only where a worker listens: intake and flatten refuse an account no
worker serves, and the relay's sweep ends what nobody took within STALE_ALERT_SECONDS."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from app_helpers import alert_body, get_alert, post, queued_jobs
from rq import Queue
from sqlalchemy import select, update
from support import TEST_ADMIN_TOKEN
from test_dashboard import csrf_of, sign_in

from app.resources import resources
from core import keys
from core.enqueue import alert_job_id
from core.models import Alert, AlertStatus, Notice, utcnow
from core.relay import _why_untaken, relay_once, waits_for_its_worker
from core.routing import Served, ServedCache, account_refusal
from core.services import FLATTEN_JOB

AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


def beat(redis_client, account: str | None, serves: list[str] | None, client_id: int = 1) -> None:
    """A live worker heartbeat, as worker/runtime.py writes it."""
    doc = {"ts": time.time(), "ib_connected": True, "account": account, "client_id": client_id,
           "pid": 1, "queue": keys.queue_name(account), "serves": serves}  # fmt: skip
    key = keys.heartbeat_key(account, client_id)
    redis_client.set(key, json.dumps(doc), ex=keys.HEARTBEAT_TTL_SECONDS)
    redis_client.sadd("tv2ib:workers", key)


def age(ctx, alert_id: str, seconds: float) -> None:
    """Pretend the alert was received ``seconds`` ago."""
    with ctx.sessions.begin() as session:
        session.execute(
            update(Alert)
            .where(Alert.id == alert_id)
            .values(received_at=utcnow() - timedelta(seconds=seconds))
        )


def notices(ctx) -> list[Notice]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Notice).order_by(Notice.id)))


# ---------------------------------------------------------------------------------------- intake


def test_intake_refuses_an_account_no_worker_serves(client, ctx, redis_client):
    beat(redis_client, "DU1", ["DU1"])
    refused = post(client, alert_body(account="DU2"))
    assert refused.status_code == 422
    body = refused.get_json()
    assert "no worker serves account DU2" in body["fields"]["account"][0]
    assert "DU1" in body["fields"]["account"][0] and "DU1" in body["message"]
    stored = get_alert(ctx, body["alert_id"])
    assert stored.status == AlertStatus.INVALID and "DU2" in stored.reason
    # every worker has IB_ACCOUNT set: nobody consumes the default queue
    no_account = post(client, alert_body())
    assert no_account.status_code == 422
    assert "without an account" in no_account.get_json()["fields"]["account"][0]
    served = post(client, alert_body(account="DU1"))
    assert served.status_code == 202
    assert [j.args[0] for j in queued_jobs(redis_client, "DU1")] == [served.get_json()["alert_id"]]
    assert queued_jobs(redis_client, "DU2") == [] and queued_jobs(redis_client) == []


def test_intake_accepts_any_account_while_no_worker_heartbeat_exists_or_one_is_learning(client, redis_client):
    assert post(client, alert_body(account="DU2")).status_code == 202  # nobody to ask: the outbox keeps it
    beat(redis_client, None, None)  # a worker without IB_ACCOUNT that has not reached IB yet
    resources(client.application).intake.served.ttl = 0
    assert post(client, alert_body(account="DU3")).status_code == 202


# --------------------------------------------------------------------------------------- flatten


def test_an_account_served_a_moment_ago_is_not_refused_after_redis_restarted(redis_client):
    """Found by the chaos run: Redis restarted empty, DU1's worker beat again before DU2's, and
    alerts for DU2 were refused (422) meanwhile. An account seen served within ``remember``
    seconds stays served; one never served, or not for longer, is refused."""
    cache = ServedCache(redis_client, ttl=0)
    beat(redis_client, "DU1", ["DU1"], client_id=1)
    beat(redis_client, "DU2", ["DU2"], client_id=2)
    assert cache.get().accounts == {"DU1", "DU2"}
    redis_client.flushdb()  # Redis restarted empty
    beat(redis_client, "DU1", ["DU1"], client_id=1)  # DU1's worker beats first
    served = cache.get()
    assert account_refusal("DU2", served) is None
    assert "no worker serves account DU3" in account_refusal("DU3", served)
    forgetful = ServedCache(redis_client, ttl=0, remember=0)
    assert "no worker serves account DU2" in account_refusal("DU2", forgetful.get())


def test_api_flatten_refuses_malformed_and_unserved_accounts(client, redis_client):
    answer = client.post("/api/flatten?account=../../x", headers=AUTH)
    assert answer.status_code == 422
    assert answer.get_json()["fields"]["account"] == [
        "not an account id: contains characters that are not allowed (letters, digits, _ . - only)"
    ]
    beat(redis_client, "DU1", ["DU1"])
    answer = client.post("/api/flatten?account=DU2", headers=AUTH)
    assert answer.status_code == 422
    assert answer.get_json()["fields"]["account"] == ["no worker serves account DU2; workers serve: DU1"]
    assert client.post("/api/flatten", headers=AUTH).status_code == 422  # default: nobody serves it
    # an empty account (a script's unset variable) is no account, not "the default worker's"
    # (found by schemathesis: it flattened the default worker's account)
    beat(redis_client, None, ["default"])
    empty = client.post("/api/flatten?account=", headers=AUTH)
    assert empty.status_code == 422
    assert empty.get_json()["fields"]["account"] == ["not an account id: must not be empty"]
    assert redis_client.keys("rq:queue:*") == []  # nothing was queued where nobody listens
    assert client.post("/api/flatten?account=DU1", headers=AUTH).status_code == 202
    jobs = Queue(keys.queue_name("DU1"), connection=redis_client).jobs
    assert [(j.func_name, j.args) for j in jobs] == [(FLATTEN_JOB, ("DU1", "api"))]


def test_flatten_takes_the_account_ids_alerts_take_and_never_default(client, redis_client):
    beat(redis_client, None, ["default", "DU_1.a-b"])  # alerts accept _ . - in account ids
    answer = client.post("/api/flatten?account=DU_1.a-b", headers=AUTH)
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["account"] == "DU_1.a-b"
    assert [j.args for j in Queue(keys.queue_name("DU_1.a-b"), connection=redis_client).jobs] == [
        ("DU_1.a-b", "api")
    ]
    refused = client.post("/api/flatten?account=default", headers=AUTH)
    assert refused.status_code == 422
    assert refused.get_json()["fields"]["account"][0].startswith(
        "not an account id: 'default' is not an account id: it is tv2ib's name for alerts that name no account"
    )
    assert Queue(keys.queue_name(None), connection=redis_client).count == 0
    # no account named: the worker that takes the alerts naming none (its own account)
    plain = client.post("/api/flatten", headers=AUTH)
    assert plain.status_code == 202 and plain.get_json()["account"] is None
    assert Queue(keys.queue_name(None), connection=redis_client).count == 1


def test_dashboard_offers_only_the_served_accounts(make_app, redis_client):
    client = make_app(IB_ACCOUNT="DU777").test_client()  # the web's own setting is not what workers serve
    beat(redis_client, None, ["default", "DU5"])
    beat(redis_client, "DU6", ["DU6"])
    csrf = sign_in(client)
    page = client.get("/flatten").get_data(as_text=True)
    # "default" is the queue of the worker that trades DU5, not an account to offer
    assert '<option value="DU5">DU5</option>' in page and '<option value="DU6">DU6</option>' in page
    assert ">default<" not in page and "DU777" not in page
    refused = client.post(
        "/flatten", data={"csrf_token": csrf_of(page), "account": "DU777", "confirm": "yes"}
    )
    assert refused.status_code == 422 and "no worker serves account DU777" in refused.get_data(as_text=True)
    assert Queue(keys.queue_name("DU777"), connection=redis_client).count == 0
    done = client.post("/flatten", data={"csrf_token": csrf, "account": "DU5", "confirm": "yes"})
    assert done.status_code == 200
    assert Queue(keys.queue_name("DU5"), connection=redis_client).count == 1


# ----------------------------------------------------------------------------------------- sweep


def test_sweep_rejects_alerts_nobody_took_with_the_reason_and_a_notice(client, ctx, redis_client):
    down = post(client, alert_body(account="DU9", strategy="breakout")).get_json()["alert_id"]
    age(ctx, down, 200)
    young = post(client, alert_body(account="DU9", id="young")).get_json()["alert_id"]
    relay_once(ctx)
    alert = get_alert(ctx, down)
    assert alert.status == AlertStatus.REJECTED
    assert alert.reason == "no worker took it within 120 s: workers were down (no worker heartbeat)"
    assert get_alert(ctx, young).status == AlertStatus.QUEUED  # not yet stale
    assert [j.args[0] for j in queued_jobs(redis_client, "DU9")] == [young]  # the swept job is gone
    [notice] = notices(ctx)
    assert notice.kind == "alert_rejected" and notice.dedup_key == f"rejected:{down}:log"
    assert "workers were down" in notice.text and "AAPL" in notice.text and "breakout" in notice.text

    # with a worker serving another account, the reason says which accounts are served
    beat(redis_client, "DU1", ["DU1"])
    age(ctx, young, 200)
    relay_once(ctx)
    assert get_alert(ctx, young).reason == (
        "no worker took it within 120 s: no worker serves account DU9 (workers serve: DU1)"
    )
    relay_once(ctx)  # nothing twice
    assert len(notices(ctx)) == 2
    events = [e.status for e in get_alert_events(ctx, young)]
    assert events[-1] == "rejected" and events.count("rejected") == 1


def get_alert_events(ctx, alert_id: str):
    with ctx.sessions() as session:
        return list(session.get(Alert, alert_id).events)


def test_sweep_rejects_received_alerts_that_never_reached_a_queue(make_app, make_settings):
    from core.context import AppContext

    down = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    alert_id = post(down.test_client(), alert_body()).get_json()["alert_id"]
    ctx = AppContext.build(make_settings())  # Redis is back, long after
    try:
        age(ctx, alert_id, 500)
        assert relay_once(ctx) == 0  # ended, not enqueued to trade late
        alert = get_alert(ctx, alert_id)
        assert alert.status == AlertStatus.REJECTED
        assert (
            alert.reason == "no worker took it within 120 s: it never reached a queue (Redis was unreachable)"
        )
        assert queued_jobs(ctx.redis) == []
    finally:
        ctx.close()


def test_sweep_leaves_jobs_a_worker_holds_or_held(client, ctx, redis_client):
    """The race: a worker that took the job (BLMOVE to its processing list) decides, not the
    sweep; nor does the sweep take a job a worker put back (its orders may be at IB)."""
    held = post(client, alert_body(id="held")).get_json()["alert_id"]
    put_back = post(client, alert_body(id="back")).get_json()["alert_id"]
    queue_key = f"rq:queue:{keys.queue_name(None)}"
    processing = f"tv2ib:processing:{keys.queue_name(None)}:default:1"
    assert redis_client.blmove(queue_key, processing, 1, "LEFT", "RIGHT").decode() == alert_job_id(held)
    redis_client.set(f"tv2ib:taken:{alert_job_id(put_back)}", "1")  # what Consumer._put_back does
    for alert_id in (held, put_back):
        age(ctx, alert_id, 200)
    relay_once(ctx)
    assert get_alert(ctx, held).status == AlertStatus.QUEUED
    assert get_alert(ctx, put_back).status == AlertStatus.QUEUED
    assert [j.args[0] for j in queued_jobs(redis_client)] == [put_back]
    assert notices(ctx) == []


def test_sweep_reasons_never_name_default_as_an_account():
    served = Served(frozenset({"default", "DU1"}), True, 1)
    assert _why_untaken(None, served, 120) == (
        "no worker took it within 120 s: the worker of alerts without an account did not take it (stopped or stuck)"
    )
    assert _why_untaken("DU9", served, 120) == (
        "no worker took it within 120 s: no worker serves account DU9 (workers serve: DU1 and alerts that name "
        "no account)"
    )


def test_sweep_leaves_an_exit_queued_while_a_worker_serves_its_account(client, ctx, redis_client):
    """A worker waiting for IB holds one job; the exits queued behind it must not be swept as
    stale (they go out as soon as IB is back), but an entry beside them is."""
    beat(redis_client, "DU1", ["DU1"])
    exit_id = post(client, alert_body(account="DU1", action="exit", id="x")).get_json()["alert_id"]
    flat_id = post(client, alert_body(account="DU1", sentiment="flat", action="sell", id="f")).get_json()[
        "alert_id"
    ]
    entry_id = post(client, alert_body(account="DU1", id="e")).get_json()["alert_id"]
    for alert_id in (exit_id, flat_id, entry_id):
        age(ctx, alert_id, 10_000)
    relay_once(ctx)
    assert get_alert(ctx, exit_id).status == AlertStatus.QUEUED
    assert get_alert(ctx, flat_id).status == AlertStatus.QUEUED
    assert get_alert(ctx, entry_id).status == AlertStatus.REJECTED
    assert sorted(j.args[0] for j in queued_jobs(redis_client, "DU1")) == sorted([exit_id, flat_id])


@pytest.mark.parametrize(
    ("payload", "account", "served", "waits"),
    [
        ({"action": "exit"}, "DU1", Served(frozenset({"DU1"}), True, 1), True),
        ({"action": "sell", "sentiment": "flat"}, "DU1", Served(frozenset({"DU1"}), True, 1), True),
        ({"action": "exit"}, None, Served(frozenset({"default"}), True, 1), True),
        (
            {"action": "exit"},
            "DU1",
            Served(frozenset(), False, 1),
            True,
        ),  # its worker has not learned its account
        (
            {"action": "exit"},
            "DU9",
            Served(frozenset({"DU1"}), True, 1),
            False,
        ),  # nobody serves DU9: the trader hears
        ({"action": "exit"}, "DU1", Served(frozenset(), False, 0), False),  # no worker at all
        ({"action": "buy"}, "DU1", Served(frozenset({"DU1"}), True, 1), False),  # an entry goes stale
        ({"action": "sell", "sentiment": "bearish"}, "DU1", Served(frozenset({"DU1"}), True, 1), False),
        (None, "DU1", Served(frozenset({"DU1"}), True, 1), False),
    ],
)
def test_which_old_alerts_wait_for_their_worker(payload, account, served, waits):
    assert waits_for_its_worker(payload, account, served) is waits
