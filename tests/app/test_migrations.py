"""Migrate on start: empty and old databases, and several processes starting at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from support import private_pg_database

from core.db import alembic_config, current_revision, head_revision, make_engine, migrate

ROOT = Path(__file__).resolve().parents[2]
MIGRATE = "import sys; from core.db import make_engine, migrate; migrate(make_engine(sys.argv[1]))"


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _migrate_concurrently(url: str, processes: int = 4) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", MIGRATE, url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err


def test_empty_sqlite_database_reaches_head(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh' / 'db.sqlite'}")
    migrate(engine)
    assert current_revision(engine) == head_revision()
    assert {"alerts", "alert_events", "dedup_claims", "orders", "fills"} <= set(
        inspect(engine).get_table_names()
    )
    migrate(engine)  # a second start is a no-op
    engine.dispose()


def test_old_database_is_upgraded(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0001")
    assert "dedup_claims" not in _tables(url)
    engine = make_engine(url)
    migrate(engine)
    assert current_revision(engine) == head_revision() and "dedup_claims" in _tables(url)
    engine.dispose()


def test_several_processes_migrate_the_same_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    _migrate_concurrently(url)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.fixture
def fresh_pg_url():
    with private_pg_database("tv2ib_mig") as url:
        yield url


def test_several_processes_migrate_the_same_postgresql_database(fresh_pg_url):
    _migrate_concurrently(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    assert current_revision(engine) == head_revision()
    assert "dedup_claims" in set(inspect(engine).get_table_names())
    engine.dispose()


def _schema_drift(engine) -> list:
    """What ``alembic revision --autogenerate`` would write after migrating (compare_type on)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from core.models import Base

    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)


def test_models_match_the_migrations_on_sqlite(tmp_path):
    # Alert.status is typed (AlertStatus) on the same VARCHAR(20): no migration is owed
    engine = make_engine(f"sqlite:///{tmp_path / 'drift.db'}")
    migrate(engine)
    assert _schema_drift(engine) == []
    engine.dispose()


def test_models_match_the_migrations_on_postgresql(fresh_pg_url):
    engine = make_engine(fresh_pg_url)
    migrate(engine)
    assert _schema_drift(engine) == []
    engine.dispose()
