"""SQLAlchemy Core statements run straight on the driver's cursor, for the index writer.

The index writer's statements are small (a lookup by UID, two inserts); SQLAlchemy's
per-statement machinery cost more than the database's own work: run directly, the
writer's CPU per stored object fell from 1.1 to 0.8 ms (bench/store_throughput.py, large
objects over 4 associations). The SQL is still SQLAlchemy's, compiled once per dialect
and set of columns; only the execution is direct, inside the transaction of the
Connection it is given.

Parameter values go through SQLAlchemy's bind processors of their column types, so they
are stored as SQLAlchemy stores them (SQLite's datetimes as text).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled


class _Prepared:
    """One statement compiled for one dialect: its SQL, parameter order and row type."""

    def __init__(self, compiled: Compiled, columns: Sequence[str]) -> None:
        self.sql = str(compiled)
        self.positional = compiled.positiontup
        # Values written into the statement (`column == "literal"`).
        self.literals = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        # SQLAlchemy's own conversions of the column types (SQLite's datetimes as text).
        dialect = compiled.dialect
        self.processors = {
            name: process
            for name, bind in compiled.binds.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        self.row = namedtuple("Row", columns) if columns else None  # type: ignore[misc]

    def parameters(self, values: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        if self.literals:
            values = {**self.literals, **values}
        if self.processors:
            values = {
                k: self.processors[k](v) if k in self.processors else v for k, v in values.items()
            }
        if self.positional is not None:
            return [values[name] for name in self.positional]
        return values


class DirectStatement:
    """A SELECT or an INSERT ... RETURNING of SQLAlchemy Core, executed on the driver."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._prepared: dict[tuple[str, frozenset[str]], _Prepared] = {}

    def _prepare(self, conn: Connection, keys: frozenset[str]) -> _Prepared:
        cache_key = (conn.dialect.name, keys)
        prepared = self._prepared.get(cache_key)
        if prepared is None:
            compiled = self.statement.compile(dialect=conn.dialect, column_keys=sorted(keys))
            # Selected or returned columns; none for a plain INSERT or a text() statement.
            columns = [c.key for c in getattr(self.statement, "exported_columns", ())]
            prepared = self._prepared[cache_key] = _Prepared(compiled, columns)
        return prepared

    def _run(self, conn: Connection, values: dict[str, Any]) -> tuple[Any, _Prepared]:
        prepared = self._prepare(conn, frozenset(values))
        parameters = prepared.parameters(values)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        driver_error = conn.dialect.loaded_dbapi.Error
        try:
            cursor.execute(prepared.sql, parameters)
        except driver_error as exc:
            lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
            cursor.close()
            if lost:
                # As SQLAlchemy does: the pool must not hand this connection out again.
                conn.invalidate(exc)
            # As SQLAlchemy would raise it (IntegrityError for a lost race on a UID...),
            # so that callers handle both paths alike.
            raise DBAPIError.instance(
                prepared.sql,
                parameters,
                exc,
                driver_error,
                connection_invalidated=lost,
                dialect=conn.dialect,
            ) from exc
        return cursor, prepared

    def first(self, conn: Connection, values: dict[str, Any]) -> Any:
        """The first row (fields by name), or None."""
        cursor, prepared = self._run(conn, values)
        try:
            raw = cursor.fetchone()
        finally:
            cursor.close()
        if raw is None or prepared.row is None:
            return raw
        return prepared.row(*raw)

    def execute(self, conn: Connection, values: dict[str, Any]) -> None:
        """Run for its effect only."""
        cursor, _ = self._run(conn, values)
        cursor.close()
