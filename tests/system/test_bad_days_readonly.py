"""Bad days: a database that serves reads but refuses writes, under a real `slotgraph worker`
(docs/operations.md, "Bad days").

A full disk, a read-only file, a standby after a failover: the worker's writing steps fail
while its reading ones pass. Before, each pass logged "the database is back" and the next failure
"database unavailable; retrying" again: with SQLite's file read-only, 340 lines in 40 s; on
PostgreSQL (`default_transaction_read_only`) a pair every round of timers. Now the outage is said
once (again each minute while it lasts), and its end once, when no step has failed for 10 s; by
the worker's calendar sync too, in lines of its own (worker_outages.py, one rule).

PostgreSQL only: SQLite's ways to refuse writes and serve reads need root (a full or read-only
file system) or wait 30 s per refusal (another process's write lock); the rule is the worker's
own, the same for both.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import drop_postgres_database, postgres_url
from tests.system.conftest import (
    WORKER_SAYS,
    free_port,
    migrated_postgres_database,
    start_worker_said_started,
    worker_said,
)

pytestmark = pytest.mark.system

UNAVAILABLE = "the database takes no writes: read-only or full"
BACK = "the database is back"


def sync_said(log: Path, line: str) -> int:
    """How many of the worker's calendar sync lines (logger `slotgraph.calendars`) say `line`."""
    return sum(
        line in entry and "calendar sync: " in entry
        for entry in log.read_text().splitlines()
        if "slotgraph.calendars" in entry
    )


async def set_read_only(url: str, read_only: bool) -> None:
    """Every new session of the database is read-only (or not), and the old ones are ended."""
    name = make_url(url).database
    admin = await asyncpg.connect(postgres_url())
    try:
        await admin.execute(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = '
            + ("on" if read_only else "off")
        )
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
    finally:
        await admin.close()


async def worker_cycles(http: httpx.AsyncClient, metrics: str) -> int:
    """How many cycles the worker has looked for work (its /metrics; a failed one counts too)."""
    r = await http.get(metrics)
    for line in r.text.splitlines():
        if line.startswith("slotgraph_worker_loop_duration_seconds_count "):
            return int(float(line.split()[1]))
    raise AssertionError(r.text)


async def test_a_read_only_database_is_said_once_and_its_end_once(tmp_path: Path) -> None:
    url = await migrated_postgres_database(tmp_path)
    log = tmp_path / "worker.log"
    worker = None
    try:
        env = {
            **WORKER_SAYS,
            "SLOTGRAPH_WORKER_TIMER_SECONDS": "0.5",  # a round of timers (reads too) twice a second
            "SLOTGRAPH_WORKER_METRICS_PORT": str(port := free_port()),
        }
        worker = await start_worker_said_started(url, log, env)
        deadline = time.monotonic() + 90

        await set_read_only(url, True)
        while worker_said(log, UNAVAILABLE) == 0:
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        # Ten rounds of timers, every one refused its writes (before, each said "back" and then
        # "unavailable" again). Counted, not timed: the worker looks at least every 0.2 s
        # (worker_poll_seconds) and runs the timers when 0.5 s have passed, so at least once in
        # any three looks: 30 looks are at least ten rounds, however slow the machine.
        async with httpx.AsyncClient(timeout=30) as http:
            metrics = f"http://127.0.0.1:{port}/metrics"
            start = await worker_cycles(http, metrics)
            while await worker_cycles(http, metrics) < start + 30:
                assert time.monotonic() < deadline + 60, log.read_text()
                await asyncio.sleep(0.2)
        assert (worker_said(log, UNAVAILABLE), worker_said(log, BACK)) == (1, 0), log.read_text()
        assert (sync_said(log, UNAVAILABLE), sync_said(log, BACK)) == (1, 0), log.read_text()

        await set_read_only(url, False)
        while worker_said(log, BACK) == 0 or sync_said(log, BACK) == 0:
            assert time.monotonic() < deadline + 30, log.read_text()
            await asyncio.sleep(0.2)
        assert (worker_said(log, UNAVAILABLE), worker_said(log, BACK)) == (1, 1), log.read_text()
        # The calendar sync says it by the same rule, in lines of its own (before: once per
        # outage, and never its end).
        assert (sync_said(log, UNAVAILABLE), sync_said(log, BACK)) == (1, 1), log.read_text()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        await set_read_only(url, False)
        await drop_postgres_database(url)
