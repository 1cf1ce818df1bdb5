"""The database's clock as every process keeps it (dbclock.py, ADR 0019).

The test's PostgreSQL runs on this machine, on its clock: the offset there is to be measured is
nil, so whatever a measurement finds beyond a few milliseconds is its own error.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import create_engine
from slotgraph.dbclock import DatabaseClock
from slotgraph.settings import Settings
from tests.conftest import postgres_url


async def test_a_wait_for_a_pooled_connection_is_not_taken_for_the_database_s_time(
    engine: AsyncEngine,
) -> None:
    # A measurement that waited for a connection (every pooled one busy, the worker's or a
    # server's under load: up to the pool's 30 s) counted the wait in its round trip, and the
    # offset was wrong by half of it: every deadline written for the next 5 s was as far off.
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no clock of its own to measure")
    one = create_engine(postgres_url(), Settings(db_pool_size=1, db_max_overflow=0))
    clock = DatabaseClock(one)
    try:
        async with one.connect() as busy:  # the pool's only connection
            await busy.execute(text("SELECT 1"))
            measuring = asyncio.create_task(clock.measure())
            with pytest.raises(TimeoutError):  # it waits for the connection, a second
                await asyncio.wait_for(asyncio.shield(measuring), 1.0)
        await measuring
        assert abs(clock.offset) < timedelta(seconds=0.2), clock.offset  # before: +0.5 s
    finally:
        await one.dispose()


class MachineClock:
    """This machine's clock, which the test steps as NTP or a resumed VM would."""

    def __init__(self) -> None:
        self.step = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.step


async def test_the_time_never_goes_back_by_less_than_a_second(engine: AsyncEngine) -> None:
    # A booking's history is in the order of its changes' times: a clock that went back by a
    # few milliseconds between two changes (a new measurement's noise, or this machine's clock
    # stepped back) listed the second before the first.
    machine = MachineClock()
    clock = DatabaseClock(engine, machine=machine)
    await clock.measure()
    machine.step = timedelta(milliseconds=300)
    ahead = clock()
    machine.step = timedelta(0)  # stepped back
    await clock.measure()
    assert clock() >= ahead  # before: 0.3 s earlier
    machine.step = timedelta(milliseconds=400)  # once this machine's time has caught up
    assert clock() > ahead  # it goes on


async def test_a_step_back_of_more_than_a_second_is_taken(engine: AsyncEngine) -> None:
    # A clock an hour ahead, set right: the time goes back an hour at once, not held for an hour.
    machine = MachineClock()
    clock = DatabaseClock(engine, machine=machine)
    await clock.measure()
    machine.step = timedelta(hours=1)
    assert clock() > datetime.now(UTC) + timedelta(minutes=59)  # until the next measurement
    machine.step = timedelta(0)
    await clock.measure()
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=1)
