"""core/dbapi.py's connections of a thread's own (intake's SQLite fast path writes on them): an
error leaves the connection clean for the next alert, a connection the database dropped is
replaced, and each thread keeps its own. Real SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.db import make_engine
from core.dbapi import ThreadConnections, own_dbapi


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS own_dbapi_probe"))
        conn.execute(text("CREATE TABLE own_dbapi_probe (id INTEGER PRIMARY KEY)"))
    yield engine
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE own_dbapi_probe"))
    engine.dispose()


def _insert(engine, held: ThreadConnections, key: int) -> None:
    marker = "?" if engine.dialect.name == "sqlite" else "%s"
    with own_dbapi(engine, held) as raw:
        cursor = raw.cursor()
        cursor.execute(f"INSERT INTO own_dbapi_probe (id) VALUES ({marker})", (key,))
        raw.commit()
        cursor.close()


def _stored(engine) -> list[int]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT id FROM own_dbapi_probe ORDER BY id"))]


def test_an_error_is_rolled_back_and_the_thread_goes_on_on_the_same_connection(engine):
    held = ThreadConnections()
    _insert(engine, held, 1)
    first = held.raw
    with pytest.raises(DBAPIError) as raised:  # the same key again: refused, nothing half-written
        with own_dbapi(engine, held) as raw:
            cursor = raw.cursor()
            marker = "?" if engine.dialect.name == "sqlite" else "%s"
            cursor.execute(f"INSERT INTO own_dbapi_probe (id) VALUES ({marker})", (2,))
            cursor.execute(f"INSERT INTO own_dbapi_probe (id) VALUES ({marker})", (1,))
    assert not raised.value.connection_invalidated
    _insert(engine, held, 3)
    assert held.raw is first and _stored(engine) == [1, 3]


def test_each_thread_writes_on_a_connection_of_its_own(engine):
    held = ThreadConnections()
    seen: list[object] = []

    def write(key: int) -> None:
        _insert(engine, held, key)
        seen.append(held.raw)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(10, 14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(raw) for raw in seen}) == 4 and _stored(engine) == [10, 11, 12, 13]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_connection_the_database_dropped_is_replaced(engine):
    held = ThreadConnections()
    _insert(engine, held, 1)
    with engine.begin() as conn:  # what a restart does to it
        pid = held.raw.dbapi_connection.info.backend_pid
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(DBAPIError) as raised:
        _insert(engine, held, 2)
    assert raised.value.connection_invalidated and held.raw is None
    _insert(engine, held, 3)
    assert _stored(engine) == [1, 3]
