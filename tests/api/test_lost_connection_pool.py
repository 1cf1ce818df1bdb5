"""A connection lost under a statement replaces the rest of its pool, whichever way the
statement went to the database (PostgreSQL).

When a database's sessions die without a word to the client (its host gone, a failover behind
a virtual address), a pooled connection is not known to be dead until a statement on it fails.
SQLAlchemy then marks every connection its pool made before as stale, to be replaced at its
next checkout, so that the rest of a dead pool does not fail a request each. The paths that
send straight to asyncpg (db/engine.py driver_fetch, driver_connection, driver_transaction;
db/driver_sql.py autocommit) used to drop only their own connection (db/engine.py `lose`).
The expectation is SQLAlchemy's own behaviour, checked here as the first case.

Here the lost statement's backend is terminated while it runs (the other connections stay
alive, so only the pool's own bookkeeping can replace them): after it, none of the connections
the pool had is handed out again. (A restart, which closes every session with a word to the
client, is handled before any statement: tests/system/test_outage.py.)
SQLite has no server and no pool to lose: one connection, in the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.driver_sql import _translated, autocommit
from slotgraph.db.engine import (
    create_engine,
    driver_connection,
    driver_fetch,
    driver_transaction,
)
from slotgraph.errors import DatabaseUnavailable
from tests.conftest import postgres_url

SLEEP = "SELECT pg_sleep(30)"


async def _through_sqlalchemy(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.exec_driver_sql(SLEEP)


async def _through_driver_fetch(engine: AsyncEngine) -> None:
    await driver_fetch(engine, SLEEP)


async def _through_driver_connection(engine: AsyncEngine) -> None:
    async with driver_connection(engine) as driver:
        await driver.fetch(SLEEP)


async def _through_driver_transaction(engine: AsyncEngine) -> None:
    async with driver_transaction(engine) as driver:
        await driver.fetch(SLEEP)


async def _through_autocommit(engine: AsyncEngine) -> None:
    async with autocommit(engine) as on:
        try:
            await on.driver.fetch(SLEEP)
        except Exception as exc:  # as fetch_autocommit does: SQLAlchemy's translation
            raise await _translated(on, exc) from exc


PATHS: dict[str, Callable[[AsyncEngine], Awaitable[None]]] = {
    "sqlalchemy": _through_sqlalchemy,
    "driver_fetch": _through_driver_fetch,
    "driver_connection": _through_driver_connection,
    "driver_transaction": _through_driver_transaction,
    "autocommit": _through_autocommit,
}


@pytest.fixture
async def own_engine(
    engine: AsyncEngine, database_urls: dict[str, str]
) -> AsyncIterator[AsyncEngine]:
    """A pool of the test's own on the PostgreSQL test database (the session's is not put at
    risk)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite: no server to lose, one connection in the process")
    own = create_engine(database_urls["postgresql"])
    try:
        yield own
    finally:
        await own.dispose()


async def _pooled_pids(engine: AsyncEngine, n: int) -> set[int]:
    """The backends of `n` connections checked out at once (and back in the pool after)."""
    held = asyncio.Event()
    pids: list[int] = []

    async def one() -> None:
        async with driver_connection(engine) as driver:
            pids.append(driver.get_server_pid())
            if len(pids) == n:
                held.set()
            await held.wait()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 30)
    return set(pids)


async def _terminate_the_sleeper(database: str) -> None:
    """Wait for the statement to run (bounded), then end its backend and wait until it has."""
    admin = await asyncpg.connect(postgres_url())
    try:
        for _ in range(300):
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query = $2",
                database,
                SLEEP,
            )
            if pid is not None:
                assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)
                return
            await asyncio.sleep(0.05)  # polling for the statement to start, bounded
        raise AssertionError("the statement never ran")
    finally:
        await admin.close()


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_connection_lost_under_a_statement_replaces_the_rest_of_the_pool(
    own_engine: AsyncEngine, path: str
) -> None:
    before = await _pooled_pids(own_engine, 3)
    database = own_engine.url.database
    assert database is not None
    with pytest.raises(DatabaseUnavailable) as caught:
        await asyncio.gather(PATHS[path](own_engine), _terminate_the_sleeper(database))
    assert caught.value.status == 503
    after = await _pooled_pids(own_engine, 3)
    # every connection made before the loss is replaced, the two still alive too
    assert before & after == set(), (before, after)
