"""SIGTERM: the first stops after the job in hand and disconnects cleanly; a second exits at once;
no job is lost either way (real ``python -m worker`` and ``python -m ibsim`` processes)."""

from __future__ import annotations

import json
import signal
import time

import pytest
import redis
from rq import Queue
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from support import alert_status, queue_alert, wait_until

from core import keys
from core.db import migrate

pytestmark = pytest.mark.e2e

MANAGED = "DU1234567"  # the account ibsim manages


def test_sigterm_warm_then_cold_and_no_job_lost(stack, base_env):
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    engine = create_engine(base_env["DATABASE_URL"])
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    client = redis.Redis.from_url(base_env["REDIS_URL"])
    beat = keys.heartbeat_key(None, int(stack.env["IB_CLIENT_ID"]))
    payload = {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190, "stopLoss": {"amount": 1}}

    # 1. idle worker: one SIGTERM -> exit 0, IB session closed, heartbeat removed
    stack.start_worker()
    assert stack.kill_worker(signal.SIGTERM) == 0
    assert client.get(beat) is None
    assert stack.sim_state()["clients"] == []

    # 2. a job in flight (a cancel waiting 2 s for IB's confirmation): the first SIGTERM waits for
    #    it, a second exits at once; the next start runs the job again, harmlessly
    stack.start_worker()
    resting = queue_alert(sessions, client, {"ticker": "MSFT", "action": "buy", "quantity": 1, "orderType": "limit",
                                      "limitPrice": 400})  # fmt: skip
    wait_until(lambda: alert_status(sessions, resting) == "submitted", 10, stack.logs("worker"))
    stack.sim_post("/fault", {"kind": "delay", "ms": 2000})
    cancel = queue_alert(sessions, client, {"ticker": "MSFT", "action": "cancel"})
    processing = f"tv2ib:processing:{keys.queue_name(None)}:default:11"
    wait_until(lambda: client.llen(processing) == 1, 10, "the job was not taken")
    time.sleep(0.2)
    proc = stack.procs["worker"]
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert proc.poll() is None, "the first SIGTERM must let the job in flight finish"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 1 and time.monotonic() - started < 2
    assert client.llen(processing) == 1
    stack.sim_post("/fault", {"kind": "delay", "ms": 0})

    # 3. a job waiting for IB (ibsim refusing connections) goes back on the queue at SIGTERM. A
    # worker with IB_ACCOUNT claims its account and takes its jobs at once (one without IB_ACCOUNT
    # takes nothing before IB has told it which account it trades: docs/scaling.md).
    # ibsim refuses until the test clears the fault: on a loaded machine (parallel test workers) a
    # timed refusal (5 s, then 8 s) once ended before the worker had started and taken the job
    stack.sim_post("/fault", {"kind": "refuse", "seconds": 120})
    stack.start_worker(wait_connected=False, IB_ACCOUNT=MANAGED)
    waiting = queue_alert(sessions, client, {**payload, "account": MANAGED}, enqueue=False)
    account_queue = Queue(keys.queue_name(MANAGED), connection=client)
    account_queue.enqueue(keys.EXECUTE_ALERT_JOB, waiting)
    pid = stack.procs["worker"].pid
    account_beat = keys.heartbeat_key(MANAGED, int(stack.env["IB_CLIENT_ID"]))

    def holding_a_job() -> bool:  # the heartbeat names the job in hand, waiting for IB
        raw = client.get(account_beat)
        doc = json.loads(raw) if raw else {}
        return doc.get("pid") == pid and doc.get("current_job") is not None

    wait_until(holding_a_job, 15, stack.logs("worker"))
    assert stack.kill_worker(signal.SIGTERM) == 0
    assert (
        account_queue.count == 1 and client.llen(f"tv2ib:processing:{account_queue.name}:{MANAGED}:11") == 0
    )
    assert client.llen(processing) == 1  # the cancel job waits for the worker of its own queue
    stack.sim_post("/fault", {"kind": "clear"})  # ibsim accepts connections again

    # both alerts are placed exactly once by the next worker (without IB_ACCOUNT it serves both
    # queues)
    stack.start_worker()
    wait_until(lambda: alert_status(sessions, cancel) == "cancelled", 20, stack.logs("worker"))
    assert alert_status(sessions, resting) == "cancelled"
    wait_until(lambda: alert_status(sessions, waiting) == "filled", 20, stack.logs("worker"))
    ours = [o for o in stack.sim_state()["orders"] if waiting in o["orderRef"] and o["transmit"]]
    assert sorted(o["orderRef"].rsplit(":", 1)[1] for o in ours) == ["entry", "sl"]
    client.close()
    engine.dispose()
