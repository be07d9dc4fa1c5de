"""Statements SQLAlchemy compiles once, run through the DB-API on a pooled connection.

For the few writes a trade waits for (intake's fresh alert, app/webhook/fast_path.py; the job's
decision, worker/recording/decision_row.py). SQLAlchemy's execution machinery (a Connection, an
execution context and a result per statement, and the ORM's session around them) costs several
times the database's own work on such a write. Here SQLAlchemy still writes the SQL, once per
dialect, and each value still goes through its column type's own bind processor, so what is stored
is exactly what the same statement through SQLAlchemy stores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.elements import ClauseElement

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class DbapiStatement:
    """One statement as the driver takes it: its SQL and how to turn values into its parameters."""

    sql: str
    positional: bool  # the driver takes a tuple (SQLite's ``?``), else a dict (``%(name)s``)
    pairs: tuple[tuple[str, Processor], ...]  # each parameter with its column type's processor
    defaults: Mapping[str, Any]  # values the statement itself binds (a literal in ``.values()``)

    @property
    def names(self) -> tuple[str, ...]:
        """Its parameters, in the statement's order."""
        return tuple(name for name, _processor in self.pairs)

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        if self.defaults:
            values = {**self.defaults, **values}
        if self.positional:
            return tuple(values[n] if p is None else p(values[n]) for n, p in self.pairs)
        return {n: values[n] if p is None else p(values[n]) for n, p in self.pairs}


def compile_statement(
    stmt: ClauseElement, dialect: Dialect, columns: Sequence[str] | None = None
) -> DbapiStatement:
    """``stmt`` compiled for ``dialect`` (``columns``: an INSERT's columns, in any order)."""
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns) if columns is not None else None)
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    if compiled.positional:
        names = tuple(compiled.positiontup or ())
    else:  # only the names the SQL uses (a compiled statement may keep others it rendered inline)
        names = tuple(name for name in binds if f"%({name})s" in compiled.string)
    pairs = tuple((name, binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names)
    defaults = {name: binds[name].effective_value for name in names if binds[name].value is not None}
    return DbapiStatement(compiled.string, bool(compiled.positional), pairs, defaults)


@contextlib.contextmanager
def pooled_dbapi(engine: Engine) -> Iterator[PoolProxiedConnection]:
    """A pooled DB-API connection; a driver error is rolled back (or, for a connection the
    database dropped, the connection discarded) and raised as SQLAlchemy's exception, with
    ``connection_invalidated`` set in the second case and no parameters in its text.

    A dropped connection discards the whole pool, as SQLAlchemy's own execution does: a restart
    of the database drops every connection at once, and a retry must not meet the next dead one
    (the chaos run met it: a 503 seconds after PostgreSQL was back)."""
    dbapi_error = engine.dialect.loaded_dbapi.Error
    raw: PoolProxiedConnection | None = None
    try:
        raw = engine.raw_connection()
        yield raw
    except dbapi_error as exc:
        lost = raw is not None and engine.dialect.is_disconnect(exc, raw.dbapi_connection, None)
        if lost and raw is not None:
            raw.invalidate(exc)
            engine.dispose()  # the connections checked out now are discarded when they come back
        elif raw is not None:
            with contextlib.suppress(dbapi_error):
                raw.rollback()
        raise DBAPIError.instance(
            None,
            None,
            exc,
            dbapi_error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=engine.dialect,
        ) from exc
    finally:
        if raw is not None:
            raw.close()  # back to the pool (or gone, when invalidated)
