"""Fixtures for the notifier: real databases (SQLite, PostgreSQL) and the fake Bot API server
(notifiers that are always stopped: ``start_notifier`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from fakes.telegram_api import FakeTelegramAPI
from notify_helpers import OWNER_CHATS
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.db import make_engine, make_session_factory, migrate
from core.models import Control, Notice
from worker.notify import Notifier


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
        **fake_tg.settings(*OWNER_CHATS),
        "IB_ACCOUNT": "DU123",
    }


@pytest.fixture
def tg_settings(tg_env: dict[str, str]) -> Settings:
    return Settings.from_mapping(tg_env)


@pytest.fixture
def bot_notifier(
    fake_tg: FakeTelegramAPI,
    tg_settings: Settings,
    sqlite_sessions: sessionmaker[Session],
    redis_client: redis.Redis,
    start_notifier: Callable[..., Notifier],
) -> Notifier:
    """A notifier with its bot polling the fake Bot API (polling has started once the fake saw a
    getUpdates call)."""
    notifier = start_notifier(tg_settings, sqlite_sessions, redis_client)
    assert fake_tg.wait_for(lambda api: api.count("getUpdates") >= 1, 8)
    return notifier
