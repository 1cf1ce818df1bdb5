"""A database that cannot take the work now (full, read-only, its write lock held elsewhere)
answers 503 problem+json with `Retry-After`, writes nothing, and the next request after it is
mended succeeds without a restart (docs/operations.md, "When the database cannot store").

Each failure is made for real on a database of the test's own, never mocked:
- SQLite, full: the file is compacted and the app's connection may not grow it (`PRAGMA
  max_page_count`, SQLite's own SQLITE_FULL, as on a full disk); the create's writes, which run as
  one batch on the driver's thread (driver_sql.run_sqlite, ADR 0008), are refused.
- PostgreSQL, read-only (as a standby is after a failover): `default_transaction_read_only` on the
  database; the create's INSERT is refused with SQLSTATE 25006.
- SQLite, busy: another connection holds the write lock past the app's busy timeout (a create,
  and the worker's record of successes, a whole transaction in one call on the driver's thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import create_engine, session_factory
from slotgraph.db.migrate import migrate
from slotgraph.domain.deliveries import Outcome
from slotgraph.errors import DatabaseBusy
from slotgraph.services import deliveries, fanout
from tests.api.conftest import Api, Clock, book_days, make_api
from tests.conftest import (
    BACKENDS,
    TABLES,
    create_postgres_database,
    drop_postgres_database,
    postgres_url,
)

# Details long enough that the booking's row needs pages of its own (a page is 4 KB).
LONG_DETAILS = "x" * 9000


@dataclass
class Fresh:
    engine: AsyncEngine
    url: str
    api: Api

    @property
    def backend(self) -> str:
        return self.engine.dialect.name


@pytest.fixture(params=BACKENDS)
async def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fresh]:
    """A database of this test's own (the test makes it refuse work), migrated, with an app."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'slotgraph.db'}"
    else:
        url = await create_postgres_database("slotgraph_refuses")
    engine = create_engine(url)
    try:
        await migrate(engine)
        clock = Clock()
        http, created = await make_api(engine, clock)
        async with http:
            api = Api(http, created.secret_key, created.public_key, clock, request.param)
            yield Fresh(engine, url, api)
    finally:
        await engine.dispose()
        if request.param == "postgresql":
            await drop_postgres_database(url)


async def rows(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t: (await conn.exec_driver_sql(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in TABLES
        }


async def booking_body(api: Api) -> dict[str, Any]:
    res = await api.resource()
    client = await api.client()
    return {
        "resource_id": res["resource_id"],
        "client_id": client["client_id"],
        "start_time": "2024-05-18T10:00:00Z",
        "end_time": "2024-05-18T11:00:00Z",
        "details": LONG_DETAILS,
    }


async def refuse_writes(fresh: Fresh) -> None:
    if fresh.backend == "sqlite":
        path = make_url(fresh.url).database
        assert path is not None
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            raw.execute("VACUUM")  # no free pages left in the file
        finally:
            raw.close()
        # The engine has one connection (ADR 0008): the app's. It may not grow the file.
        async with fresh.engine.connect() as conn:
            pages = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()
            await conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
    else:
        await _alter_database(fresh, "SET default_transaction_read_only = on")


async def allow_writes(fresh: Fresh) -> None:
    if fresh.backend == "sqlite":
        async with fresh.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA max_page_count = 1073741823")
    else:
        await _alter_database(fresh, "RESET default_transaction_read_only")


async def _alter_database(fresh: Fresh, change: str) -> None:
    """As the administrator would (a read-only database cannot make itself writable)."""
    admin = await asyncpg.connect(postgres_url())
    try:
        await admin.execute(f'ALTER DATABASE "{make_url(fresh.url).database}" {change}')
    finally:
        await admin.close()
    await fresh.engine.dispose()  # the setting applies to connections made from now on


def assert_503(r: Any, code: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert (problem["status"], problem["code"]) == (503, code), problem
    assert problem["type"] == f"urn:slotgraph:problem:{code}"
    assert int(r.headers["retry-after"]) >= 1


async def test_a_create_the_database_cannot_store_is_503_and_writes_nothing(fresh: Fresh) -> None:
    api = fresh.api
    body = await booking_body(api)
    before = await rows(fresh.engine)
    await refuse_writes(fresh)

    for _ in range(2):  # and again: the connection is still usable after the refusal
        r = await api.post("/v1/bookings", body)
        assert_503(r, "database_unavailable")
    assert await rows(fresh.engine) == before
    r = await api.get("/v1/bookings")
    assert (r.status_code, r.json()["data"]) == (200, [])

    await allow_writes(fresh)
    made = await api.book(**body)
    assert made["details"] == LONG_DETAILS
    assert [b["booking_id"] for b in (await api.get("/v1/bookings")).json()["data"]] == [
        made["booking_id"]
    ]


@asynccontextmanager
async def sqlite_write_lock_held(fresh: Fresh) -> AsyncIterator[None]:
    """For the block, another process's transaction holds SQLite's write lock; the app's one
    connection waits 0.2 s for it, not 30."""
    async with fresh.engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA busy_timeout = 200")
    path = make_url(fresh.url).database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.parametrize("fresh", ["sqlite"], indirect=True)
async def test_a_create_while_another_process_holds_sqlites_write_lock_is_503_busy(
    fresh: Fresh,
) -> None:
    """SQLite only: PostgreSQL has no database-wide write lock (a row lock held past
    `lock_timeout` is 503 database_busy too: tests/system/test_bad_days_locks.py)."""
    api = fresh.api
    body = await booking_body(api)
    before = await rows(fresh.engine)
    async with sqlite_write_lock_held(fresh):
        r = await api.post("/v1/bookings", body)
        assert_503(r, "database_busy")
        assert r.headers["retry-after"] == "1"
    assert await rows(fresh.engine) == before
    await api.book(**body)


@pytest.mark.parametrize("fresh", ["sqlite"], indirect=True)
async def test_a_record_while_another_process_holds_sqlites_write_lock_is_busy_and_kept(
    fresh: Fresh,
) -> None:
    """The worker's record of successes, one call on SQLite's thread from BEGIN IMMEDIATE to
    COMMIT (services/sqlite_deliveries.py), is refused as the engine refuses (DatabaseBusy)
    and writes nothing: the deliveries stay leased, no attempt is logged, and the same record
    goes through once the lock is let go."""
    api = fresh.api
    r = await api.post("/v1/webhooks", {"url": "https://example.com/hook"})
    assert r.status_code == 201, r.text
    await book_days(api, 2)
    now = api.clock.now
    sessions = session_factory(fresh.engine)
    async with sessions() as session:
        lease = fanout.Lease("w", now + timedelta(minutes=1), room=10)
        claims = (await fanout.dispatch(session, now=now, lease=lease)).claims
    assert len(claims) == 2
    ok = Outcome(status_code=200, error=None, duration_ms=5, response_body=None)
    results = [(c, ok) for c in claims]
    before = await rows(fresh.engine)
    async with sqlite_write_lock_held(fresh), sessions() as session:
        with pytest.raises(DatabaseBusy):
            await deliveries.finish(
                session, results=results, now=now, worker_id="w", jitter=lambda: 0.0
            )
    assert await rows(fresh.engine) == before
    async with fresh.engine.connect() as conn:
        leased = await conn.exec_driver_sql(
            "SELECT count(*) FROM deliveries WHERE status = 'pending' AND locked_by = 'w'"
        )
        assert leased.scalar_one() == 2
    async with sessions() as session:
        lost = await deliveries.finish(
            session, results=results, now=now, worker_id="w", jitter=lambda: 0.0
        )
    assert lost == []
    after = await rows(fresh.engine)
    assert after["delivery_attempts"] == before["delivery_attempts"] + 2


@pytest.mark.parametrize("fresh", ["sqlite"], indirect=True)
async def test_a_fan_out_while_another_process_holds_sqlites_write_lock_is_busy_and_writes_nothing(
    fresh: Fresh,
) -> None:
    """The worker's fan-out, one call on SQLite's thread from BEGIN IMMEDIATE to COMMIT
    (services/sqlite_deliveries.py `dispatch`), is refused as the engine refuses (DatabaseBusy)
    and writes nothing; the same fan-out goes through once the lock is let go."""
    api = fresh.api
    r = await api.post("/v1/webhooks", {"url": "https://example.com/hook"})
    assert r.status_code == 201, r.text
    await book_days(api, 2)
    now = api.clock.now
    sessions = session_factory(fresh.engine)
    lease = fanout.Lease("w", now + timedelta(minutes=1), room=10)
    before = await rows(fresh.engine)
    async with sqlite_write_lock_held(fresh), sessions() as session:
        with pytest.raises(DatabaseBusy):
            await fanout.dispatch(session, now=now, lease=lease)
    assert await rows(fresh.engine) == before
    async with sessions() as session:
        fanned = await fanout.dispatch(session, now=now, lease=lease)
    assert (fanned.events, len(fanned.claims)) == (2, 2)
    assert (await rows(fresh.engine))["deliveries"] == before["deliveries"] + 2
