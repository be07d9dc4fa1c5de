"""Routing with a real worker and ibsim: a worker without IB_ACCOUNT serves its managed account too,
and a worker never places an alert the relay's sweep rejected."""

from __future__ import annotations

import json
from datetime import timedelta

from rq import Queue
from sqlalchemy import update
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from config.settings import Settings
from core import keys
from core.context import AppContext
from core.enqueue import enqueue_alert
from core.models import Alert, utcnow
from core.relay import relay_once

MANAGED = "DU1234567"  # the account ibsim manages by default
BRACKET = {
    "ticker": "AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190.0,
    "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5},
}  # fmt: skip


def _legs(sim, alert_id):
    return [o for o in sim.state()["orders"] if alert_id in o["orderRef"]]


def _heartbeat(ctx, worker):
    raw = ctx.redis.get(worker.heartbeat_key)
    return json.loads(raw) if raw else {}


def test_worker_without_ib_account_serves_default_and_its_managed_account(sim, running_worker):
    ctx, worker = running_worker.ctx, running_worker.worker
    sim.set_price("AAPL", 190.0)
    wait_until(lambda: _heartbeat(ctx, worker).get("serves") == ["default", MANAGED])
    named = add_alert(ctx, {**BRACKET, "account": MANAGED}, enqueue=False)
    with ctx.sessions.begin() as session:
        session.execute(update(Alert).where(Alert.id == named).values(account=MANAGED))
    Queue(keys.queue_name(MANAGED), connection=ctx.redis).enqueue(keys.EXECUTE_ALERT_JOB, named)
    # the default queue, as before; another symbol: a second buy of AAPL while long is refused
    sim.set_price("MSFT", 420.0)
    unnamed = add_alert(ctx, {**BRACKET, "ticker": "MSFT", "price": 420})
    for alert_id in (named, unnamed):
        wait_until(lambda alert_id=alert_id: alert_status(ctx, alert_id) in ("submitted", "filled"))
        assert len(_legs(sim, alert_id)) == 3


def test_worker_does_not_place_an_alert_the_sweep_rejected(sim, worker_env):
    """The sweep (stale limit 1 s here) rejects an alert the worker (limit 30 s) would still
    trade; a job id for it that shows up again must not make the worker place it."""
    sim.set_price("AAPL", 190.0)
    relay_ctx = AppContext.build(Settings.from_mapping({**worker_env, "STALE_ALERT_SECONDS": "1"}))
    handle = None
    try:
        alert_id = add_alert(relay_ctx, BRACKET, received_at=utcnow() - timedelta(seconds=5), enqueue=False)
        enqueue_alert(relay_ctx.redis, alert_id, None)  # as intake does: job id alert-<id>
        relay_once(relay_ctx)
        assert alert_status(relay_ctx, alert_id) == "rejected"
        default_queue = Queue(keys.queue_name(None), connection=relay_ctx.redis)
        assert default_queue.count == 0  # the sweep took the job off the queue
        default_queue.enqueue(keys.EXECUTE_ALERT_JOB, alert_id)  # a stray second job for it
        handle = WorkerThread(worker_env).start()
        wait_until(lambda: default_queue.count == 0 and handle.worker.consumer.done >= 1)
        assert alert_status(relay_ctx, alert_id) == "rejected"
        assert _legs(sim, alert_id) == []
    finally:
        if handle is not None:
            handle.stop()
        relay_ctx.close()
