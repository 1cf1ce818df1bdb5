"""Bad days: another PostgreSQL client holds a lock on a booking that a timer wants to move, under
a real worker (docs/operations.md, "Bad days").

The worker's timers lock every due booking in one transaction, and its fan-out of new events
runs in the same loop. Before, one booking locked elsewhere (a psql session left in a
transaction, a slow request) stopped the timers behind it and every webhook of every app for
as long as the lock was held: none of 5 new events delivered in 90 s (with the lock timeout of
10 s, 69 s: each round's fan-out waited for it, and the deliveries it had leased waited out
their lease). Now the timers skip a booking another transaction holds (`FOR UPDATE SKIP
LOCKED`, as claims do) and move it in a later round.

PostgreSQL only: on SQLite a lock is the whole file's write lock, held by one transaction at a
time, and the worker waits for it as every writer does (`database_busy` past 30 s).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import create_postgres_database, drop_postgres_database
from tests.receiver import Receiver, running_receiver
from tests.system.conftest import (
    WORKER_SAYS,
    Server,
    migrated_postgres_database,
    start_server,
    start_worker_said_started,
    stop_server,
    subscribe,
    worker_said,
)
from tests.system.test_concurrency import database_says

pytestmark = pytest.mark.system

ENV = {
    "SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "SLOTGRAPH_WORKER_TIMER_SECONDS": "0.5",
    "SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS": "0",  # the worker must not wait at all, not wait 10 s
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def a_round_of_timers_after(url: str, moment: datetime) -> None:
    """Wait until a worker has begun a round of timers after `moment`: two heartbeats of one
    worker past it (each round's timers come before its beat; worker_steps.py `chores`). Bounded:
    a worker whose timers wait for the lock never beats again."""
    watcher = await asyncpg.connect(url)
    try:
        first: dict[str, datetime] = {}
        for _ in range(600):  # 60 s
            for worker_id, beat_at in await watcher.fetch(
                "SELECT worker_id, beat_at FROM worker_heartbeats"
            ):
                if beat_at > moment and first.setdefault(worker_id, beat_at) < beat_at:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"no worker began a round of timers after {moment}: {first}")
    finally:
        await watcher.close()


async def test_a_locked_booking_holds_up_no_timer_and_no_webhook(
    tmp_path: Path, receiver: Receiver
) -> None:
    url = await create_postgres_database("slotgraph_baddays")
    server: Server | None = None
    try:
        server = await start_server(url, "postgresql", tmp_path / "server.log", env=ENV)
        async with httpx.AsyncClient(timeout=30) as http:
            await subscribe(http, server, receiver.url)
            r = await http.post(
                f"{server.url}/v1/resources",
                headers=server.headers(),
                json={"name": "Room", "timezone": "UTC"},
            )
            room = r.json()["resource_id"]
            # A request nobody answers expires when it starts: in 5 s (locked before then).
            starts = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
            request = await http.post(
                f"{server.url}/v1/bookings",
                headers=server.headers(),
                json={
                    "graph": "confirm_decline",
                    "override_rules": True,
                    "resource_id": room,
                    "start_time": z(starts),
                    "end_time": z(starts + timedelta(minutes=30)),
                    "customer": {"name": "Ann", "email": "ann@example.com"},
                },
            )
            assert request.json()["status"] == "tentative", request.text
            request_id = uuid.UUID(request.json()["booking_id"])
            holder = await asyncpg.connect(url)
            try:
                await holder.execute("BEGIN")
                status = await holder.fetchval(
                    "SELECT status FROM bookings WHERE id = $1 FOR UPDATE", request_id
                )
                # Locked before any timer moved it (else the test would prove nothing).
                assert status == "tentative", status
                # Due from `starts` on. The timers run every 0.5 s, each round ending with the
                # worker's heartbeat: a round that began after a beat past `starts` has met the
                # booking due, and locked.
                await a_round_of_timers_after(url, starts)
                for day in (1, 2, 3):
                    r = await http.post(
                        f"{server.url}/v1/bookings",
                        headers=server.headers(),
                        json={
                            "resource_id": room,
                            "start_time": f"2031-03-0{day}T10:00:00Z",
                            "end_time": f"2031-03-0{day}T11:00:00Z",
                            "override_rules": True,
                            "customer": {"name": "Bo", "email": "bo@example.com"},
                        },
                    )
                    assert r.status_code == 201, r.text
                for _ in range(200):  # 20 s: the first attempt comes within a second
                    if len(receiver.events()) == 3:
                        break
                    await asyncio.sleep(0.1)
                assert len(receiver.events()) == 3, "webhooks held up behind the locked booking"
                # the lock held all along: the timers could not move it
                assert (
                    await holder.fetchval("SELECT status FROM bookings WHERE id = $1", request_id)
                    == "tentative"
                )
            finally:
                await holder.close()
            # Let go, the worker's timers expire it in a later round (read from the database:
            # a read through the API would apply the expiry itself).
            for _ in range(200):
                rows = await database_says(
                    server, "SELECT status FROM bookings WHERE id = :id", id=request_id
                )
                if rows[0][0] == "expired":
                    break
                await asyncio.sleep(0.1)
            assert rows[0][0] == "expired"
    finally:
        if server is not None:
            stop_server(server)
        await drop_postgres_database(url)


async def test_the_worker_says_which_outage_it_met(tmp_path: Path) -> None:
    """A psql session holding a lock the worker's heartbeat needs, under the worker's
    lock_timeout and then under the database's statement_timeout: each is said as what it is.
    Before, both were `database unavailable; retrying`, as a PostgreSQL that is down is, and
    the operator looked for an outage instead of the session."""
    url = await migrated_postgres_database(tmp_path)
    log = tmp_path / "worker.log"
    worker = None
    try:
        env = {
            **WORKER_SAYS,
            "SLOTGRAPH_WORKER_TIMER_SECONDS": "0.5",  # a heartbeat (a write) twice a second
            "SLOTGRAPH_DB_LOCK_TIMEOUT_SECONDS": "0.5",
        }
        worker = await start_worker_said_started(url, log, env)
        deadline = time.monotonic() + 90

        async def held_until_said(line: str) -> None:
            holder = await asyncpg.connect(url)
            try:
                async with holder.transaction():
                    await holder.execute("LOCK TABLE worker_heartbeats IN ACCESS EXCLUSIVE MODE")
                    while worker_said(log, line) == 0:
                        assert time.monotonic() < deadline, log.read_text()
                        await asyncio.sleep(0.1)
            finally:
                await holder.close()

        await held_until_said(
            "a lock wait past lock_timeout: another session holds a lock "
            "(canceling statement due to lock timeout); retrying"
        )
        name = make_url(url).database
        admin = await asyncpg.connect(url)
        try:  # new sessions (the worker's next connection) cancel a statement after 0.1 s
            await admin.execute(f'ALTER DATABASE "{name}" SET statement_timeout = 100')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()
        await held_until_said(
            "a statement timeout: statement_timeout or pg_cancel_backend "
            "(canceling statement due to statement timeout); retrying"
        )
        assert worker_said(log, "database unavailable") == 0, log.read_text()
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        await drop_postgres_database(url)
