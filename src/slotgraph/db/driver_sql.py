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

import re
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import CursorResult, Select
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from slotgraph.db.engine import checkout, lose, unavailable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement compiled for one dialect: its text, its parameters in order (each with the
    value it was built with, None if given per call, and its type's conversion), and its result
    columns with theirs (None: as the driver gives it)."""

    sql: str
    params: tuple[tuple[str, Any, Any], ...]
    columns: tuple[str, ...]
    results: tuple[tuple[int, Any], ...]  # (column's position, its conversion), where it has one
    converts: tuple[tuple[int, Any], ...]  # (parameter's position, its conversion), likewise
    # A plain row type with the result columns as attributes (fetch_autocommit's rows).
    row: Any = field(default=None, compare=False)

    def arguments(self, given: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments for the driver: each parameter's value (`given` by name,
        unless the statement was built with one), converted as its column type converts it."""
        return tuple(
            value if convert is None else convert(value)
            for name, built, convert in self.params
            for value in (given[name] if built is None else built,)
        )

    def convert(self, values: list[Any]) -> tuple[Any, ...]:
        """The positional arguments for the driver from the parameters' `values`, in order (a
        statement built without values), converted as their column types convert them."""
        for i, convert in self.converts:
            values[i] = convert(values[i])
        return tuple(values)

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
    converts = tuple(
        (i, convert) for i, (_, _, convert) in enumerate(params) if convert is not None
    )
    row = namedtuple("Row", columns, rename=True) if columns else None
    return Prepared(str(compiled), params, columns, results, converts, row)


async def run(
    conn: AsyncConnection, prepared: Prepared, given: Mapping[str, Any]
) -> CursorResult[Any]:
    """Execute `prepared` on `conn` with the parameters `given` by name."""
    return await conn.exec_driver_sql(prepared.sql, prepared.arguments(given))


async def run_positional(
    conn: AsyncConnection, prepared: Prepared, values: list[Any]
) -> CursorResult[Any]:
    """Execute `prepared` on `conn` with its parameters' `values` in order (Prepared.convert)."""
    return await conn.exec_driver_sql(prepared.sql, prepared.convert(values))


@dataclass(frozen=True, slots=True)
class Autocommit:
    """PostgreSQL: a pooled connection checked out without a transaction (`autocommit`), for
    statements that each commit by themselves, sent straight on its asyncpg connection."""

    pooled: Any  # the pool's connection (no SQLAlchemy Connection around it)
    driver: Any  # its asyncpg connection
    dialect: Dialect
    sync_engine: Engine  # its pool's (a lost connection leaves it with the rest: engine.lose)


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[Autocommit]:
    """PostgreSQL: a pooled connection for `fetch_autocommit` and `execute_autocommit` (the
    optimistic create, ADR 0005), checked out and in with one hop into SQLAlchemy's greenlet
    each, and no Connection or ORM session around it: a session, its `begin()` and a connection
    in AUTOCOMMIT cost 142-149 us of CPU with nothing sent (docs/benchmarks.md, eighth pass).

    Nothing begins a transaction on it, so each statement commits by itself. As through
    SQLAlchemy, a lost connection leaves the pool (also one cancelled mid-statement, or left in
    a transaction), and the database's state is 503 (engine.unavailable). asyncpg reports a lost
    connection as its own error (translated in `_translated`), its socket's OSError only as the
    cause; an OSError raised here with the connection still open is the block's own, a fault
    (500), as elsewhere (tests/api/test_create_cut_short.py)."""
    pooled = await greenlet_spawn(checkout, engine.sync_engine)
    driver = pooled.driver_connection
    broken = True
    try:
        yield Autocommit(pooled, driver, engine.dialect, engine.sync_engine)
        broken = False
    except OSError as exc:
        if not driver.is_closed():  # not the database's socket: the block's own (a fault, 500)
            broken = False
            raise
        raise (unavailable(exc, lost=True) or exc) from exc
    except Exception:
        broken = False
        raise
    finally:
        if pooled.is_valid and driver.is_closed():  # lost: the rest of the pool too
            await greenlet_spawn(lose, engine.sync_engine, pooled)
        elif pooled.is_valid and (broken or driver.is_in_transaction()):
            await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)


async def fetch_autocommit(on: Autocommit, prepared: Prepared, args: Sequence[Any]) -> list[Any]:
    """`prepared` (a SELECT) with the positional `args`, straight on asyncpg. Its rows are
    `prepared.row`s, converted as `execute` would convert them (Prepared.converted): attributes
    by column name, as a Row's.

    Through SQLAlchemy a statement costs about 115 us of CPU more than asyncpg's own call (the
    greenlet, the adapter's cursor and its prepared-statement cache, the execution context, the
    result): measured in one process, 167-180 us against 54 us for the create's read (ADR 0005;
    docs/benchmarks.md, "eighth pass"). Errors are handled as SQLAlchemy's (_translated)."""
    try:
        records = await on.driver.fetch(prepared.sql, *args)
    except Exception as exc:
        raise await _translated(on, exc) from exc
    make = prepared.row
    return [make(*prepared.converted(record)) for record in records]


async def execute_autocommit(on: Autocommit, prepared: Prepared, args: Sequence[Any]) -> int:
    """`prepared` (one INSERT, or UPDATE, DELETE) with the positional `args`, straight on
    asyncpg (fetch_autocommit says why); the rows it wrote, from the command's status as
    SQLAlchemy reads `rowcount` from it."""
    try:
        status = await on.driver.execute(prepared.sql, *args)
    except Exception as exc:
        raise await _translated(on, exc) from exc
    counted = _ROWS.match(status or "")
    return int(counted.group(1)) if counted else -1


_ROWS = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


async def _translated(on: Autocommit, exc: Exception) -> Exception:
    """What SQLAlchemy raises for the driver's `exc` (its adapter's translation to the DB-API's
    errors, then its own): a DBAPIError whose `orig` carries the SQLSTATE, a lost connection
    invalidated (it leaves the pool), and the database's state answered 503
    (engine.unavailable), as for its own statements."""
    dialect = on.dialect
    try:
        on.pooled.dbapi_connection._handle_exception(exc)
    except dialect.loaded_dbapi.Error as dbapi_error:
        lost = dialect.is_disconnect(dbapi_error, None, None)
        if lost and on.pooled.is_valid:
            await greenlet_spawn(lose, on.sync_engine, on.pooled, dbapi_error)
        if (meant := unavailable(dbapi_error, lost=lost)) is not None:
            return meant
        return DBAPIError.instance(
            None,
            None,
            dbapi_error,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=dialect,
        )
    except Exception as other:  # not the driver's (cancelled, a timeout): as it is
        return other
    return exc


# A statement for run_sqlite: its prepared form, its parameters' values in order, and whether it
# must return a row for the ones after it to run.
Step = tuple[Prepared, list[Any], bool]


async def run_sqlite(conn: AsyncConnection, steps: Sequence[Step]) -> bool:
    """SQLite: run `steps` in order in one call to the driver's thread (`call_sqlite`); False
    if a step that must return a row did not (then none after it ran). The create's writes (one
    INSERT per table, and an Idempotency-Key's answer) are one hop here. (SQLAlchemy's cursor
    events do not see these statements; SQLite's trace callback does:
    tests/api/test_create_path.py.)
    """
    run = [(p.sql, p.convert(values), must) for p, values, must in steps]
    return await call_sqlite(conn, _run_steps, run)


async def call_sqlite(conn: AsyncConnection, work: Callable[..., T], *args: Any) -> T:
    """SQLite: `work(db, *args)` in one call to the driver's thread, `db` being the connection's
    sqlite3 connection, in `conn`'s transaction; its result.

    aiosqlite runs every call of its connection on a thread of its own, and a statement through
    SQLAlchemy is three or four of them (a cursor, the statement, its rows, closing the cursor),
    each a hop from the event loop to that thread and back. Inside a transaction, which holds
    the process's one connection (ADR 0008), those hops were most of a write's time. As through
    SQLAlchemy, a refusal by the database is a DBAPIError, and a database that cannot take the
    work (locked, full, read-only, lost) is 503 (engine.unavailable).
    """
    dialect = conn.dialect
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        result: T = await driver._execute(work, driver._conn, *args)
    except dialect.loaded_dbapi.Error as exc:
        # What SQLAlchemy's error handling does for its own statements, which this call
        # bypasses: a lost connection leaves the pool, and the engine's rule says which errors
        # are the database's state (503) rather than the statement's.
        lost = dialect.is_disconnect(exc, None, None)
        if lost:
            await conn.invalidate(exc)
        if (meant := unavailable(exc, lost=lost)) is not None:
            raise meant from exc
        raise DBAPIError.instance(
            None, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
        ) from exc
    return result


def _run_steps(db: sqlite3.Connection, steps: list[tuple[str, tuple[Any, ...], bool]]) -> bool:
    """On aiosqlite's thread: run the steps, up to one that must return a row and does not."""
    for sql, args, must_return in steps:
        cursor = db.execute(sql, args)
        try:
            if must_return and cursor.fetchone() is None:
                return False
        finally:
            cursor.close()
    return True
