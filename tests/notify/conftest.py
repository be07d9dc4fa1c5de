"""Fixtures for the notifier: real databases (SQLite, PostgreSQL), the fake Bot API server, and
notifiers that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes.telegram_api import FakeTelegramAPI
from notify_helpers import OWNER_CHATS
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.db import make_engine, make_session_factory, migrate
from core.models import Control, Notice
from worker.notify import Notifier
from worker.notify.sender import SenderConfig


@pytest.fixture
def sqlite_sessions(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def pg_sessions(pg_url: str) -> Iterator[sessionmaker[Session]]:
    # The PostgreSQL database is shared by the whole run: start from an empty outbox and lease.
    engine = make_engine(pg_url)
    migrate(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        session.execute(delete(Notice))
        session.execute(delete(Control).where(Control.key == "notifier_lease"))
    yield sessions
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_sessions(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    """Both supported databases."""
    return request.getfixturevalue(
        f"{request.param}_sessions" if request.param == "sqlite" else "pg_sessions"
    )


@pytest.fixture
def tg_env(base_env: dict[str, str], fake_tg: FakeTelegramAPI) -> dict[str, str]:
    return {
        **base_env,
        "TELEGRAM_BOT_TOKEN": fake_tg.token,
        "TELEGRAM_CHAT_ID": ",".join(OWNER_CHATS),
        "TELEGRAM_API_URL": fake_tg.base_url,
        "IB_ACCOUNT": "DU123",
    }


@pytest.fixture
def tg_settings(tg_env: dict[str, str]) -> Settings:
    return Settings.from_mapping(tg_env)


FAST = SenderConfig(poll_seconds=0.2, backoff_first=0.2, backoff_max=1.0)


@pytest.fixture
def start_notifier() -> Iterator[Callable[..., Notifier]]:
    """Build and start notifiers (fast polling and backoff); all are stopped at teardown."""
    started: list[Notifier] = []

    def start(
        settings: Settings, sessions: sessionmaker[Session], redis_client: Any = None, **kw: Any
    ) -> Notifier:
        kw.setdefault("sender_config", FAST)
        kw.setdefault("poll_timeout", 1.0)
        notifier = Notifier(settings, sessions, redis_client, **kw)
        notifier.start()
        started.append(notifier)
        return notifier

    yield start
    for notifier in started:
        notifier.stop(timeout=2.0)
