"""Fixtures for the web app: a real app on real Redis and on SQLite or PostgreSQL.

``app`` is parametrized over both databases for the core tests. The PostgreSQL database is
private to tests/app (created once per run, its tables emptied before each test), so other
areas' tests sharing ``pg_url`` never see our rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from support import private_pg_database

from app import create_app
from app.resources import get_ctx, resources
from config.settings import Settings
from core.context import AppContext

TABLES = ("fills", "orders", "alert_events", "alerts", "positions", "notices", "control")


@pytest.fixture(scope="session")
def app_pg_url() -> Iterator[str]:
    """A PostgreSQL database for tests/app only, dropped at the end of the run."""
    with private_pg_database("tv2ib_app") as url:
        yield url


def _empty_tables(ctx: AppContext) -> None:
    with ctx.engine.begin() as conn:
        existing = set(ctx.engine.dialect.get_table_names(conn))
        for table in TABLES + ("dedup_claims",):
            if table in existing:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return request.getfixturevalue("app_pg_url")


@pytest.fixture
def make_settings(base_env: dict[str, str], db_url: str) -> Callable[..., Settings]:
    """Settings on the parametrized database and the private Redis DB, with overrides."""

    def build(**overrides: str) -> Settings:
        env = dict(
            base_env,
            DATABASE_URL=db_url,
            RATE_LIMIT="10000/minute",
            AUTH_FAILURE_LIMIT="1000/minute",
            ADMIN_AUTH_FAILURE_LIMIT="1000/minute",
        )
        env.update(overrides)
        return Settings.from_mapping(env)

    return build


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Flask]]:
    """Build apps (real context: database migrated, real Redis); closed after the test."""
    contexts: list[AppContext] = []
    apps: list[Flask] = []

    def build(**overrides: str) -> Flask:
        ctx = AppContext.build(make_settings(**overrides))
        if not contexts:
            _empty_tables(ctx)
        contexts.append(ctx)
        flask_app = create_app(context=ctx)
        flask_app.testing = True
        apps.append(flask_app)
        return flask_app

    yield build
    for flask_app in apps:
        resources(flask_app).intake.close()
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def ctx(app: Flask) -> AppContext:
    return get_ctx(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def one_limit_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Redis-counted limit (rate, failed secrets, failed admin tokens) counts in one window
    for the whole test. The limits use fixed windows (a minute by default): a test that counts up to
    a limit on a slow machine could otherwise straddle a window boundary, and the new window would
    start the count again (seen once: ten failed logins, the eleventh not refused)."""
    from app.webhook import ratelimit

    monkeypatch.setattr(
        ratelimit,
        "_window_key",
        lambda kind, item, address: f"{ratelimit.RATE_LIMIT_PREFIX}:{kind}:{address}:test-window",
    )
