"""Database engine, sessions and migrate-on-start.

One engine per process, built by :func:`make_engine` and passed around explicitly. SQLite gets
WAL mode and a busy timeout so the web workers and the execution worker can share the file.

Every process migrates on start (:func:`migrate`), and almost always finds the schema current.
That answer needs no alembic: the head is read from the migration files' ``revision`` /
``down_revision`` lines and the database's from ``alembic_version``. alembic (0.2 to 0.3 s of
imports, per gunicorn worker, execution worker and command) is imported only when they differ, or
when the files are not a plain chain this reading understands.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary constant: the PostgreSQL advisory lock id that serialises concurrent migrations.
_PG_MIGRATION_LOCK = 0x7432_6962


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Create the engine for ``url``; creates the SQLite file's folder when needed."""
    sqlite_path = _sqlite_path(url)
    if make_url(url).get_backend_name() == "sqlite":
        if sqlite_path is not None:
            sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every sqlite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL is durable across process crashes
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a restarted PostgreSQL must not cost a failed request
        pool_recycle=1800,
        connect_args={"connect_timeout": 3},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (rows are read after the answer)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Hold a cross-process lock while migrating, so several processes may start at once."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
        return
    path = _sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is None:
        yield
        return
    lock_path = path.with_name(path.name + ".migrate.lock")
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads: {heads}; merge them")
    return heads[0]


# ``revision = "0004"`` / ``down_revision = "0003"`` (or None), as alembic's template writes them
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(None|\"[^\"]*\"|'[^']*')\s*$", re.M)


def plain_head() -> str | None:
    """The head of the migrations read from their files without alembic, when they form one plain
    chain (each file one revision with at most one parent); None for anything else (merges,
    branches, another way of writing them), which :func:`head_revision` then answers."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        found = dict(m.groups() for m in _REVISION_LINE.finditer(script.read_text(encoding="utf-8")))
        if "revision" not in found or "down_revision" not in found:
            return None
        revisions.add(found["revision"].strip("\"'"))
        if found["down_revision"] != "None":
            parents.add(found["down_revision"].strip("\"'"))
    heads = revisions - parents
    if len(heads) != 1 or not parents <= revisions:
        return None
    return heads.pop()


def stored_revisions(engine: Engine) -> set[str] | None:
    """The revisions ``alembic_version`` holds (plain SQL); None when there is no such table yet."""
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:  # a fresh database: the table does not exist yet
        return None


def migrate(engine: Engine) -> None:
    """Bring the database to the latest schema (no-op when already there)."""
    head = plain_head()
    if head is not None and stored_revisions(engine) == {head}:
        return  # the usual start: current, and alembic never imported
    from alembic import command

    head = head_revision()
    if current_revision(engine) == head:
        return
    url = engine.url.render_as_string(hide_password=False)
    with _migration_lock(engine):
        if current_revision(engine) == head:  # another process did it while we waited
            return
        log.info("migrating database schema to %s", head)
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
