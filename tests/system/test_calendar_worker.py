"""A `slotgraph worker` process killed with kill -9 in the middle of a CalDAV pull: the next
worker finishes it; nothing is lost and nothing is written twice. Real Radicale, both backends."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.radicale import PASSWORD, USER, running_radicale
from tests.system.conftest import (
    Server,
    resource_with_calendar,
    start_server,
    start_worker,
    stop_server,
)
from tests.system.test_concurrency import database_says

pytestmark = pytest.mark.system

EVENTS = 400
# Within the pull's horizon of the worker's real clock (a year ahead).
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
ENV = {
    "SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "SLOTGRAPH_WORKER_LEASE_SECONDS": "3",
    # a sync's lease is this + the lease above: the second worker takes over after 23 s
    "SLOTGRAPH_CALENDAR_SYNC_SECONDS": "20",
    "SLOTGRAPH_WORKER_TIMER_SECONDS": "0.2",
    "SLOTGRAPH_ENCRYPTION_KEY": Fernet.generate_key().decode(),
}


def calendar_text() -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN"]
    for i in range(EVENTS):
        start = START + timedelta(hours=i)
        lines += [
            "BEGIN:VEVENT",
            f"UID:private-{i}",
            "DTSTAMP:20320101T000000Z",
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
            f"DTEND:{start + timedelta(minutes=30):%Y%m%dT%H%M%SZ}",
            "END:VEVENT",
        ]
    return "\r\n".join([*lines, "END:VCALENDAR", ""])


async def until(server: Server, sql: str, seconds: float) -> list[Any]:
    """Poll the database until `sql` returns a row whose first column is not null."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = await database_says(server, sql)
        if rows and rows[0][0] is not None:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {sql}")


async def test_a_worker_killed_mid_pull_loses_and_duplicates_nothing(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    backend, url = fresh_database
    (tmp_path / "dav").mkdir()
    with running_radicale(tmp_path / "dav") as dav:
        async with httpx.AsyncClient(timeout=120) as http:
            calendar_url = await dav.put_calendar(http, "busy", calendar_text())
            server = await start_server(url, backend, tmp_path / "api.log", "--no-worker", env=ENV)
            try:
                resource = await resource_with_calendar(http, server, calendar_url, USER, PASSWORD)
                first = start_worker(url, tmp_path / "worker1.log", ENV)
                leased = "SELECT locked_by, last_success_at FROM calendar_connections"
                (row,) = await until(server, leased, 120)
                first.kill()  # SIGKILL, mid-sync: the lease is taken, nothing applied yet
                first.wait()
                assert row[1] is None
                blocks = (
                    "SELECT calendar_href, start_time, end_time FROM resource_blocks "
                    "WHERE deleted_at IS NULL"
                )
                assert await database_says(server, blocks) == []
                second = start_worker(url, tmp_path / "worker2.log", ENV)
                try:
                    await until(server, "SELECT last_success_at FROM calendar_connections", 180)
                finally:
                    second.terminate()
                    second.wait(timeout=30)
                rows = await database_says(server, blocks)
                assert len(rows) == EVENTS
                assert len(set(rows)) == EVENTS  # no object's busy time written twice
                state = await http.get(
                    f"{server.url}/v1/resources/{resource}/calendar", headers=server.headers()
                )
                assert state.json()["counts"]["pulled_blocks"] == EVENTS
                assert state.json()["last_error"] is None
            finally:
                stop_server(server)
