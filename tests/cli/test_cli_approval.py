"""``tv2ib approve`` / ``tv2ib reject``: the answer to an alert that waits for approval, through the
real gunicorn and worker (the cli_stack fixture), with the exit code a script checks."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from cli_helpers import run_cli
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from support import alert_status, wait_until

from cli import exitcodes
from cli.stack import ProcessStack
from core.ids import new_alert_id
from core.keys import queue_name
from core.models import Alert, AlertStatus, utcnow

pytestmark = pytest.mark.e2e


def _waiting(sessions: sessionmaker, payload: dict) -> str:
    """An alert as the worker leaves it when its strategy requires approval (its first job done)."""
    alert_id, now = new_alert_id(), utcnow()
    with sessions.begin() as session:
        session.add(Alert(id=alert_id, status=AlertStatus.PENDING_APPROVAL.value, received_at=now, payload=payload,
                          ticker=payload["ticker"], action=payload["action"], strategy=payload.get("strategy"),
                          queue_name=queue_name(None), enqueued_at=now, reason="waiting for approval",
                          approval_deadline=now + timedelta(minutes=5)))  # fmt: skip
    return alert_id


def test_approve_sends_it_now_reject_ends_it_and_an_unknown_id_fails(
    tmp_path: Path, cli_env, cli_stack: ProcessStack, base_env
):
    sessions = sessionmaker(create_engine(base_env["DATABASE_URL"]), expire_on_commit=False)
    buy = {"ticker": "AAPL", "action": "buy", "quantity": 2, "strategy": "careful"}
    approved, rejected = _waiting(sessions, buy), _waiting(sessions, {**buy, "quantity": 3})

    answer = run_cli("approve", approved, env=cli_env, cwd=tmp_path)
    assert answer.returncode == exitcodes.OK, answer.stdout + answer.stderr
    assert f"alert {approved} approved" in answer.stdout
    wait_until(lambda: alert_status(sessions, approved) == "filled", 20, lambda: cli_stack.logs("worker"))

    refused = run_cli("reject", rejected, "--json", env=cli_env, cwd=tmp_path)
    assert refused.returncode == exitcodes.OK and json.loads(refused.stdout)["decision"] == "rejected"
    assert alert_status(sessions, rejected) == "rejected"

    again = run_cli("approve", rejected, env=cli_env, cwd=tmp_path)  # no longer waiting
    assert again.returncode != exitcodes.OK and "approv" in (again.stdout + again.stderr).lower()
    unknown = run_cli("approve", "01JNOSUCHALERT000000000000", env=cli_env, cwd=tmp_path)
    assert unknown.returncode != exitcodes.OK
