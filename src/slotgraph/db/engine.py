"""Engine setup per backend. Nothing is created at import time: callers own their engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only, greenlet_spawn

from slotgraph.errors import DatabaseBusy, DatabaseUnavailable
from slotgraph.settings import Settings


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns (de)serialised by orjson: several times faster than the json module.
_JSON: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str) -> URL:
    """Accept plain `sqlite:///...` and `postgresql://...` URLs and pick the async driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def create_engine(url: str, settings: Settings | None = None) -> AsyncEngine:
    settings = settings or Settings()
    aurl = async_url(url)
    if aurl.get_backend_name() == "sqlite":
        return _sqlite_engine(aurl)
    engine = create_async_engine(
        aurl,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        pool_timeout=settings.db_pool_timeout_seconds,
        # jit off: with a million bookings the planner's cost estimates pass jit_above_cost, and
        # PostgreSQL spent 23 of a 24 ms search compiling it, on every execution (the plan
        # itself: 2.5 ms). Our statements are short and indexed; JIT only costs them.
        # lock_timeout: a lock another client holds (a psql session left in a transaction) made
        # every request of its resource wait as long as it was held, each on a pooled connection:
        # 20 such requests took every request's connection (docs/operations.md, "Bad days").
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {
                "jit": "off",
                "lock_timeout": f"{round(settings.db_lock_timeout_seconds * 1000)}ms",
            },
        },
        hide_parameters=True,  # errors and logs never carry the values (names, emails, phones)
        **_JSON,
    )
    event.listen(engine.sync_engine, "handle_error", _unavailable_on_disconnect)
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
    event.listen(engine.sync_engine, "connect", _made)
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


# In a pooled connection's record (its `info`, emptied when the record connects again): made
# since the checkout hook last saw it.
_FRESH = "slotgraph.fresh"


def _made(_dbapi_connection: Any, record: Any) -> None:
    """The pool's connect hook (PostgreSQL): marks the connection new for `_replace_if_closed`."""
    record.info[_FRESH] = True


def _replace_if_closed(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """The pool's checkout hook (PostgreSQL): a pooled connection the database has already
    closed is replaced before it is handed out, at no round trip. A restart or a failover ends
    every session with FATAL 57P01 and closes its socket, and asyncpg marks the connection
    closed as soon as the event loop reads that, idle or not. Without this (pool_pre_ping is off:
    a round trip per checkout), each such connection went to a request and failed it with 503,
    in every process that had not yet seen a failure of its own (tests/system/test_outage.py).
    SQLAlchemy replaces it and checks the new one; one that cannot be made is 503 as ever.
    A new connection already closed (the database ends sessions as they come: going down, or an
    operator ending every session) is 503 at once: SQLAlchemy replaces a closed connection twice
    at most in one checkout, then raises InvalidRequestError, a 500 to the error handler
    (tests/api/test_lost_connection_pool.py).
    A connection whose socket died without a word (the host gone) is not known closed here: the
    first statement on it fails, and `lose` (or SQLAlchemy) replaces the rest of the pool."""
    fresh = record.info.pop(_FRESH, False)
    if record.driver_connection.is_closed():
        if fresh:
            raise DatabaseUnavailable()
        raise sa_exc.DisconnectionError("the database closed this pooled connection")


def lose(
    sync_engine: Engine, pooled: Any, exc: BaseException | None = None, *, close: bool = True
) -> None:
    """`pooled` (a pool's connection, checked out) was lost: it leaves the pool, and so, as
    SQLAlchemy does when one of its own statements loses its connection, does every connection
    the pool made before it, each replaced at its next checkout. The paths straight to the
    driver (below, driver_sql.autocommit) call this; they used to drop only their own
    connection, and leave the rest of a dead pool to fail a request each. `close`: close
    `pooled` too (in SQLAlchemy's greenlet); without it, only the pool's mark is set (no I/O),
    and the caller's Connection closes it."""
    # Pool._invalidate: what SQLAlchemy's Connection calls on a disconnect (engine/base.py)
    sync_engine.pool._invalidate(pooled, exc, _checkin=close)


def _connect_or_unavailable(
    dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """SQLAlchemy's connect hook: a connection the driver cannot open at the socket level
    (refused, reset, no route, a name that does not resolve, the connect timeout) is our
    DatabaseUnavailable here, where it is known to be the database's socket. Elsewhere an OSError
    is the request's own (a file, a calendar server, SMTP): a fault, not an outage."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:  # TimeoutError and socket.gaierror are OSErrors too
        raise DatabaseUnavailable() from exc


# Connection-level failures: the server is gone, restarting, or refuses us (SQLSTATE classes 08
# and 57P), has run out of a resource (class 53: disk full, out of memory, too many connections),
# or takes no writes (25006: a read-only transaction, as on a standby after a failover). A
# statement's own errors are not among them.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53", "25006")
# SQLite's primary result codes (sqlite3.h) for a database that cannot take the work now, whatever
# the statement: another process holds the write lock (BUSY, LOCKED), and the file cannot be
# written (IOERR, FULL, READONLY, CANTOPEN). CORRUPT and NOTADB are not: no retry mends them.
_SQLITE_BUSY = frozenset({5, 6})
_SQLITE_UNAVAILABLE = frozenset({8, 10, 13, 14})


def _unavailable_on_disconnect(ctx: ExceptionContext) -> BaseException | None:
    """SQLAlchemy's error hook: a database that cannot serve us is 503 (`unavailable`).

    SQLAlchemy has already marked a lost connection invalid (and the pool with it), so the next
    checkout connects afresh: the server recovers by itself when the database is back.
    """
    exc = ctx.original_exception
    if not isinstance(exc, Exception):
        # A cancellation (the request's task: a server shutting down with it in flight) is not
        # the database's fault, and must go on as itself: made a 503 here, the task answered
        # instead of ending cancelled. SQLAlchemy still drops the connection it interrupted.
        return None
    if isinstance(exc, OSError) and not ctx.is_disconnect:
        # Raised while a statement runs (the driver let it through untranslated): the database's
        # socket failed. Marked a disconnect, SQLAlchemy drops the connection from the pool.
        ctx.is_disconnect = True
    lost = ctx.is_disconnect or ctx.connection is None
    return unavailable(exc, lost=lost)


def unavailable(exc: BaseException, *, lost: bool = False) -> DatabaseUnavailable | None:
    """What a driver's error means when the database, not the statement, is at fault: a lost
    connection or one that cannot be made (`lost`), a refusal (`_UNAVAILABLE_SQLSTATES`), a
    SQLite file that cannot be written is 503 database_unavailable; SQLite's write lock held
    past the busy timeout, a PostgreSQL lock held past lock_timeout (55P03: another client's
    lock, not a conflict of this request's) and a statement cancelled (57014: statement_timeout),
    are 503 database_busy. None: the statement's own
    error. The one rule for every way a statement reaches the driver (this engine's hook,
    driver_sql.run_sqlite)."""
    trouble = _trouble(exc)
    if trouble in _BUSY:
        return DatabaseBusy()
    if trouble == _NO_WRITES:
        return DatabaseUnavailable("The database cannot store changes right now; try again later.")
    if lost or _refused(exc):
        return DatabaseUnavailable()
    return None


def outage(exc: BaseException) -> tuple[str, str]:
    """What an outage (`is_unavailable`) was, in an operator's words, and the driver's own
    message (its first line): a lock another session holds, a statement cancelled, a database
    that takes no writes, no pooled connection free, or a database that cannot be reached. The
    worker's log said "database unavailable" for each, and a forgotten psql session looked like
    a PostgreSQL that was down (docs/operations.md, "Bad days"). Decided by the rules of
    `unavailable` above (`_trouble`), on the driver's error it came from."""
    if isinstance(exc, sa_exc.TimeoutError):
        return _NO_CONNECTION, str(exc)
    cause = exc.__cause__ or exc
    said = str(cause).strip().splitlines()[0][:200] if str(cause).strip() else type(cause).__name__
    return _trouble(cause) or _UNREACHABLE, said


# What a driver's error says of the database rather than of the statement, in an operator's
# words: one rule for the answer a request gets (`unavailable`: the first three are 503
# database_busy) and for what the worker's log says (`outage`).
# PostgreSQL refused to finish the work in the time it allows: a lock held past lock_timeout
# (55P03, lock_not_available), a statement past the operator's statement_timeout or cancelled by
# pg_cancel_backend (57014, query_canceled; our own cancellations end the task instead).
_LOCK_WAIT = "a lock wait past lock_timeout: another session holds a lock"
_BUSY_WAIT = "a lock wait past busy_timeout: another process holds the write lock"
_STATEMENT_TIMEOUT = "a statement timeout: statement_timeout or pg_cancel_backend"
_BUSY = (_LOCK_WAIT, _BUSY_WAIT, _STATEMENT_TIMEOUT)
_NO_WRITES = "the database takes no writes: read-only or full"
_UNREACHABLE = "the database is unreachable"
_NO_CONNECTION = "no pooled connection free in time"


def _trouble(exc: BaseException) -> str | None:
    """Which of the troubles above a driver's error is; None: none of them (a refusal or a
    lost connection, `_refused`, or the statement's own error)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    state = exc_sqlstate(exc)
    if state == "55P03":
        return _LOCK_WAIT
    if primary in _SQLITE_BUSY:
        return _BUSY_WAIT
    if state == "57014":
        return _STATEMENT_TIMEOUT
    if primary in _SQLITE_UNAVAILABLE or state == "25006":
        return _NO_WRITES
    return None


def _refused(exc: BaseException) -> bool:
    return exc_sqlstate(exc).startswith(_UNAVAILABLE_SQLSTATES)


def exc_sqlstate(exc: BaseException) -> str:
    return getattr(exc, "sqlstate", None) or ""


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """PostgreSQL: a pooled connection's own asyncpg connection, for a read that needs none of
    SQLAlchemy's per-statement work (its cursor, result and greenlet hops cost more CPU than a
    small search). No transaction is begun: each statement is its own snapshot. As through
    SQLAlchemy, a lost connection leaves the pool, and it or a refusal is 503."""
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        try:
            yield driver
        except Exception as exc:
            # an OSError here is the database's socket (the block holds driver calls only), as in
            # the engine's hook
            lost = driver.is_closed() or isinstance(exc, OSError)
            if lost:
                # the rest of the pool (lose), then this connection, through its Connection
                pooled = await conn.get_raw_connection()
                lose(engine.sync_engine, pooled, exc, close=False)
                await conn.invalidate(exc)
            if (meant := unavailable(exc, lost=lost)) is not None:
                raise meant from exc
            raise


async def driver_fetch(engine: AsyncEngine, sql: str, *args: Any) -> list[Any]:
    """PostgreSQL: one statement's rows on a pooled connection's asyncpg connection, as
    `driver_connection` runs it, in one hop into SQLAlchemy's greenlet instead of three (the
    checkout, the raw connection, the check-in) and without a Connection around the pool's:
    0.09 -> 0.05 ms of CPU for `SELECT 1` (the availability search's read, ADR 0004). A lost
    connection leaves the pool; it, a refusal, or one that cannot be made is 503."""
    rows: list[Any] = await greenlet_spawn(_fetch_in_greenlet, engine.sync_engine, sql, args)
    return rows


def checkout(sync_engine: Engine) -> Any:
    """A pooled connection, without a Connection around it; one that cannot be made is 503."""
    try:
        return sync_engine.raw_connection()
    except sync_engine.dialect.loaded_dbapi.Error as exc:
        # what a Connection's checkout hands the error hook: no connection, so 503
        raise (unavailable(exc, lost=True) or exc) from exc


def _fetch_in_greenlet(sync_engine: Engine, sql: str, args: tuple[Any, ...]) -> list[Any]:
    pooled = checkout(sync_engine)
    driver: Any = pooled.driver_connection
    try:
        rows: list[Any] = await_only(driver.fetch(sql, *args))
        return rows
    except Exception as exc:
        # an OSError here is the database's socket (only the driver's call is in the block)
        lost = driver.is_closed() or isinstance(exc, OSError)
        if lost:
            lose(sync_engine, pooled, exc)
        if (meant := unavailable(exc, lost=lost)) is not None:
            raise meant from exc
        raise
    finally:
        pooled.close()


@asynccontextmanager
async def driver_transaction(engine: AsyncEngine) -> AsyncIterator[Any]:
    """PostgreSQL: a pooled connection's asyncpg connection in a transaction of its own,
    committed when the block ends (rolled back if it raises): several statements in one
    transaction without SQLAlchemy's execution around each (the worker's fan-out). One hop into
    SQLAlchemy's greenlet to check the connection out, one to check it in. As `driver_fetch`: a
    lost connection leaves the pool; it, a refusal, or one that cannot be made is 503. A
    connection still in the transaction when the block ends (cancelled mid-statement) is closed,
    never handed to the next user."""
    pooled = await greenlet_spawn(checkout, engine.sync_engine)
    driver: Any = pooled.driver_connection
    lost = False
    try:
        async with driver.transaction():
            yield driver
    except Exception as exc:
        # an OSError here is the database's socket, as in `driver_fetch`
        lost = driver.is_closed() or isinstance(exc, OSError)
        if (meant := unavailable(exc, lost=lost)) is not None:
            raise meant from exc
        raise
    finally:
        if lost or driver.is_closed():
            await greenlet_spawn(lose, engine.sync_engine, pooled)
        elif driver.is_in_transaction():  # cancelled mid-statement: this one only
            await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means "no database" (and not a fault of the request or the code): ours
    (raised by the hooks above for a connection that cannot be made or was lost, a refusal, a
    file that cannot be written), or a pool that cannot hand out a connection in time. Not any
    OSError: a request's own file, calendar server or SMTP socket failing is a fault (500), not
    an outage; the database's own socket errors become DatabaseUnavailable where they happen."""
    return isinstance(exc, DatabaseUnavailable | sa_exc.TimeoutError)


# How long a transaction waits for its turn at the one connection, and then for another process's
# write lock (busy_timeout).
SQLITE_WAIT_SECONDS = 30


def _sqlite_engine(url: URL) -> AsyncEngine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # One connection per process: every transaction takes SQLite's write lock anyway (below), and
    # writers that contend for it inside SQLite poll with growing sleeps (up to 100 ms a try), so
    # under load some wait seconds while others get straight in. Queued for the one connection
    # instead, they take turns first come, first served (ADR 0008). Between processes that share
    # the file, BEGIN IMMEDIATE and busy_timeout still decide, as before.
    engine = create_async_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=SQLITE_WAIT_SECONDS,
        hide_parameters=True,
        **_JSON,
    )
    event.listen(engine.sync_engine, "handle_error", _unavailable_on_disconnect)
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_WAIT_SECONDS * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Every transaction takes the write lock up front: a check and the write that depends on
        # it can never interleave with another writer (design.md, invariant 1 on SQLite).
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"
