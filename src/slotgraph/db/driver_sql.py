"""Hot statements built and compiled by SQLAlchemy once, then run as driver SQL (ADR 0005).

`Connection.execute` of a statement object looks its compiled form up per call (a cache key made
by walking the whole statement), then builds and converts the parameters through the execution
context; for the create's one write (five INSERTs chained as CTEs, about sixty parameters) and
the availability search that was more CPU than the driver's own work. `exec_driver_sql` of the
compiled text skips all of that and keeps SQLAlchemy's error handling (a lost connection still
leaves the pool; a refusal is still a DBAPIError with the driver's SQLSTATE). The column types'
conversions, which `execute` would apply, are applied here, and only where a type has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement compiled for one dialect: its text, its parameters in order (each with the
    value it was built with, None if given per call, and its type's conversion), and its result
    columns with theirs (None: as the driver gives it)."""

    sql: str
    params: tuple[tuple[str, Any, Any], ...]
    columns: tuple[str, ...]
    results: tuple[tuple[int, Any], ...]  # (column's position, its conversion), where it has one

    def arguments(self, given: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments for the driver: each parameter's value (`given` by name,
        unless the statement was built with one), converted as its column type converts it."""
        return tuple(
            value if convert is None else convert(value)
            for name, built, convert in self.params
            for value in (given[name] if built is None else built,)
        )

    def converted(self, row: Any) -> list[Any]:
        """A result row's values as `execute` would give them (JSON decoded, and so on)."""
        values = list(row)
        for i, convert in self.results:
            values[i] = convert(values[i])
        return values


def prepare(stmt: ClauseElement, dialect: Dialect) -> Prepared:
    """Compile `stmt` for `dialect` (callers cache the result: it is built once per process)."""
    compiled = stmt.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    assert compiled.positiontup is not None, "a positional paramstyle"
    built = compiled.params
    params = tuple(
        (name, built[name], compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        for name in compiled.positiontup
    )
    selected = list(stmt.selected_columns) if isinstance(stmt, Select) else []
    columns = tuple(c.name for c in selected)
    results = tuple(
        (i, convert)
        for i, c in enumerate(selected)
        for convert in (c.type.dialect_impl(dialect).result_processor(dialect, None),)
        if convert is not None
    )
    return Prepared(str(compiled), params, columns, results)


async def run(
    conn: AsyncConnection, prepared: Prepared, given: Mapping[str, Any]
) -> CursorResult[Any]:
    """Execute `prepared` on `conn` with the parameters `given` by name."""
    return await conn.exec_driver_sql(prepared.sql, prepared.arguments(given))
