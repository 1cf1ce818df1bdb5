"""Bad days: another PostgreSQL client holds a lock for long, or a statement outlasts the
operator's statement_timeout (docs/operations.md, "Bad days").

A psql session left in a transaction after `SELECT ... FOR UPDATE` on a resource (or a manual
`LOCK TABLE`, a migration run by hand): before `SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS`, every
request on that resource waited as long as the lock was held, each on a pooled connection, and
once they held every connection of the pool, requests that touch nothing locked (another
resource, a list) waited for the pool and answered 503 too: one forgotten session took the whole
API down. Now a request that waits past the lock timeout is `503 database_busy` with
`Retry-After`, and frees its connection.

PostgreSQL only: SQLite has one write lock for the whole file, and another process holding it is
already 503 `database_busy` after the busy timeout (tests/api/test_database_refuses_work.py).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import create_postgres_database, drop_postgres_database, postgres_url
from tests.system.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.system

# One server process (start_server's default: with two, which of them accepts a connection is
# the kernel's choice) with two connections, and no worker to take one: two requests on the
# locked resource hold every connection while they wait.
SERVE = ("--no-worker",)
ENV = {
    "SLOTGRAPH_DB_POOL_SIZE": "2",
    "SLOTGRAPH_DB_MAX_OVERFLOW": "0",
    "SLOTGRAPH_DB_POOL_TIMEOUT_SECONDS": "15",
    "SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS": "1",
}


async def resource(http: httpx.AsyncClient, server: Server, name: str) -> str:
    r = await http.post(
        f"{server.url}/v1/resources",
        headers=server.headers(),
        json={"name": name, "timezone": "UTC"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["resource_id"])


async def waiting_on_a_lock(url: str, count: str) -> None:
    """Until `count` of the database's sessions wait for a lock (asked on a connection of its
    own: a transaction sees pg_stat_activity as it was at its first look)."""
    watcher = await asyncpg.connect(url)
    try:
        for _ in range(600):
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= int(count):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{waiting} sessions wait for the lock, not {count}")
    finally:
        await watcher.close()


def booking(resource_id: str, hour: int, customer: str = "ann") -> dict[str, object]:
    return {
        "resource_id": resource_id,
        "start_time": f"2031-01-02T{hour:02d}:00:00Z",
        "end_time": f"2031-01-02T{hour:02d}:30:00Z",
        "customer": {"name": customer.title(), "email": f"{customer}@example.com"},
    }


async def test_a_lock_held_by_another_client_is_503_busy_and_the_rest_of_the_api_serves(
    tmp_path: Path,
) -> None:
    url = await create_postgres_database("slotgraph_baddays")
    server: Server | None = None
    try:
        server = await start_server(url, "postgresql", tmp_path / "server.log", *SERVE, env=ENV)
        async with httpx.AsyncClient(timeout=60) as http:
            locked = await resource(http, server, "Locked")
            other = await resource(http, server, "Other")
            holder = await asyncpg.connect(url)
            try:
                await holder.execute("BEGIN")
                await holder.execute(
                    "SELECT 1 FROM resources WHERE id = $1 FOR UPDATE", uuid.UUID(locked)
                )
                waiting = [
                    asyncio.create_task(
                        http.post(
                            f"{server.url}/v1/bookings",
                            headers=server.headers(),
                            json=booking(locked, hour),
                        )
                    )
                    for hour in range(8)
                ]
                await waiting_on_a_lock(url, ENV["SLOTGRAPH_DB_POOL_SIZE"])  # the whole pool
                beside = await asyncio.gather(
                    *(
                        http.post(
                            f"{server.url}/v1/bookings",
                            headers=server.headers(),
                            # Another customer: a new customer's row is made before the
                            # resource is locked, so Ann's other bookings wait for the waiting
                            # one's uncommitted row (and met the lock timeout under a loaded
                            # CI's timing, 2026-12-01): the rest of the API is other customers.
                            json=booking(other, hour, "bo"),
                        )
                        for hour in range(4)
                    ),
                    http.get(f"{server.url}/v1/resources", headers=server.headers()),
                )
                refused = await asyncio.wait_for(asyncio.gather(*waiting), 30)
            finally:
                await holder.close()  # ends its transaction: the lock is let go

            assert [r.status_code for r in beside] == [201, 201, 201, 201, 200], [
                r.text for r in beside
            ]
            for r in refused:
                assert r.status_code == 503, r.text
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["code"] == "database_busy"
                assert int(r.headers["retry-after"]) > 0

            # the lock let go, the same bookings go through
            again = await http.post(
                f"{server.url}/v1/bookings", headers=server.headers(), json=booking(locked, 0)
            )
            assert again.status_code == 201, again.text
            listed = await http.get(
                f"{server.url}/v1/bookings",
                headers=server.headers(),
                params={"resource_id": locked},
            )
            assert len(listed.json()["data"]) == 1  # nothing of the refused ones was written
        assert "Traceback" not in server.log.read_text()
    finally:
        if server is not None:
            stop_server(server)
        await drop_postgres_database(url)


async def test_a_statement_past_the_operators_statement_timeout_is_503_busy(
    tmp_path: Path,
) -> None:
    """An operator's `statement_timeout` on the database (a common production guard) cancels a
    statement that runs too long (57014). Before, that was a 500 internal_error with a traceback
    in the log; now it is 503 database_busy with Retry-After, as the lock timeout is. Made
    certain with a statement that waits on a held lock, with slotgraph's own lock timeout off
    (3 s: the migrations at start run under it too, each in milliseconds)."""
    url = await create_postgres_database("slotgraph_baddays")
    server: Server | None = None
    admin = await asyncpg.connect(postgres_url())
    try:
        name = make_url(url).database
        await admin.execute(f'ALTER DATABASE "{name}" SET statement_timeout = 3000')
        env = {"SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS": "0"}
        server = await start_server(url, "postgresql", tmp_path / "server.log", env=env)
        async with httpx.AsyncClient(timeout=60) as http:
            locked = await resource(http, server, "Locked")
            holder = await asyncpg.connect(url)
            try:
                await holder.execute("BEGIN")
                await holder.execute(
                    "SELECT 1 FROM resources WHERE id = $1 FOR UPDATE", uuid.UUID(locked)
                )
                r = await http.post(
                    f"{server.url}/v1/bookings", headers=server.headers(), json=booking(locked, 1)
                )
            finally:
                await holder.close()
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "database_busy"
            assert int(r.headers["retry-after"]) > 0
        log = server.log.read_text()
        assert "statement timeout" in log, log
        assert "Traceback" not in log, log
    finally:
        if server is not None:
            stop_server(server)
        await admin.close()
        await drop_postgres_database(url)
