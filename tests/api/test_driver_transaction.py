"""db/engine.py `driver_transaction` (the worker's fan-out runs in it) when PostgreSQL loses the
connection in the middle: the backend is killed (`pg_terminate_backend`, which waits until it
is gone) after a first write and before a second statement, or before the COMMIT. The block's
error is 503 database_unavailable, not the driver's own; nothing of the block is written; the
dead connection leaves the pool, and the next transaction gets a live one.

PostgreSQL only: on SQLite the fan-out runs through the session (there is no driver_transaction).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import create_engine, driver_transaction
from slotgraph.errors import DatabaseUnavailable
from tests.api.driver_calls import terminate_backend


@pytest.fixture
async def pg(engine: AsyncEngine, database_urls: dict[str, str]) -> AsyncIterator[str]:
    """The PostgreSQL test database's URL, with a scratch table `probe` of its own."""
    if engine.dialect.name != "postgresql":
        pytest.skip("driver_transaction is PostgreSQL's")
    url = database_urls["postgresql"]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS driver_tx_probe")
        await conn.execute("CREATE TABLE driver_tx_probe (id uuid PRIMARY KEY, n int NOT NULL)")
        yield url
    finally:
        await conn.execute("DROP TABLE IF EXISTS driver_tx_probe")
        await conn.close()


async def _rows(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r["n"] for r in await conn.fetch("SELECT n FROM driver_tx_probe ORDER BY n")]
    finally:
        await conn.close()


INSERT = "INSERT INTO driver_tx_probe (id, n) VALUES ($1, $2)"


async def _write_then_lose(engine: AsyncEngine, url: str, killed: str, pids: list[int]) -> None:
    """One row written in a driver_transaction, then its backend killed (its pid in `pids`)."""
    async with driver_transaction(engine) as driver:
        pids.append(driver.get_server_pid())
        await driver.execute(INSERT, uuid.uuid4(), 1)
        await terminate_backend(url, pids[0])
        if killed == "before the second statement":
            await driver.execute(INSERT, uuid.uuid4(), 2)


@pytest.mark.parametrize("killed", ["before the second statement", "before the commit"])
async def test_a_connection_lost_mid_transaction_is_503_writes_nothing_and_leaves_the_pool(
    pg: str, killed: str
) -> None:
    own = create_engine(pg)  # a pool of this test's own: the session's is not put at risk
    try:
        pids: list[int] = []
        with pytest.raises(DatabaseUnavailable) as caught:
            await _write_then_lose(own, pg, killed, pids)
        # What a client reads: the database, not the request, is at fault (503, retry); and
        # what the log names (api/problems.py logs the cause): asyncpg's closed connection.
        assert caught.value.status == 503
        assert caught.value.code == "database_unavailable"
        assert caught.value.detail == "The database cannot be reached right now; try again shortly."
        assert isinstance(caught.value.__cause__, asyncpg.InterfaceError)
        assert "connection is closed" in str(caught.value.__cause__)
        assert await _rows(pg) == []  # nothing of the block was written
        assert own.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        # The next transaction gets a live connection, not the dead one, and commits.
        async with driver_transaction(own) as driver:
            assert driver.get_server_pid() != pids[0]
            await driver.execute(INSERT, uuid.uuid4(), 3)
        assert await _rows(pg) == [3]
    finally:
        await own.dispose()
