"""The command bot through getUpdates on the fake Bot API: owners are served by the same service
functions as the HTTP admin API; strangers change nothing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from fakes.telegram_api import FakeTelegramAPI, SentMessage
from notify_helpers import STRANGER, fill_event
from rq import Queue
from sqlalchemy.orm import Session, sessionmaker
from support import wait_until

from config.settings import Settings
from core import keys, services
from core.ids import new_alert_id
from core.models import Alert, Fill, Order, Position
from worker.notify import Notifier

OWNER = 111


def reply(api: FakeTelegramAPI, chat: int, contains: str, timeout: float = 8.0) -> SentMessage:
    """The first message to ``chat`` containing ``contains`` (fails after ``timeout``)."""
    found: list[SentMessage] = []

    def check(a: FakeTelegramAPI) -> bool:
        found[:] = [m for m in a.messages(chat) if contains in m.text]
        return bool(found)

    assert api.wait_for(check, timeout), [m.text for m in api.messages(chat)]
    return found[0]


def is_paused(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return services.is_paused(session)


def test_owner_pauses_and_resumes(
    bot_notifier: Notifier, fake_tg: FakeTelegramAPI, sqlite_sessions: sessionmaker[Session]
) -> None:
    fake_tg.push_command(OWNER, "/pause")
    reply(fake_tg, OWNER, "Trading paused")
    assert is_paused(sqlite_sessions)
    fake_tg.push_command(OWNER, "/resume")
    reply(fake_tg, OWNER, "Trading resumed")
    assert not is_paused(sqlite_sessions)


def test_stale_commands_dropped_but_a_command_after_the_first_notice_answered(
    fake_tg: FakeTelegramAPI,
    tg_settings: Settings,
    sqlite_sessions: sessionmaker[Session],
    redis_client: redis.Redis,
    start_notifier: Callable[..., Notifier],
) -> None:
    # A "/pause" sent while no worker ran must never fire; but once the owner got a notice, a
    # command sent in answer must be served, however slow the start-up drop of stale commands.
    fake_tg.push_command(OWNER, "/pause")
    fake_tg.slow("deleteWebhook", 1.0)
    notifier = start_notifier(tg_settings, sqlite_sessions, redis_client)
    notifier.enqueue_event(fill_event(1))
    assert fake_tg.wait_for(lambda api: len(api.messages(OWNER)) >= 1, 10)
    fake_tg.push_command(OWNER, "/status")
    reply(fake_tg, OWNER, "tv2ib status")
    assert not is_paused(sqlite_sessions)
    assert not any("Trading paused" in m.text for m in fake_tg.messages(OWNER))


def test_a_stranger_changes_nothing(
    bot_notifier: Notifier,
    fake_tg: FakeTelegramAPI,
    sqlite_sessions: sessionmaker[Session],
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.notify.bot")
    fake_tg.push_command(STRANGER, "/pause")
    fake_tg.push_command(STRANGER, "/flatten")
    fake_tg.push_command(STRANGER, "/flatten confirm")
    # A stranger inside an owner's private chat id cannot exist; a stranger user writing from its
    # own chat is what Telegram delivers. The owner's command afterwards proves the updates were read.
    fake_tg.push_command(OWNER, "/status")
    reply(fake_tg, OWNER, "tv2ib status")
    assert not is_paused(sqlite_sessions)
    assert fake_tg.messages(STRANGER) == []
    assert Queue(keys.queue_name("DU123"), connection=redis_client).count == 0
    ignored = [r for r in caplog.records if "stranger" in r.getMessage()]
    assert len(ignored) == 3 and all(f"chat={STRANGER}" in r.getMessage() for r in ignored)
    # And a stranger cannot undo the owner's pause either.
    fake_tg.push_command(OWNER, "/pause")
    reply(fake_tg, OWNER, "Trading paused")
    fake_tg.push_command(STRANGER, "/resume")
    fake_tg.push_command(OWNER, "/pnl")
    reply(fake_tg, OWNER, "realized PnL")
    assert is_paused(sqlite_sessions)


def _seed(sessions: sessionmaker[Session]) -> str:
    alert_id = new_alert_id()
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(
            Alert(
                id=alert_id,
                status="rejected",
                reason="unknown contract: ES1! & <none>",
                ticker="ES1!",
                action="buy",
                strategy="s<1>",
            )
        )
        session.flush()
        session.add(
            Order(
                alert_id=alert_id,
                leg="tp",
                order_ref=f"tv2ib:{alert_id}:tp",
                action="SELL",
                order_type="LMT",
                quantity=Decimal(2),
                limit_price=Decimal("5020.25"),
                symbol="ES",
                status="Submitted",
            )
        )
        session.add(
            Fill(
                exec_id=f"x.{alert_id}",
                alert_id=alert_id,
                side="SLD",
                price=Decimal(5020),
                quantity=Decimal(1),
                commission=Decimal("2.25"),
                realized_pnl=Decimal("37.5"),
                time=now,
            )
        )
        session.add(
            Position(
                account="DU123",
                con_id=1,
                symbol="ES",
                sec_type="FUT",
                local_symbol="ESZ6",
                quantity=Decimal(-2),
                avg_cost=Decimal(5010),
            )
        )
    return alert_id


def test_read_only_commands_answer_from_the_services(
    bot_notifier: Notifier,
    fake_tg: FakeTelegramAPI,
    sqlite_sessions: sessionmaker[Session],
    redis_client: redis.Redis,
) -> None:
    alert_id = _seed(sqlite_sessions)
    beat = {"ts": time.time(), "ib_connected": True, "account": "DU123", "client_id": 1, "pid": 1}
    redis_client.set(keys.heartbeat_key("DU123", 1), json.dumps(beat), ex=30)
    Queue(keys.queue_name("DU123"), connection=redis_client).enqueue("worker.jobs.does_not_matter")

    fake_tg.push_command(OWNER, "/status")
    status = reply(fake_tg, OWNER, "tv2ib status").text
    assert "running" in status and "IB connected" in status and "tv2ib:orders:DU123 1" in status
    assert alert_id in status or "ES1!" in status

    fake_tg.push_command(OWNER, "/positions")
    assert "ESZ6 (FUT) <b>-2</b>" in reply(fake_tg, OWNER, "Open positions").text

    fake_tg.push_command(OWNER, "/orders")
    assert "tp: SELL 2 ES LMT @ 5020.25 · Submitted" in reply(fake_tg, OWNER, "Working orders").text

    fake_tg.push_command(OWNER, "/pnl")
    pnl = reply(fake_tg, OWNER, "realized PnL").text
    assert "executions: 1" in pnl and "+37.5" in pnl and "commissions: 2.25" in pnl

    fake_tg.push_command(OWNER, "/last")
    last = reply(fake_tg, OWNER, "Recent alerts").text
    assert "buy ES1! → <b>rejected</b>" in last and "unknown contract: ES1! &amp; &lt;none&gt;" in last


def _question(api: FakeTelegramAPI) -> tuple[SentMessage, str]:
    message = reply(api, OWNER, "Flatten")
    buttons = message.reply_markup["inline_keyboard"][0]
    confirm = next(b["callback_data"] for b in buttons if b["callback_data"].startswith("flatten:yes:"))
    return message, confirm


def test_flatten_asks_first_then_confirms_by_command(
    bot_notifier: Notifier, fake_tg: FakeTelegramAPI, redis_client: redis.Redis
) -> None:
    queue = Queue(keys.queue_name("DU123"), connection=redis_client)
    fake_tg.push_command(OWNER, "/flatten confirm")
    reply(fake_tg, OWNER, "No flatten is waiting")
    fake_tg.push_command(OWNER, "/flatten")
    _question(fake_tg)
    assert queue.count == 0  # asking changes nothing
    fake_tg.push_command(OWNER, "/flatten confirm")
    reply(fake_tg, OWNER, "Flatten requested")
    [job] = queue.get_jobs()
    assert job.func_name == services.FLATTEN_JOB and job.args == ("DU123", f"telegram:{OWNER}")


def test_flatten_by_button_and_expiry(
    bot_notifier: Notifier, fake_tg: FakeTelegramAPI, redis_client: redis.Redis
) -> None:
    queue = Queue(keys.queue_name("DU123"), connection=redis_client)
    fake_tg.push_command(OWNER, "/flatten")
    message, confirm = _question(fake_tg)
    fake_tg.push_callback(OWNER, confirm, message_id=message.message_id)
    reply(fake_tg, OWNER, "Flatten requested")
    assert queue.count == 1
    # A second press of the same (now used) button does nothing.
    fake_tg.push_callback(OWNER, confirm, message_id=message.message_id)
    reply(fake_tg, OWNER, "expired")
    assert queue.count == 1
    # Confirmation after the window: refused.
    assert wait_until(lambda: bot_notifier.bot is not None, 5)
    bot_notifier.bot.confirm_seconds = 0.3
    fake_tg.push_command(OWNER, "/flatten")
    wait_until(
        lambda: len([m for m in fake_tg.messages(OWNER) if "Flatten" in m.text and m.reply_markup]) >= 2, 5
    )
    time.sleep(0.5)
    fake_tg.push_command(OWNER, "/flatten confirm")
    reply(fake_tg, OWNER, "No flatten is waiting")
    assert queue.count == 1


def test_flatten_names_another_account(
    bot_notifier: Notifier, fake_tg: FakeTelegramAPI, redis_client: redis.Redis
) -> None:
    fake_tg.push_command(OWNER, "/flatten DU999")
    assert "Flatten DU999?" in _question(fake_tg)[0].text
    fake_tg.push_command(OWNER, "/flatten confirm")
    reply(fake_tg, OWNER, "Flatten requested")
    assert Queue(keys.queue_name("DU999"), connection=redis_client).count == 1
    assert Queue(keys.queue_name("DU123"), connection=redis_client).count == 0


def test_flatten_refuses_an_account_no_worker_serves_or_a_malformed_one(
    bot_notifier: Notifier, fake_tg: FakeTelegramAPI, redis_client: redis.Redis
) -> None:
    beat = {"ts": time.time(), "account": "DU123", "client_id": 1, "serves": ["DU123"]}
    redis_client.set(keys.heartbeat_key("DU123", 1), json.dumps(beat), ex=keys.HEARTBEAT_TTL_SECONDS)
    redis_client.sadd("tv2ib:workers", keys.heartbeat_key("DU123", 1))  # as the worker registers it
    for account in ("DU999", "../../x"):
        fake_tg.push_command(OWNER, f"/flatten {account}")
        wait_until(
            lambda account=account: any(f"Flatten {account}?" in m.text for m in fake_tg.messages(OWNER)), 8
        )
        fake_tg.push_command(OWNER, "/flatten confirm")

    def refusals() -> list[str]:
        return [m.text for m in fake_tg.messages(OWNER) if "Flatten refused" in m.text]

    assert wait_until(lambda: len(refusals()) == 2, 8), [m.text for m in fake_tg.messages(OWNER)]
    first, second = refusals()
    assert "no worker serves account DU999; workers serve: DU123" in first
    assert "not an account id" in second
    assert redis_client.keys("rq:queue:*") == []


def test_help_lists_exactly_the_commands_the_bot_answers(
    bot_notifier: Notifier, fake_tg: FakeTelegramAPI
) -> None:
    from telegram.ext import CommandHandler

    from worker.notify.bot import COMMANDS, HELP_COMMANDS

    answered = {
        name
        for handlers in bot_notifier.bot.app.handlers.values()
        for handler in handlers
        if isinstance(handler, CommandHandler)
        for name in handler.commands
    }
    assert answered == {c.name for c in COMMANDS} | set(HELP_COMMANDS)
    fake_tg.push_command(OWNER, "/help")
    text = reply(fake_tg, OWNER, "commands").text
    listed = {line.split()[0].lstrip("/") for line in text.splitlines() if line.startswith("/")}
    assert listed == answered - set(HELP_COMMANDS)
    assert "/flatten [account] - " in text and "/pnl - today's realized PnL" in text
