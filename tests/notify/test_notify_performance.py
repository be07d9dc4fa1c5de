"""``/performance``, ``/profit`` and ``/daily`` through getUpdates on the fake Bot API: the owner's
command answered from the stored alerts of tests/execution_seed.py, as Telegram received it."""

from __future__ import annotations

import pytest
from execution_seed import seed_executions
from fakes.telegram_api import FakeTelegramAPI, SentMessage
from sqlalchemy.orm import Session, sessionmaker

from worker.notify import Notifier
from worker.notify.report_replies import daily_text, performance_text, profit_text

OWNER = 111


def ask(api: FakeTelegramAPI, command: str, contains: str, timeout: float = 8.0) -> str:
    """Send ``command``; its answer: the first message after it that contains ``contains``."""
    before = len(api.messages(OWNER))
    api.push_command(OWNER, command)
    found: list[SentMessage] = []

    def check(a: FakeTelegramAPI) -> bool:
        found[:] = [m for m in a.messages(OWNER)[before:] if contains in m.text]
        return bool(found)

    assert api.wait_for(check, timeout), [m.text for m in api.messages(OWNER)]
    return found[0].text


@pytest.fixture
def seeded_bot(sqlite_sessions: sessionmaker[Session], request: pytest.FixtureRequest) -> Notifier:
    """The bot over a database seeded first (the notifier reads it from its start)."""
    seed_executions(sqlite_sessions)
    return request.getfixturevalue("bot_notifier")


def test_performance_profit_and_daily(seeded_bot: Notifier, fake_tg: FakeTelegramAPI) -> None:
    text = ask(fake_tg, "/performance", "<b>Execution</b>")
    assert "<b>trend</b>: 2 filled, 2 against a reference price" in text
    assert "slippage avg <b>+13.4 bps</b>, median +13.4 bps" in text
    assert "in USD: total <b>+13.50</b>, avg +6.75, median +6.75" in text
    assert "signal → fill p50 1.60 s, p90 1.92 s" in text and "arrival → fill p50 1.20 s" in text
    assert "<b>opts</b>: 1 filled, 0 against a reference price" in text

    only = ask(fake_tg, "/performance opts", "<b>opts</b>")
    assert "trend" not in only
    missing = ask(fake_tg, "/performance nosuch", "nosuch")
    assert missing == "No filled alert for strategy <b>nosuch</b> in the last 90 days."

    profit = ask(fake_tg, "/profit", "<b>Profit</b>, all time")
    assert "<b>USD</b>: realized PnL <b>+1.70</b>" in profit
    assert "trades: 2 (1 won, 1 lost, win rate 50%)" in profit
    assert "profit factor 2.13 · max drawdown 1.50" in profit and "best strategy: trend +1.70" in profit
    assert "realized PnL <b>+1.70</b>" in ask(fake_tg, "/profit 7", "<b>Profit</b>, since")
    ask(fake_tg, "/profit soon", "Send /profit, or /profit N")

    daily = ask(fake_tg, "/daily 3", "Daily realized PnL")
    assert "last 3 days (UTC)" in daily and "· 2 trades · 6 fills · fees 6.00" in daily


def test_the_texts_without_data() -> None:
    assert performance_text({"days": 90, "strategies": []}) == "No filled alert in the last 90 days."
    assert profit_text({"since": None, "currencies": []}) == "No executions all time."
    days = [{"date": "2026-11-20", "currencies": {}}]
    assert "<code>2026-11-20</code>  0 · no executions" in daily_text(days)
