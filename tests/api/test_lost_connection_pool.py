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
client, is handled before any statement: tests/system/test_outage.py.) The last two tests
are the checkout's own outages: a pooled connection found closed when the database refuses
new ones, or ends them as they are made; each is 503, never 500.
SQLite has no server and no pool to lose: one connection, in the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from slotgraph.api.app import create_app
from slotgraph.db.driver_sql import _translated, autocommit
from slotgraph.db.engine import (
    create_engine,
    driver_connection,
    driver_fetch,
    driver_transaction,
)
from slotgraph.errors import DatabaseUnavailable
from tests.api.conftest import TEST_SETTINGS, Api
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


async def _end(driver: asyncpg.Connection) -> None:
    """End the session of `driver` (a pooled connection's asyncpg connection), as a restart does
    (FATAL 57P01, its socket closed), and wait until the driver has read it (bounded)."""
    admin = await asyncpg.connect(postgres_url())
    try:
        pid = driver.get_server_pid()
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)
    finally:
        await admin.close()
    for _ in range(1000):  # polling for the driver to read the end, bounded
        if driver.is_closed():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the driver never saw its session end")


async def _pooled(engine: AsyncEngine) -> asyncpg.Connection:
    """The asyncpg connection of the pool's one connection (checked in again)."""
    async with driver_connection(engine) as driver:
        pass
    assert engine.sync_engine.pool.checkedin() == 1
    return driver


@asynccontextmanager
async def sessions_ended_as_made(engine: AsyncEngine) -> AsyncIterator[None]:
    """While the block runs, the database ends each session of `engine`'s pool as soon as it is
    made (as a database going down does to the connections that still get in), and the driver
    has seen it end before SQLAlchemy hands the connection out."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        await_only(_end(dbapi_connection.driver_connection))

    event.listen(engine.sync_engine, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "connect", on_connect)


def _assert_outage(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert (r.json()["code"], r.headers["retry-after"]) == ("database_unavailable", "5")


async def test_a_database_ending_every_new_session_is_503_not_500(
    own_engine: AsyncEngine, api: Api
) -> None:
    """The pooled connection was closed by the database (the checkout hook, db/engine.py
    `_replace_if_closed`, finds it so), and so is every new one by the time it is handed out.
    SQLAlchemy replaces a closed connection twice at most in one checkout, then raises
    InvalidRequestError ("This connection is closed"), no outage to the error handler: that was
    a 500. The answer must be the outage's, 503 problem+json with Retry-After, on the SQLAlchemy
    path and on the raw checkout (db/engine.py `checkout`), and the next request after the
    database takes sessions again answers."""
    app = create_app(TEST_SETTINGS, engine=own_engine, clock=api.clock)
    headers = {"Authorization": f"Bearer {api.key}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        assert (await http.get("/v1/resources", headers=headers)).status_code == 200
        await _end(await _pooled(own_engine))
        async with sessions_ended_as_made(own_engine):
            r = await http.get("/v1/resources", headers=headers)
            with pytest.raises(DatabaseUnavailable):
                await driver_fetch(own_engine, "SELECT 1")
        after = await http.get("/v1/resources", headers=headers)
    _assert_outage(r)
    assert after.status_code == 200, after.text


async def test_a_closed_pooled_connection_while_the_database_refuses_new_ones_is_503(
    own_engine: AsyncEngine, api: Api
) -> None:
    """The checkout hook finds the pooled connection closed (the database went down) and
    SQLAlchemy cannot make a new one (the database refuses them: ALLOW_CONNECTIONS false, as
    in a failover): 503 problem+json, on the SQLAlchemy path and the raw checkout (this was so
    before the test), and answers again once the database takes connections."""
    app = create_app(TEST_SETTINGS, engine=own_engine, clock=api.clock)
    headers = {"Authorization": f"Bearer {api.key}"}
    name = own_engine.url.database
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        assert (await http.get("/v1/resources", headers=headers)).status_code == 200
        driver = await _pooled(own_engine)
        admin = await asyncpg.connect(postgres_url())
        try:
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            try:
                await _end(driver)
                r = await http.get("/v1/resources", headers=headers)
                with pytest.raises(DatabaseUnavailable):
                    await driver_fetch(own_engine, "SELECT 1")
            finally:
                await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        finally:
            await admin.close()
        after = await http.get("/v1/resources", headers=headers)
    _assert_outage(r)
    assert after.status_code == 200, after.text
