"""Statements on a query's path, run straight on the database driver.

SQLAlchemy spends far longer preparing and unpacking each execution of a small statement
than SQLite takes to run it: quota admission is eight statements per query, and on the
DataHub service's path they cost about 0.6 ms through `Connection.execute` against
0.1 ms on the driver. A `Prepared` statement is a SQLAlchemy Core statement compiled once
per dialect (its SQL, parameter order, literal values, and the column types' own bind
and result processors), then run on the connection's DB-API cursor, inside the
transaction the `sa.Connection` holds. Values go in and come out converted exactly as
SQLAlchemy converts them (JSON, aware UTC datetimes, dates); rows come back as named
tuples.

Only for statements whose parameters are all named ``sa.bindparam``s or literals, and
whose columns are listed explicitly (an INSERT states its ``values``): Python-side column
defaults and "expanding" IN parameters are not applied here.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["Prepared"]

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: The parameters' names in the driver's order (positional paramstyles), or None.
    order: tuple[str, ...] | None
    #: Values of the statement's literals, by parameter name.
    literals: Mapping[str, Any]
    #: The bind processors of the parameters that have one (JSON, datetimes, …).
    binds: Mapping[str, Callable[[Any], Any]]
    row: Any  # a namedtuple class, or None for a statement without rows
    results: tuple[Processor, ...]


class Prepared:
    """A Core *statement* run on the driver: ``Prepared(stmt).execute(conn, {...})``
    returns its rows (named tuples), ``.rowcount(conn, {...})`` the rows it changed."""

    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return compiled

    def _run(self, conn: sa.Connection, params: Mapping[str, Any]) -> tuple[Any, _Compiled]:
        compiled = self._for(conn.dialect)
        values = {**compiled.literals, **params}
        for name, process in compiled.binds.items():
            values[name] = process(values[name])
        if not conn.in_transaction():
            # As SQLAlchemy's own execute would: its commit then commits this statement.
            conn.begin()
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if compiled.order is None:
            cursor.execute(compiled.sql, values)
        else:
            cursor.execute(compiled.sql, tuple(values[name] for name in compiled.order))
        return cursor, compiled

    def execute(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> list:
        """The statement's rows, converted as SQLAlchemy converts them."""
        cursor, compiled = self._run(conn, params or {})
        try:
            if compiled.row is None:
                return []
            results, row = compiled.results, compiled.row
            return [
                row(*(v if p is None else p(v) for p, v in zip(results, raw, strict=True)))
                for raw in cursor.fetchall()
            ]
        finally:
            cursor.close()

    def first(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The statement's first row, or None."""
        rows = self.execute(conn, params)
        return rows[0] if rows else None

    def rowcount(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> int:
        """The number of rows the statement changed."""
        cursor, _ = self._run(conn, params or {})
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()


def _compile(statement: sa.Executable, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    if compiled.positional:
        order: tuple[str, ...] | None = tuple(compiled.positiontup or ())
    else:
        order = None
    literals: dict[str, Any] = {}
    binds: dict[str, Callable[[Any], Any]] = {}
    used = set(compiled.bind_names.values())  # compiled.binds also has anonymous keys
    for name, bind in compiled.binds.items():
        if name not in used:
            continue
        if getattr(bind, "expanding", False):
            raise ValueError(f"Prepared statements take no expanding parameters ({name}).")
        if not bind.required:
            literals[name] = bind.effective_value
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds[name] = process
    columns: Sequence[Any] = list(getattr(statement, "exported_columns", ()))
    if not columns:
        return _Compiled(compiled.string, order, literals, binds, None, ())
    row = namedtuple("Row", [column.key for column in columns])  # type: ignore[misc]
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    )
    return _Compiled(compiled.string, order, literals, binds, row, results)
