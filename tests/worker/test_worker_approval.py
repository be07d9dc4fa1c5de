"""Approval by hand through a real worker thread and ibsim (issue 21): an opening of a strategy that
requires approval waits with nothing decided and nothing at IB; exits and flattens never wait; once
approved it is decided on the position and prices of that moment, and its staleness counts from
the approval. The answer itself: tests/app/test_approval.py; Telegram's buttons:
tests/notify/test_notify_approval.py; real processes: tests/e2e/test_e2e_approval.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_ends, alert_status

from core.approval import decide
from core.enqueue import alert_job_id
from core.keys import queue_name
from core.models import Alert, AlertEvent, Fill, Notice, utcnow
from core.services import get_alert

RISK = """\
defaults:
  max_order_notional: 1,000,000
strategies:
  careful:
    require_approval: true
    approval_timeout: 2m
  free: {}
"""
CAREFUL = {"ticker": "AAPL", "action": "buy", "quantity": 5, "strategy": "careful"}


@contextmanager
def running(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerThread]:
    (tmp_path / "risk.yaml").write_text(RISK)
    handle = WorkerThread({**worker_env, "RISK_FILE": str(tmp_path / "risk.yaml")}).start()
    try:
        yield handle
    finally:
        handle.stop()


def waits(ctx, payload: dict, **kwargs) -> str:
    alert_id = add_alert(ctx, payload, **kwargs)
    wait_until(lambda: alert_status(ctx, alert_id) == "pending_approval", 20)
    return alert_id


def test_an_opening_waits_then_is_decided_on_the_prices_of_its_approval(sim, worker_env, tmp_path):
    with running(worker_env, tmp_path) as handle:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        alert_id = waits(ctx, CAREFUL)
        alert = get_alert(ctx.sessions, alert_id)
        assert alert["plan"] is None and alert["approval_deadline"] is not None
        assert alert["reason"].startswith('waiting for approval (strategy "careful" requires it) until ')
        assert alert["reason"].endswith("(approval_timeout 2 min); nothing is decided before")
        assert sim.state()["orders"] == []
        with ctx.sessions() as session:  # the question, in the same transaction (the log chat here)
            [question] = session.scalars(select(Notice).where(Notice.kind == "approval")).all()
        assert question.dedup_key == f"approval:{alert_id}:log"
        assert "Approval needed" in question.text and "buy 5 · market" in question.text
        assert "Approve within 2 min" in question.text

        # a rerun of the job that asked (a restart before its acknowledgement) asks nothing again
        ctx.redis.rpush(f"rq:queue:{queue_name(None)}", alert_job_id(alert_id))
        wait_until(lambda: ctx.redis.llen(f"rq:queue:{queue_name(None)}") == 0, 10)
        with ctx.sessions() as session:
            assert len(session.scalars(select(Notice).where(Notice.kind == "approval")).all()) == 1
        assert alert_status(ctx, alert_id) == "pending_approval" and sim.state()["orders"] == []

        sim.set_price("AAPL", 195.0)  # the market moved while the trader thought about it
        decide(ctx.sessions, ctx.redis, ctx.settings, alert_id, approve=True, by="the admin API")
        wait_until(lambda: alert_status(ctx, alert_id) == "filled", 20)
        with ctx.sessions() as session:
            [fill] = session.scalars(select(Fill).where(Fill.alert_id == alert_id)).all()
            steps = list(session.scalars(select(AlertEvent.status).where(AlertEvent.alert_id == alert_id)))
        assert float(fill.price) == 195.0 and float(fill.quantity) == 5
        assert steps[:4] == ["pending_approval", "received", "queued", "processing"]


def test_exits_and_flattens_never_wait_and_other_strategies_go_at_once(sim, worker_env, tmp_path):
    with running(worker_env, tmp_path) as handle:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        alert_ends(ctx, {**CAREFUL, "strategy": "free"}, "filled")  # long 5, no approval asked
        flat = {"ticker": "AAPL", "action": "sell", "sentiment": "flat", "quantity": 5, "strategy": "careful"}
        alert_ends(ctx, flat, "filled")  # closed at once
        alert_ends(ctx, {**CAREFUL, "strategy": "free"}, "filled")
        alert_ends(
            ctx, {"ticker": "AAPL", "action": "sell", "positionSize": 0, "strategy": "careful"}, "filled"
        )
        alert_ends(ctx, {"ticker": "AAPL", "action": "exit", "strategy": "careful"}, "cancelled")  # flat
        alert_ends(ctx, {"ticker": "AAPL", "action": "cancel", "strategy": "careful"}, "cancelled")
        with ctx.sessions() as session:
            assert session.scalars(select(Notice).where(Notice.kind == "approval")).all() == []


def test_an_old_alert_approved_now_is_not_stale(sim, worker_env, tmp_path):
    # STALE_ALERT_SECONDS is 30 here: received a minute ago, it would be refused as stale; approved
    # now, its limit counts from the approval (worker/execution/executor.py reads staleness_start)
    with running(worker_env, tmp_path) as handle:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        alert_id = waits(ctx, CAREFUL)
        with ctx.sessions.begin() as session:  # the trader took a minute to answer
            session.get(Alert, alert_id).received_at = utcnow() - timedelta(seconds=60)
        decide(ctx.sessions, ctx.redis, ctx.settings, alert_id, approve=True, by="the admin API")
        wait_until(lambda: alert_status(ctx, alert_id) == "filled", 20)
        with ctx.sessions() as session:
            alert = session.get(Alert, alert_id)
            assert (
                alert.approved_at is not None and (alert.approved_at - alert.received_at).total_seconds() > 59
            )
        # rejected instead: nothing ever reaches IB
        sim_orders = len(sim.state()["orders"])
        other = waits(ctx, CAREFUL)
        decide(ctx.sessions, ctx.redis, ctx.settings, other, approve=False, by="the admin API")
        assert alert_status(ctx, other) == "rejected" and len(sim.state()["orders"]) == sim_orders
