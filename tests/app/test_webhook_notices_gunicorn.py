"""Issue 16, item 9 through the real server: gunicorn with two web processes (each with its relay
thread), the real notifier and the fake Telegram Bot API. Failed authentications spread over both
processes are counted in Redis into one notice; the web never talks to Telegram itself (its rows
reach the chat through the notifier)."""

from __future__ import annotations

import html
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from app_helpers import SECRET
from fakes.telegram_api import FakeTelegramAPI
from gunicorn_server import running_gunicorn
from sqlalchemy import func, select

from config.settings import Settings
from core.db import make_engine, make_session_factory
from core.models import Notice
from worker.notify import Notifier

pytestmark = pytest.mark.e2e

CHAT = "4343"
WINDOW = "8"  # NOTIFY_DIGEST_SECONDS: the 20 requests go at once (threads, a new connection each), so
# they fall in one run; sent one after the other at load average 10 they once took more than 8 s


def test_gunicorn_reports_a_422_at_once_and_twenty_bad_secrets_in_one_notice(
    redis_url: str, tmp_path: Path, fake_tg: FakeTelegramAPI
) -> None:
    telegram = {
        **fake_tg.settings(CHAT),
        "NOTIFY_DIGEST_SECONDS": WINDOW,
    }
    with running_gunicorn(redis_url, tmp_path, WEB_WORKERS="2", **telegram) as base:
        database_url = f"sqlite:///{tmp_path / 'tv2ib.db'}"
        settings = Settings.from_mapping(
            {"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url, "REDIS_URL": redis_url, **telegram}
        )
        engine = make_engine(database_url)
        notifier = Notifier(settings, make_session_factory(engine), None, poll_timeout=1.0)
        notifier.start()
        try:
            bad = {"secret": SECRET, "ticker": "AAPL", "action": "buy", "quantity": "ten", "strategy": "gc"}
            answer = httpx.post(f"{base}/webhook", json=bad, timeout=5)
            assert answer.status_code == 422
            alert_id = answer.json()["alert_id"]
            assert fake_tg.wait_for(lambda a: any(alert_id in m.text for m in a.messages(CHAT)), 20)
            (invalid,) = [m.text for m in fake_tg.messages(CHAT) if alert_id in m.text]
            assert "quantity:" in invalid and "strategy <b>gc</b>" in invalid
            assert SECRET not in html.unescape(invalid)

            wrong = {"secret": "wrong-secret-wrong-secret", "ticker": "AAPL", "action": "buy"}
            with ThreadPoolExecutor(20) as pool:  # a new connection each: both web processes take some
                codes = list(pool.map(lambda _: httpx.post(f"{base}/webhook", json=wrong, timeout=10).status_code,
                                      range(20)))  # fmt: skip
            assert all(code in (401, 429) for code in codes), codes

            def reported(api: FakeTelegramAPI) -> bool:
                return any("no valid secret" in m.text for m in api.messages(CHAT))

            assert fake_tg.wait_for(reported, 60), [m.text for m in fake_tg.messages(CHAT)]
            (auth,) = [m.text for m in fake_tg.messages(CHAT) if "no valid secret" in m.text]
            assert "20 requests refused" in auth
            assert "127.0.0.1: 20 × wrong or missing secret (401)" in auth
            with make_session_factory(engine)() as session:
                assert session.scalar(select(func.count(Notice.id))) == 2
        finally:
            notifier.stop(timeout=2.0)
            engine.dispose()
