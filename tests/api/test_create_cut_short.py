"""A create cut short: its database connection lost, or the request cancelled, in the middle.

On PostgreSQL the plain create runs its read and its one write straight on a pooled asyncpg
connection without a transaction (db/driver_sql.py `autocommit`, ADR 0005), outside SQLAlchemy's
own clean-up. Whatever cuts it short, what it leaves must be what a transaction would: nothing
written, or all of it (the write is one statement); the connection back in the pool or gone
from it, never checked out for ever nor handed out again in a transaction; and the next create
served. A lost connection is 503 database_unavailable (the database is at fault, not the
request). A cancelled request (the server shutting down with it in flight: uvicorn cancels what
is left after SLOTGRAPH_SHUTDOWN_SECONDS; in this test the client's task) answers nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.db.engine import create_engine
from tests.api.conftest import TEST_SETTINGS, Api
from tests.api.driver_calls import asyncpg_statements, terminate_backend
from tests.api.test_safety_oserror import Relay, why_not_tcp
from tests.conftest import TABLES

Point = str  # "read" or "write": the create's statement a test cuts in front of


def _point(query: str) -> Point:
    return "read" if query.lstrip().upper().startswith("SELECT") else "write"


async def _rows(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t: (await conn.exec_driver_sql(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in TABLES
        }


async def _body(api: Api) -> dict[str, Any]:
    resource, client = await api.resource(), await api.client()
    return {
        "resource_id": resource["resource_id"],
        "client_id": client["client_id"],
        "start_time": "2024-05-18T10:00:00Z",
        "end_time": "2024-05-18T11:00:00Z",
    }


@asynccontextmanager
async def _before(
    engine: AsyncEngine,
    at: Point,
    then: Callable[[int], Awaitable[None]],
    raising: OSError | None = None,
    lost_first: bool = False,
) -> AsyncIterator[list[int]]:
    """For the block, `then(pid)` runs just before the create's `at` statement is sent, once
    (pid: the backend of the connection it is sent on), then `raising` is raised in its place
    (after asyncpg has seen its connection end, `lost_first`); the pids of the connections
    checked out are listed."""
    pids: list[int] = []
    drivers: list[Any] = []
    done: list[bool] = []

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        drivers.append(dbapi_conn.driver_connection)
        pids.append(drivers[-1].get_server_pid())

    async def on_statement(query: str) -> None:
        if _point(query) == at and not done:
            done.append(True)
            await then(pids[-1])
            if raising is not None:
                if lost_first:  # asyncpg has seen its connection end
                    for _ in range(3000):
                        if drivers[-1].is_closed():
                            break
                        await asyncio.sleep(0.01)
                raise raising

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    try:
        with asyncpg_statements(engine, on_statement):
            yield pids
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checkout)


def _postgresql(api: Api) -> None:
    if api.backend != "postgresql":
        pytest.skip("SQLite's create runs in the session's transaction: no connection to lose")


@asynccontextmanager
async def _locker(url: str) -> AsyncIterator[asyncpg.Connection]:
    """Another connection, to hold a lock the create waits for; rolled back and closed after."""
    locker = await asyncpg.connect(url)
    try:
        yield locker
    finally:
        if locker.is_in_transaction():
            await locker.execute("ROLLBACK")
        await locker.close()


async def _cancelled(task: asyncio.Task[Any]) -> None:
    """Cancels the request's task, as uvicorn does at shutdown, and sees it end cancelled."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _url(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize("at", ["read", "write"])
@pytest.mark.parametrize("lost", ["terminated", "reset"])
async def test_a_create_whose_connection_is_lost_is_503_writes_nothing_and_leaves_the_pool(
    engine: AsyncEngine, api: Api, at: Point, lost: str
) -> None:
    """The backend ended by pg_terminate_backend (an administrator, a failover), or the TCP
    connection reset under it (a relay between, as a NAT entry dropped or a proxy restarted),
    just before the create's read or its write."""
    _postgresql(api)
    if lost == "reset" and (reason := why_not_tcp(engine.url)) is not None:
        pytest.skip(reason)
    assert engine.url.host is not None
    relay = Relay(engine.url.host, engine.url.port or 5432)
    port = await relay.start()
    own = create_engine(_url(engine.url.set(port=port) if lost == "reset" else engine.url))
    app = create_app(TEST_SETTINGS, engine=own, clock=api.clock)
    auth = {"Authorization": f"Bearer {api.secret_key}"}

    async def lose(pid: int) -> None:
        if lost == "reset":
            relay.reset_open()
        else:
            await terminate_backend(_url(engine.url), pid)

    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", headers=auth
        ) as http:
            body = await _body(api)
            before = await _rows(engine)
            async with _before(own, at, lose) as pids:
                r = await http.post("/v1/bookings", json=body)
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "database_unavailable"
            assert await _rows(engine) == before
            assert own.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            async with _before(own, at, _nothing) as after:
                again = await http.post("/v1/bookings", json=body)
            assert again.status_code == 201, again.text
            assert pids[-1] not in after  # the lost connection left the pool
    finally:
        await own.dispose()
        assert relay.server is not None
        relay.server.close()


async def _nothing(_pid: int) -> None:
    return None


async def _waiting_on_a_lock(url: str, pid: int) -> None:
    """Returns once backend `pid` waits for a lock (looked at every 10 ms, for 30 s at most)."""
    conn = await asyncpg.connect(url)
    try:
        for _ in range(3000):
            event = await conn.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
            )
            if event == "Lock":
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"backend {pid} never waited for the lock")
    finally:
        await conn.close()


async def _gone(url: str, pid: int) -> None:
    """Returns once backend `pid` has ended (looked at every 10 ms, for 30 s at most)."""
    conn = await asyncpg.connect(url)
    try:
        for _ in range(3000):
            if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"backend {pid} still there")
    finally:
        await conn.close()


def _whole_or_nothing(before: dict[str, int], after: dict[str, int]) -> int:
    """How many bookings the cut-short create left (0 or 1), checking that every row a create
    writes came with it: the booking, what it holds, its history, its event."""
    made = after["bookings"] - before["bookings"]
    assert made in (0, 1), (before, after)
    for table in ("booking_holds", "booking_transitions", "events", "booking_tokens"):
        assert after[table] - before[table] == made, (table, before, after)
    return made


async def test_a_create_cancelled_while_its_write_waits_leaves_the_pool_and_a_whole_booking_or_none(
    engine: AsyncEngine, api: Api
) -> None:
    """The request's task cancelled (as uvicorn cancels what is still running at shutdown) while
    the create's one write waits in PostgreSQL for a lock that another transaction holds."""
    _postgresql(api)
    url = _url(engine.url)
    body = await _body(api)
    before = await _rows(engine)
    async with _locker(url) as locker:
        blocked: list[int] = []

        reached = asyncio.Event()

        async def block(pid: int) -> None:
            await locker.execute("BEGIN; LOCK TABLE bookings IN SHARE MODE")
            blocked.append(pid)
            reached.set()

        async with _before(engine, "write", block):
            task = asyncio.create_task(api.post("/v1/bookings", body))
            waiting = asyncio.create_task(reached.wait())
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            assert blocked, (await task).text
            await _waiting_on_a_lock(url, blocked[0])
            await _cancelled(task)
    await _gone(url, blocked[0])  # the cancelled connection is not kept
    pool: Any = engine.sync_engine.pool
    assert pool.checkedout() == 0
    made = _whole_or_nothing(before, await _rows(engine))
    again = await api.post("/v1/bookings", body)
    assert again.status_code == (409 if made else 201), again.text


@pytest.mark.parametrize("lost", [False, True], ids=["open", "lost"])
async def test_an_oserror_in_the_create_is_an_outage_only_when_its_connection_is_gone(
    engine: AsyncEngine, api: Api, lost: bool
) -> None:
    """An OSError in the create's block (driver_sql.autocommit) is the database's only when the
    connection has ended (503, and it leaves the pool); with the connection open it is the
    block's own, a fault: 500 internal_error, and the connection goes
    back to the pool (before, any OSError there was 503 database_unavailable and the connection
    thrown away: docs/security.md's rule for OSErrors)."""
    _postgresql(api)
    body = await _body(api)
    before = await _rows(engine)
    fault = ConnectionRefusedError(111, "Connection refused")

    async def then(pid: int) -> None:
        if lost:
            await terminate_backend(_url(engine.url), pid)

    fate: dict[str, list[int]] = {"checkin": [], "invalidate": [], "close": []}

    def seen(name: str) -> Callable[..., None]:
        def record(dbapi_conn: Any, *_: Any) -> None:
            if dbapi_conn is not None:
                fate[name].append(dbapi_conn.driver_connection.get_server_pid())

        return record

    pool: Any = engine.sync_engine.pool
    listeners = [(name, seen(name)) for name in fate]
    for name, fn in listeners:
        event.listen(pool, name, fn)
    try:
        async with _before(engine, "write", then, raising=fault, lost_first=lost) as pids:
            r = await api.post("/v1/bookings", body)
    finally:
        for name, fn in listeners:
            event.remove(pool, name, fn)
    assert await _rows(engine) == before
    assert pool.checkedout() == 0
    async with _before(engine, "write", _nothing) as after:
        again = await api.post("/v1/bookings", body)
    assert again.status_code == 201, again.text
    if lost:
        assert (r.status_code, r.json()["code"]) == (503, "database_unavailable"), r.text
        assert pids[-1] not in after
    else:
        assert (r.status_code, r.json()["code"]) == (500, "internal_error"), r.text
        # the same connection, back in the pool (which one the next checkout takes is the
        # pool's order, not this rule: asserting that failed once in CI)
        assert pids[-1] in fate["checkin"], fate
        assert pids[-1] not in fate["invalidate"] + fate["close"], fate


async def test_a_create_cancelled_while_it_waits_for_sqlites_write_lock_leaves_nothing(
    engine: AsyncEngine, api: Api
) -> None:
    """SQLite: the request's task cancelled while the create's BEGIN IMMEDIATE waits for the
    write lock another process holds. The task ends cancelled (before, the engine's error hook
    made the cancellation 503 database_unavailable, and the task answered), nothing is written,
    and the next create is served (the connection, dropped, is made again)."""
    if api.backend != "sqlite":
        pytest.skip("SQLite's write lock")
    body = await _body(api)
    before = await _rows(engine)
    async with engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
    begun = threading.Event()

    def traced(sql: str) -> None:
        if sql.startswith("BEGIN IMMEDIATE"):
            begun.set()

    path = engine.url.database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    raw._conn.set_trace_callback(traced)
    try:
        task = asyncio.create_task(api.post("/v1/bookings", body))
        assert await asyncio.to_thread(begun.wait, 30)
        await _cancelled(task)
    finally:
        other.execute("ROLLBACK")
        other.close()
        if raw._connection is not None:  # else closed: the cancelled statement's connection
            raw._conn.set_trace_callback(None)
    again = await api.post("/v1/bookings", body)
    assert again.status_code == 201, again.text
    assert _whole_or_nothing(before, await _rows(engine)) == 1  # the one created after
    pool: Any = engine.sync_engine.pool
    assert pool.checkedout() == 0


async def test_a_keyed_create_cancelled_while_it_waits_for_a_lock_ends_cancelled(
    engine: AsyncEngine, api: Api
) -> None:
    """PostgreSQL, through SQLAlchemy (a create with an Idempotency-Key runs in the transaction
    the middleware opens): the task cancelled while the write waits for a lock ends cancelled,
    the lock's wait goes with the connection, nothing is written (not the booking, not the
    key's answer), and the same key then creates. (It passed before the engine's hook let
    cancellations through too: on PostgreSQL the hook did not see this one; SQLite's test
    above is the one that fails without it.)"""
    _postgresql(api)
    url = _url(engine.url)
    body = await _body(api)
    before = await _rows(engine)
    async with _locker(url) as locker:
        await locker.execute("BEGIN; LOCK TABLE bookings IN SHARE MODE")
        headers = {"Authorization": f"Bearer {api.key}", "Idempotency-Key": "cut-short"}
        task = asyncio.create_task(api.http.post("/v1/bookings", json=body, headers=headers))
        waiting = None
        for _ in range(3000):  # looked at every 10 ms, for 30 s at most
            waiting = await locker.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if waiting is not None or task.done():
                break
            await asyncio.sleep(0.01)
        assert waiting is not None, (await task).text if task.done() else "never waited"
        await _cancelled(task)
    await _gone(url, waiting)
    pool: Any = engine.sync_engine.pool
    assert pool.checkedout() == 0
    assert await _rows(engine) == before
    again = await api.http.post("/v1/bookings", json=body, headers=headers)
    assert again.status_code == 201, again.text
