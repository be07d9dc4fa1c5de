"""Statements SQLAlchemy compiles once, run through the DB-API on a pooled connection.

For the few statements a trade waits for (intake's fresh alert, app/webhook/fast_path.py; the job's
first read of its alert, worker/execution/executor.py; the job's decision,
worker/recording/decision_row.py). SQLAlchemy's execution machinery (a Connection, an
execution context and a result per statement, and the ORM's session around them) costs several
times the database's own work on such a write. Here SQLAlchemy still writes the SQL, once per
dialect, and each value still goes through its column type's own bind processor, so what is stored
is exactly what the same statement through SQLAlchemy stores; a query's row goes back through each
column type's result processor, so it reads what SQLAlchemy would return.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

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
    return _statement_of(compiled, dialect)


def _statement_of(compiled: Compiled, dialect: Dialect) -> DbapiStatement:
    """The driver's SQL and parameters of one compiled statement."""
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    if compiled.positional:
        names = tuple(compiled.positiontup or ())
    else:  # only the names the SQL uses (a compiled statement may keep others it rendered inline)
        names = tuple(name for name in binds if f"%({name})s" in compiled.string)
    pairs = tuple((name, binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names)
    defaults = {name: binds[name].effective_value for name in names if binds[name].value is not None}
    return DbapiStatement(compiled.string, bool(compiled.positional), pairs, defaults)


@dataclass(frozen=True)
class DbapiQuery:
    """A SELECT as the driver takes it, and its columns' types, which turn a driver's row back into
    the values SQLAlchemy would return (a JSON column's dict, an enum, an aware datetime)."""

    statement: DbapiStatement
    types: tuple[TypeEngine[Any], ...]
    dialect: Dialect
    # each column's result processor, per the driver's type codes (cursor.description): built once
    _processors: dict[tuple[Any, ...], tuple[Processor, ...]] = field(default_factory=dict, compare=False)

    def one(self, engine: Engine, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row for ``values`` (None: no row), on a pooled connection (:func:`pooled_dbapi`)."""
        with pooled_dbapi(engine) as raw:
            cursor = raw.cursor()
            try:
                cursor.execute(self.statement.sql, self.statement.params(values))
                row, description = cursor.fetchone(), cursor.description
            finally:
                cursor.close()
        if row is None:
            return None
        codes = tuple(column[1] for column in description)
        processors = self._processors.get(codes)
        if processors is None:
            processors = tuple(
                t.dialect_impl(self.dialect).result_processor(self.dialect, code)
                for t, code in zip(self.types, codes, strict=True)
            )
            self._processors[codes] = processors
        return tuple(v if p is None else p(v) for v, p in zip(row, processors, strict=True))


def compile_query(stmt: Select[Any], dialect: Dialect) -> DbapiQuery:
    """``stmt`` compiled for ``dialect``, with its result columns' types."""
    compiled = stmt.compile(dialect=dialect)
    types = tuple(column[3] for column in compiled._result_columns)  # noqa: SLF001 - SQLAlchemy's own list
    return DbapiQuery(_statement_of(compiled, dialect), types, dialect)


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
