"""Approval in Telegram (issue 21): the approval notice goes alone with its Approve / Reject buttons,
and the worker's bot takes a press from a configured chat (through the fake Bot API and the real
python-telegram-bot client), records who pressed, and removes the buttons; a press from any other
chat is ignored and logged. The whole path with real processes: tests/e2e/test_e2e_approval.py."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from fakes.telegram_api import FakeTelegramAPI, SentMessage
from notify_helpers import STRANGER, fill_event
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from support import wait_until

from config.settings import Settings
from core import keys
from core.approval import approval_draft
from core.ids import new_alert_id
from core.models import Alert, AlertEvent, AlertStatus, utcnow
from core.notices import enqueue_draft
from core.payload import AlertPayload
from worker.notify import Notifier

OWNER = 111
PAYLOAD = {
    "ticker": "AAPL",
    "action": "buy",
    "quantity": 5,
    "strategy": "careful <2>",
    "takeProfit": {"amount": 2},
}


def waiting(sessions: sessionmaker[Session], settings: Settings) -> str:
    """An alert the worker left ``pending_approval``, with its approval notice (as worker/approval.py
    writes them: one transaction); returns its id."""
    alert_id, now = new_alert_id(), utcnow()
    deadline = now + timedelta(minutes=5)
    with sessions.begin() as session:
        session.add(
            Alert(id=alert_id, status=AlertStatus.PENDING_APPROVAL, received_at=now, payload=PAYLOAD,
                  ticker="AAPL", action="buy", strategy=PAYLOAD["strategy"], approval_deadline=deadline)
        )  # fmt: skip
        draft = approval_draft(alert_id, AlertPayload.from_json(PAYLOAD), deadline=deadline,
                               timeout=300, account="DU123")  # fmt: skip
        enqueue_draft(session, draft, settings)
    return alert_id


def question(api: FakeTelegramAPI, chat: int, alert_id: str) -> SentMessage:
    found: list[SentMessage] = []

    def check(a: FakeTelegramAPI) -> bool:
        found[:] = [m for m in a.messages(chat) if alert_id in m.text and "Approval needed" in m.text]
        return bool(found)

    assert api.wait_for(check, 10), [m.text for m in api.messages(chat)]
    return found[0]


def buttons(message: SentMessage) -> dict[str, str]:
    return {b["text"]: b["callback_data"] for b in message.reply_markup["inline_keyboard"][0]}


def status(sessions: sessionmaker[Session], alert_id: str) -> AlertStatus:
    with sessions() as session:
        return session.get(Alert, alert_id).status


def audit(sessions: sessionmaker[Session], alert_id: str) -> list[str]:
    with sessions() as session:
        query = select(AlertEvent.message).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
        return [m or "" for m in session.scalars(query)]


def test_the_question_goes_alone_with_its_buttons_to_every_chat(
    bot_notifier: Notifier, fake_tg: FakeTelegramAPI, tg_settings: Settings, sqlite_sessions
) -> None:
    for n in range(3):  # a backlog before it: joined into one message, but never with the question
        bot_notifier.enqueue_event(fill_event(n))
    alert_id = waiting(sqlite_sessions, tg_settings)
    bot_notifier.enqueue_event(fill_event(9))
    for chat in (111, 222):
        message = question(fake_tg, chat, alert_id)
        assert buttons(message) == {
            "✅ Approve": f"approval:yes:{alert_id}",
            "❌ Reject": f"approval:no:{alert_id}",
        }
        assert "ES" not in message.text  # no fill notice joined to it
        assert "buy 5 · market · with take-profit" in message.text
        assert "strategy <b>careful &lt;2&gt;</b>" in message.text and "account DU123" in message.text
        assert "Approve within 5 min (until " in message.text
    fills = [m for m in fake_tg.wait_messages(3, 111) if "5012.25" in m.text]
    assert fills and all("Approval needed" not in m.text and not m.reply_markup for m in fills)


def test_an_owner_approves_and_the_alert_goes_back_on_its_queue(
    bot_notifier: Notifier, fake_tg: FakeTelegramAPI, tg_settings, sqlite_sessions, redis_client
) -> None:
    alert_id = waiting(sqlite_sessions, tg_settings)
    message = question(fake_tg, OWNER, alert_id)
    fake_tg.push_callback(OWNER, buttons(message)["✅ Approve"], message_id=message.message_id, user_id=4242)
    assert fake_tg.wait_for(lambda api: any("Approved" in m.text for m in api.messages(OWNER)), 10)
    assert status(sqlite_sessions, alert_id) == AlertStatus.QUEUED
    assert audit(sqlite_sessions, alert_id)[-2].startswith("approved by Telegram chat 111 (user 4242)")
    assert Queue(keys.queue_name(None), connection=redis_client).job_ids == [f"alert-{alert_id}"]
    assert fake_tg.answers and fake_tg.answers[-1]["text"] == "Approved"
    assert {"chat_id": "111", "message_id": message.message_id, "reply_markup": None} in fake_tg.markup_edits
    # the same button pressed again (or in the other chat): refused with what the alert is now
    other = question(fake_tg, 222, alert_id)
    fake_tg.push_callback(222, buttons(other)["❌ Reject"], message_id=other.message_id)
    assert fake_tg.wait_for(
        lambda api: any("not waiting for approval" in m.text for m in api.messages(222)), 10
    )
    assert status(sqlite_sessions, alert_id) == AlertStatus.QUEUED


def test_a_press_from_another_chat_is_ignored_and_logged(
    bot_notifier: Notifier,
    fake_tg: FakeTelegramAPI,
    tg_settings,
    sqlite_sessions,
    redis_client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.notify.bot")
    alert_id = waiting(sqlite_sessions, tg_settings)
    message = question(fake_tg, OWNER, alert_id)
    fake_tg.push_callback(STRANGER, f"approval:yes:{alert_id}", message_id=message.message_id)
    fake_tg.push_command(OWNER, "/status")  # read after the stranger's press
    assert fake_tg.wait_for(lambda api: any("tv2ib status" in m.text for m in api.messages(OWNER)), 10)
    assert status(sqlite_sessions, alert_id) == AlertStatus.PENDING_APPROVAL
    assert fake_tg.messages(STRANGER) == [] and fake_tg.answers == [] and fake_tg.markup_edits == []
    assert any(f"chat={STRANGER}" in r.getMessage() and "stranger" in r.getMessage() for r in caplog.records)
    assert Queue(keys.queue_name(None), connection=redis_client).count == 0
    # the owner rejects it: it ends, naming who
    fake_tg.push_callback(OWNER, buttons(message)["❌ Reject"], message_id=message.message_id)
    wait_until(lambda: status(sqlite_sessions, alert_id) == AlertStatus.REJECTED, 10)
    with sqlite_sessions() as session:
        assert session.get(Alert, alert_id).reason == "rejected by Telegram chat 111 (user 111)"
    assert fake_tg.wait_for(lambda api: any("Rejected" in m.text for m in api.messages(OWNER)), 10)
