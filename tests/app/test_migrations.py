"""Migrate on start: empty and old databases, several processes starting at once, and a current
database answered without importing alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from support import private_pg_database

from core.db import alembic_config, current_revision, head_revision, make_engine, migrate, plain_head

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


# A process that migrates a current database, then says whether it ever imported alembic.
MIGRATE_AND_TELL = (
    "import sys; from core.db import make_engine, migrate; migrate(make_engine(sys.argv[1])); "
    "print('alembic imported' if any(m.split('.')[0] == 'alembic' for m in sys.modules) else 'no alembic')"
)


def _start_of_a_process(url: str) -> str:
    done = subprocess.run([sys.executable, "-c", MIGRATE_AND_TELL, url], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_migration_files_head_read_without_alembic_is_alembics():
    """The reading :func:`migrate` trusts to skip alembic agrees with alembic itself (a migration
    written in a way it does not read makes it answer None, never a wrong head)."""
    assert plain_head() == head_revision()


def test_a_current_database_starts_without_alembic_and_an_old_one_is_still_upgraded(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'start.db'}"
    assert _start_of_a_process(url) == "alembic imported"  # a fresh file: migrated by alembic
    assert _start_of_a_process(url) == "no alembic"  # the usual start
    command.downgrade(alembic_config(url), "0002")
    assert "dedup_claims" in _tables(url)
    assert _start_of_a_process(url) == "alembic imported"  # behind the files: upgraded
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


def test_a_current_postgresql_database_starts_without_alembic(fresh_pg_url):
    assert _start_of_a_process(fresh_pg_url) == "alembic imported"
    assert _start_of_a_process(fresh_pg_url) == "no alembic"
