"""tests/api/driver_calls.py instruments the engine's own connections and nothing else, and
leaves nothing behind: before, it patched asyncpg's class, so every connection in the process
was hooked while inside (a test's own connection, another engine's, another thread's), and two
contexts that overlapped restored each other's hooks (the second one's exit put the first
one's hook back on the class for good)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.api.driver_calls import asyncpg_statements


@pytest.fixture
def postgresql_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("asyncpg is PostgreSQL's driver")


pytestmark = pytest.mark.usefixtures("postgresql_only")
ASK = "SELECT $1::int + 1"


async def _driver_fetch(engine: AsyncEngine, value: int) -> int:
    """`ASK` straight on asyncpg, on one of the engine's pooled connections (as driver_sql.py
    sends the create's statements)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        return int((await driver.fetch(ASK, value))[0][0])


async def test_only_the_engines_connections_are_reported_and_only_inside(
    engine: AsyncEngine, database_urls: dict[str, str]
) -> None:
    seen: list[str] = []
    own = await asyncpg.connect(database_urls["postgresql"])
    try:
        with asyncpg_statements(engine, seen.append):
            assert await _driver_fetch(engine, 1) == 2
            await own.fetch(ASK, 5)  # a test's own connection: not the engine's
            async with engine.connect() as conn:  # SQLAlchemy's own statement: not reported
                await conn.execute(text("SELECT 1"))
        assert seen == [ASK]
        assert await _driver_fetch(engine, 2) == 3  # after: nothing reported
        assert seen == [ASK]
    finally:
        await own.close()
    assert type(own) is asyncpg.Connection
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert type(raw.driver_connection) is asyncpg.Connection


async def test_overlapping_contexts_each_see_theirs_and_leave_nothing(
    engine: AsyncEngine,
) -> None:
    first: list[str] = []
    second: list[str] = []
    outer = asyncpg_statements(engine, first.append)
    inner = asyncpg_statements(engine, second.append)
    outer.__enter__()
    inner.__enter__()
    await _driver_fetch(engine, 1)
    outer.__exit__(None, None, None)  # the first one ends first: not in the order they began
    await _driver_fetch(engine, 2)
    inner.__exit__(None, None, None)
    await _driver_fetch(engine, 3)
    assert first == [ASK]
    assert second == [ASK, ASK]


async def _fails_with_a_connection_out(engine: AsyncEngine, seen: list[str]) -> Any:
    """Ends its context by an error while one of the engine's connections is still checked out;
    returns that connection's driver (the connection stays out)."""
    with asyncpg_statements(engine, seen.append):
        conn = await engine.connect().start()
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.fetch(ASK, 1)
        raise _Failed(conn, driver)


class _Failed(Exception):
    def __init__(self, conn: AsyncConnection, driver: Any) -> None:
        super().__init__("the test failed while a connection was out")
        self.conn, self.driver = conn, driver


async def test_a_context_left_by_an_error_leaves_nothing(engine: AsyncEngine) -> None:
    seen: list[str] = []
    with pytest.raises(_Failed) as failed:
        await _fails_with_a_connection_out(engine, seen)
    conn, driver = failed.value.conn, failed.value.driver
    try:
        assert type(driver) is asyncpg.Connection  # its own class again, though still out
        await driver.fetch(ASK, 2)
    finally:
        await conn.close()
    await _driver_fetch(engine, 3)
    assert seen == [ASK]
