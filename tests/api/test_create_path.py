"""The create path is held to its round trips (ADR 0005), and its hand-built rows to the schema.

The statements are observed where they leave SQLAlchemy for the driver, or where they are sent
straight on it (tests/api/driver_calls.py), so what is counted is what the database receives.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import Table, event
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.models import Base
from tests.api.conftest import Api
from tests.api.driver_calls import asyncpg_statements

START = "2024-06-03T10:00:00Z"
END = "2024-06-03T11:00:00Z"


@asynccontextmanager
async def database_calls(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """Each round trip to the database while inside: BEGIN, COMMIT, ROLLBACK, or a statement.

    On SQLite, what SQLite itself runs, from its trace callback (the create's writes go to the
    driver's thread in one call, past SQLAlchemy's cursor events: db/driver_sql.py).
    """
    calls: list[str] = []
    if engine.dialect.name == "sqlite":

        def traced(sql: str) -> None:  # (reported again at each trigger the statement fires)
            if not calls or calls[-1] != sql:
                calls.append(sql)

        async with engine.connect() as conn:  # the process's one connection (ADR 0008)
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.set_trace_callback(traced)
        try:
            yield calls
        finally:
            async with engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                await driver.set_trace_callback(None)
        return

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        calls.append(sql)

    def sent(conn: Any) -> bool:  # in autocommit, BEGIN/COMMIT/ROLLBACK are not sent at all
        return bool(conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT")

    def begin(conn: Any) -> None:
        if sent(conn):
            calls.append("BEGIN")

    def commit(conn: Any) -> None:
        if sent(conn):
            calls.append("COMMIT")

    def rollback(conn: Any) -> None:
        if sent(conn):
            calls.append("ROLLBACK")

    hooks = {
        "before_cursor_execute": statement,
        "begin": begin,
        "commit": commit,
        "rollback": rollback,
    }

    def on_driver(sql: str) -> None:  # sent straight on asyncpg (tests/api/driver_calls.py)
        calls.append(sql)

    for name, fn in hooks.items():
        event.listen(engine.sync_engine, name, fn)
    try:
        with asyncpg_statements(engine, on_driver):
            yield calls
    finally:
        for name, fn in hooks.items():
            event.remove(engine.sync_engine, name, fn)


def verbs(calls: list[str]) -> list[str]:
    return [c.split()[0].upper() if c not in ("BEGIN", "COMMIT") else c for c in calls]


async def test_one_create_is_two_round_trips_on_postgresql_and_counted_on_sqlite(
    api: Api, engine: AsyncEngine
) -> None:
    resource = await api.resource()  # also caches the key: authentication costs no query below
    client = await api.client()
    body = {"resource_id": resource["resource_id"], "client_id": client["client_id"]}
    await api.book(**body, start_time=START, end_time=END)  # warm: statements are built once
    async with database_calls(engine) as calls:
        await api.book(**body, start_time="2024-06-03T12:00:00Z", end_time="2024-06-03T13:00:00Z")
    if api.backend == "postgresql":
        # No transaction of its own: one unlocked read (resource with its row version, and the
        # client), one write (WITH gate AS (lock the resource if unchanged), w0 AS (INSERT
        # booking) ... INSERT event). If this grows, ADR 0005 is no longer true.
        assert verbs(calls) == ["SELECT", "WITH"], calls
    else:
        # SQLite is in-process: BEGIN IMMEDIATE, the locking read, the overlap check (no
        # exclusion constraint to rely on), one INSERT per table (booking, hold, customer
        # token, history, event), as SQLite runs them.
        assert verbs(calls) == [
            "BEGIN",
            "SELECT",
            "SELECT",
            "INSERT",
            "INSERT",
            "INSERT",
            "INSERT",
            "INSERT",
            "COMMIT",
        ], calls


def must_be_given(table: Table) -> set[str]:
    """Columns an INSERT must name: a Python-side default (a plain-row INSERT skips it) or NOT
    NULL with nothing on the database side to fill it."""
    return {
        c.key
        for c in table.columns
        if c.default is not None
        or (not c.nullable and c.server_default is None and c.autoincrement is not True)
    }


def inserted_columns(calls: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for sql in calls:
        for table, columns in re.findall(r"INSERT INTO (\w+) \(([^)]*)\)", sql):
            found.setdefault(table, set()).update(c.strip() for c in columns.split(","))
    return found


@pytest.mark.parametrize(
    "graph", ["instant", "confirm_decline", "instant_payment", "group_owner", "group_customer"]
)
async def test_the_fast_path_names_every_column_that_needs_it(
    api: Api, engine: AsyncEngine, graph: str
) -> None:
    resource = await api.resource()
    client = await api.client()
    body: dict[str, Any] = {"graph": graph, "client_id": client["client_id"]}
    if graph == "group_customer":
        owner = await api.book(
            graph="group_owner",
            resource_id=resource["resource_id"],
            start_time=START,
            end_time=END,
            max_seats=3,
        )
        body["owner_booking_id"] = owner["booking_id"]
    else:
        body |= {"resource_id": resource["resource_id"], "start_time": START, "end_time": END}
        if graph == "group_owner":
            body["max_seats"] = 3
    async with database_calls(engine) as calls:
        await api.book(**body)
    written = inserted_columns(calls)
    expected = {"bookings", "booking_transitions", "events", "booking_tokens"}  # a client: a token
    if graph != "group_customer":  # a seat holds no time of its own
        expected.add("booking_holds")
    assert set(written) == expected
    for name, columns in written.items():
        table = Base.metadata.tables[name]
        missing = must_be_given(table) - columns
        assert not missing, f"a create leaves {name}.{sorted(missing)} to chance"
