"""A worker SIGKILLed mid-job and never restarted: another worker (another client id) takes its job
back once the dead one's heartbeat is gone, and the alert ends once, with one set of orders.

Real processes: ``python -m ibsim`` and ``python -m worker`` (SQLite, private Redis DB). The first
worker dies at a crash point (``TV2IB_CRASH_AT``, worker/execution/protocol.py) with the job on its
processing list; the second one runs under another ``IB_CLIENT_ID``, so it is not the first one's
restart (a restart under the same name requeues its own list at start: test_e2e_worker_crash.py).
"""

from __future__ import annotations

import signal

import pytest
import redis
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker
from support import alert_status, queue_alert, wait_until

from core import keys
from core.db import migrate
from core.models import Fill

pytestmark = pytest.mark.e2e

PAYLOAD = {
    "ticker": "AAPL", "action": "buy", "quantity": 7, "orderType": "market", "price": 190,
    "takeProfit": {"amount": 3}, "stopLoss": {"amount": 2},
}  # fmt: skip
# the dead worker's heartbeat expires (15 s), then the next reclaim turn (5 s) takes the job back
RECLAIM_WAIT = 60


def _dead_list(redis_client: redis.Redis, client_id: int) -> list[bytes]:
    key = keys.processing_key(keys.queue_name(None), f"{keys.DEFAULT_ACCOUNT}:{client_id}")
    return redis_client.lrange(key, 0, -1)


def _idle(redis_client: redis.Redis, client_id: int) -> bool:
    """The default queue and the worker's processing list are empty (its job is done)."""
    return not redis_client.llen(f"rq:queue:{keys.queue_name(None)}") and not _dead_list(
        redis_client, client_id
    )


def _run_and_die(stack, sessions, redis_client, payload, point: str, client_id: int) -> str:
    """Start a worker that is SIGKILLed at ``point`` while it runs the alert's job; never restarted."""
    stack.start_worker(wait_connected=False, IB_CLIENT_ID=str(client_id), TV2IB_CRASH_AT=point)
    alert_id = queue_alert(sessions, redis_client, payload)
    code = stack.wait_worker_exit(timeout=30)
    assert code == -signal.SIGKILL, f"{point}: worker exited with {code}\n{stack.logs('worker')}"
    assert len(_dead_list(redis_client, client_id)) == 1, "the job is not left on the dead worker's list"
    return alert_id


def _fills(sessions, alert_id: str) -> int:
    with sessions() as session:
        return len(list(session.scalars(select(Fill).where(Fill.alert_id == alert_id))))


def test_a_dead_workers_job_is_taken_back_by_heartbeat_and_runs_once(stack, base_env, redis_client):
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.sim_post("/price", {"symbol": "MSFT", "secType": "STK", "price": 400.0})
    engine = create_engine(base_env["DATABASE_URL"])
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)

    # 1. killed before anything went out: the other worker places the bracket, once
    unsent = _run_and_die(stack, sessions, redis_client, PAYLOAD, "before_place", 21)
    stack.start_worker(wait_connected=False, IB_CLIENT_ID="22")
    wait_until(lambda: alert_status(sessions, unsent) == "filled", RECLAIM_WAIT,
               lambda: f"alert not taken back\n{stack.logs('worker')}")  # fmt: skip
    assert _dead_list(redis_client, 21) == []
    ours = [o for o in stack.sim_state()["orders"] if unsent in o["orderRef"]]
    assert sorted(o["orderRef"].rsplit(":", 1)[1] for o in ours) == ["entry", "sl", "tp"], ours
    assert {o["clientId"] for o in ours} == {22}
    wait_until(lambda: _fills(sessions, unsent) == 1, 10, "fill not recorded once")
    # flat again, by the worker whose exits they are (another client id could not cancel them)
    flat = queue_alert(sessions, redis_client, {"ticker": "AAPL", "action": "exit"})
    wait_until(
        lambda: alert_status(sessions, flat) == "filled", 20, lambda: f"not flat\n{stack.logs('worker')}"
    )
    assert stack.kill_worker(signal.SIGTERM) == 0

    # 2. killed after the whole bracket went out, before it was recorded (a limit entry that rests:
    # no execution tells the new worker's reconciliation about it): the other worker, which cannot
    # see client 23's working orders on its own connection, asks IB for every client's, finds the
    # legs, adopts them and sends nothing again
    msft = {**PAYLOAD, "ticker": "MSFT", "price": 400, "orderType": "limit", "limitPrice": 390}
    sent = _run_and_die(stack, sessions, redis_client, msft, "after_sl_placed", 23)
    stack.start_worker(wait_connected=False, IB_CLIENT_ID="24")
    wait_until(lambda: "took back 1 job(s) of worker default:23" in stack.logs("worker"), RECLAIM_WAIT,
               lambda: f"job not taken back\n{stack.logs('worker')}")  # fmt: skip
    wait_until(lambda: _idle(redis_client, 24), 30, lambda: f"job not done\n{stack.logs('worker')}")
    assert alert_status(sessions, sent) == "submitted"
    state = stack.sim_state()
    ours = [o for o in state["orders"] if sent in o["orderRef"]]
    assert sorted(o["orderRef"].rsplit(":", 1)[1] for o in ours) == ["entry", "sl", "tp"], ours
    assert {o["clientId"] for o in ours} == {23}, "a leg was sent again by the second worker"
    assert "IB already has" in stack.logs("worker")
    engine.dispose()
