"""The PostgreSQL session settings every pooled connection of the app runs with."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import driver_connection


async def test_postgres_connections_run_without_jit(engine: AsyncEngine) -> None:
    """JIT off: at a million bookings PostgreSQL compiled a 2.5 ms search for 23 ms on every
    execution (docs/benchmarks.md, "availability at a million bookings")."""
    if engine.dialect.name != "postgresql":
        pytest.skip("JIT is PostgreSQL's")
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SHOW jit")).scalar() == "off"
    async with driver_connection(engine) as driver:  # the search's own way to the database
        assert await driver.fetchval("SHOW jit") == "off"
