"""Approval from Telegram, end to end (issue 21, "Done when: Approval"): real processes (gunicorn,
``python -m worker``, ``python -m ibsim``) and the fake Bot API reached by the worker's real
python-telegram-bot client.

An alert of a strategy that requires approval waits with nothing sent to ibsim; a press from a chat
that is not configured changes nothing; the owner's press makes the worker decide it on the price
of that moment (the market moved meanwhile: the fill is at the new price). An alert nobody answers
is rejected by the web's relay when its ``approval_timeout`` is up, with the reason, in Telegram
too. An exit of the same strategy never asks.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.telegram_api import FakeTelegramAPI, SentMessage
from support import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import Stack  # noqa: E402

pytestmark = pytest.mark.e2e

OWNER = 111
STRANGER = 999
RISK = """\
defaults:
  max_order_notional: 1,000,000
strategies:
  careful:
    require_approval: true
    approval_timeout: 2m
  hasty:
    require_approval: true
    approval_timeout: 3s
"""


@pytest.fixture
def approval_stack(tmp_path: Path, base_env: dict[str, str], fake_tg: FakeTelegramAPI) -> Iterator[Stack]:
    (tmp_path / "risk.yaml").write_text(RISK)
    env = {
        **base_env,
        **fake_tg.settings(OWNER),
        "RISK_FILE": str(tmp_path / "risk.yaml"),
    }
    with Stack(tmp_path, env) as stack:
        stack.start_sim()
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
        stack.start_web()
        stack.start_worker()
        yield stack


def message(api: FakeTelegramAPI, *needles: str, timeout: float = 20.0) -> SentMessage:
    found = api.wait_message(OWNER, *needles, timeout=timeout)
    assert found is not None, [m.text for m in api.messages(OWNER)]
    return found


def alert(stack: Stack, alert_id: str) -> dict[str, Any]:
    return stack.admin_get(f"/api/alerts/{alert_id}").json()


def post(stack: Stack, payload: dict[str, Any]) -> str:
    answer = stack.post_alert(payload)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["alert_id"])


def test_approved_in_telegram_executes_on_fresh_prices_unanswered_times_out(
    approval_stack: Stack, fake_tg: FakeTelegramAPI
) -> None:
    stack = approval_stack
    alert_id = post(
        stack, {"ticker": "AAPL", "action": "buy", "quantity": 2, "price": 190, "strategy": "careful"}
    )
    question = message(fake_tg, "Approval needed", alert_id)
    approve = next(
        b["callback_data"] for b in question.reply_markup["inline_keyboard"][0] if "Approve" in b["text"]
    )
    assert alert(stack, alert_id)["status"] == "pending_approval"
    assert stack.sim_state()["orders"] == []  # nothing decided, nothing at IB

    # a press from a chat that is not configured: ignored (and logged by the worker)
    fake_tg.push_callback(STRANGER, approve, message_id=question.message_id)
    fake_tg.push_command(OWNER, "/status")  # read after the stranger's press
    message(fake_tg, "tv2ib status")
    wait_until(lambda: "stranger" in stack.logs("worker", 400), 10, lambda: stack.logs("worker"))
    assert alert(stack, alert_id)["status"] == "pending_approval"
    assert fake_tg.messages(STRANGER) == [] and stack.sim_state()["orders"] == []

    # the market moves while the owner thinks; the press decides it on the price of that moment
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 195.0})
    fake_tg.push_callback(OWNER, approve, message_id=question.message_id)
    message(fake_tg, "Approved", alert_id)
    wait_until(lambda: alert(stack, alert_id)["status"] == "filled", 20, lambda: stack.logs("worker"))
    doc = alert(stack, alert_id)
    assert [(f["side"], f["quantity"], f["price"]) for f in doc["fills"]] == [("BOT", 2.0, 195.0)]
    assert any(
        e["message"].startswith(f"approved by Telegram chat {OWNER} (user {OWNER})") for e in doc["events"]
    )
    assert "BUY 2 AAPL @ 195" in message(fake_tg, "entry", alert_id).text
    assert {
        "chat_id": str(OWNER),
        "message_id": question.message_id,
        "reply_markup": None,
    } in fake_tg.markup_edits

    # nobody answers: rejected with the reason when approval_timeout (3 s) is up, in Telegram too
    late = post(stack, {"ticker": "AAPL", "action": "buy", "quantity": 1, "strategy": "hasty"})
    message(fake_tg, "Approval needed", late)
    wait_until(lambda: alert(stack, late)["status"] == "rejected", 20, lambda: stack.logs("web"))
    assert alert(stack, late)["reason"].startswith("not approved within 3 s (approval_timeout)")
    assert "not approved within 3 s" in message(fake_tg, "Alert refused", late).text

    # an exit of the strategy never asks
    out = post(stack, {"ticker": "AAPL", "action": "exit", "strategy": "careful"})
    wait_until(lambda: alert(stack, out)["status"] == "filled", 20, lambda: stack.logs("worker"))
    assert not [m for m in fake_tg.messages(OWNER) if "Approval needed" in m.text and out in m.text]
    assert not [p for p in stack.sim_state()["positions"] if p["symbol"] == "AAPL"]  # flat again
