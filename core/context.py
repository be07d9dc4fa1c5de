"""The explicit dependencies of one process: settings, database and Redis, built once by a factory.

The Flask app keeps its instance in ``app.extensions["tv2ib"]``; the worker builds its own.
Nothing here is a module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.db import make_engine, make_session_factory, migrate


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis

    @classmethod
    def build(cls, settings: Settings, *, run_migrations: bool = True) -> AppContext:
        """Connect to the database (migrating it to the latest schema) and prepare Redis."""
        engine = make_engine(settings.database_url, pool_size=max(5, settings.web_threads + 2))
        if run_migrations:
            migrate(engine)
        # Short timeouts: a Redis outage must cost an intake request milliseconds, not seconds
        # (TradingView gives up after 3 s); the outbox relay enqueues later.
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=0.25,
            socket_timeout=1.0,
            health_check_interval=30,
        )
        return cls(settings=settings, engine=engine, sessions=make_session_factory(engine), redis=client)

    def close(self) -> None:
        self.redis.close()
        self.engine.dispose()
