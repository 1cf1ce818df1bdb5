"""Bad days: a worker on a machine whose clock runs an hour ahead (docs/operations.md, "Bad days").

The worker decides when a payment hold has timed out. Before, it took the time from its own
machine: started with a clock an hour ahead, it timed out at once a hold the API had given 30
minutes (the customer lost the slot and was told so), and its heartbeat, an hour in the future,
would keep `/readyz` green for an hour after it stopped. Now a worker keeps the database's time
(`slotgraph/dbclock.py`): it measures its offset from PostgreSQL's clock and says it in a warning.

The machine's clock is moved for the worker's process only, as its own clock would be: every
`datetime.now()` in it answers an hour later (the process starts with `datetime.datetime`
replaced before anything imports it). PostgreSQL only: with SQLite every process that opens the
file runs on its machine and shares its clock, so there is no other clock to keep.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import create_postgres_database, drop_postgres_database
from tests.system.conftest import (
    SECRET,
    Server,
    free_port,
    start_server,
    start_worker,
    stop_server,
)
from tests.system.test_concurrency import database_says

pytestmark = pytest.mark.system

AHEAD = """
import datetime, sys
class _Ahead(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return super().now(tz) + datetime.timedelta(hours=1)
datetime.datetime = _Ahead
from slotgraph.cli import main
sys.argv = ["slotgraph", "worker"]
main()
"""


def worker_an_hour_ahead(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SLOTGRAPH_DATABASE_URL": database_url, "SLOTGRAPH_LOG_LEVEL": "info"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", AHEAD], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def payment_hold(http: httpx.AsyncClient, server: Server) -> httpx.Response:
    """A booking held for 30 minutes until it is paid, on a new resource."""
    r = await http.post(
        f"{server.url}/v1/resources",
        headers=server.headers(),
        json={"name": "Room", "timezone": "UTC"},
    )
    hold = await http.post(
        f"{server.url}/v1/bookings",
        headers=server.headers(),
        json={
            "graph": "instant_payment",
            "payment_timeout": "PT30M",
            "resource_id": r.json()["resource_id"],
            "start_time": "2031-01-02T10:00:00Z",
            "end_time": "2031-01-02T11:00:00Z",
            "customer": {"name": "Ann", "email": "ann@example.com"},
        },
    )
    assert hold.status_code == 201, hold.text
    return hold


async def test_a_worker_an_hour_ahead_times_out_no_hold_early(tmp_path: Path) -> None:
    url = await create_postgres_database("slotgraph_baddays")
    server: Server | None = None
    worker = None
    try:
        server = await start_server(url, "postgresql", tmp_path / "server.log", "--no-worker")
        async with httpx.AsyncClient(timeout=30) as http:
            hold = await payment_hold(http, server)
            assert hold.json()["status"] == "tentative"

            worker = worker_an_hour_ahead(url, tmp_path / "worker.log")
            # Its first heartbeat comes after its first round of timers (worker_steps.py).
            for _ in range(600):
                beats = await database_says(
                    server, "SELECT beat_at - clock_timestamp() FROM worker_heartbeats"
                )
                if beats:
                    break
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                await asyncio.sleep(0.1)
            assert beats, "no heartbeat"
            now = await http.get(
                f"{server.url}/v1/bookings/{hold.json()['booking_id']}", headers=server.headers()
            )
            assert now.json()["status"] == "tentative", now.json()  # still 30 minutes to pay
            assert abs(beats[0][0]) < timedelta(minutes=1), beats  # the database's time
        log = (tmp_path / "worker.log").read_text()
        assert "this machine's clock is +3600" in log, log
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        if server is not None:
            stop_server(server)
        await drop_postgres_database(url)


OFF = """
import datetime, sys
class _Off(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return super().now(tz) + datetime.timedelta(hours={hours})
datetime.datetime = _Off
from slotgraph.cli import main
sys.argv = ["slotgraph", "serve", "--port", "{port}", "--workers", "1", *{extra}]
main()
"""


async def serve_off(
    url: str,
    tmp_path: Path,
    *,
    hours: int,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """`serve` with its machine's clock `hours` off (OFF), answering /healthz."""
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", OFF.format(hours=hours, port=port, extra=extra or [])],
            env={
                **os.environ,
                "SLOTGRAPH_DATABASE_URL": url,
                "SLOTGRAPH_BOOTSTRAP_SECRET_KEY": SECRET,
                "SLOTGRAPH_LOG_LEVEL": "warning",
                **(env or {}),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", url, "postgresql", process, log)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(900):  # up to 90 s
                assert process.poll() is None, log.read_text()
                try:
                    if (await http.get(f"{server.url}/healthz")).status_code == 200:
                        return server
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"serve did not answer /healthz in 90 s: {log.read_text()}")
    except BaseException:
        stop_server(server)
        raise


@pytest.mark.parametrize("hours", [-1, 1], ids=["behind", "ahead"])
async def test_a_lone_serve_with_its_clock_an_hour_off_keeps_holds_and_readyz_right(
    tmp_path: Path, hours: int
) -> None:
    # One `serve` (its worker in-process), its machine's clock an hour off the database's: its
    # requests and its worker read one clock, the database's. When only its worker was on the
    # database's time, every hold was unpaid at once (behind: the deadline, its clock plus 30
    # minutes, was half an hour past by the database's) and /readyz 503 for good (ahead: each
    # heartbeat an hour old); with both on its own clock, those were right but its deadlines
    # disagreed with every `slotgraph worker`.
    url = await create_postgres_database("slotgraph_baddays")
    server = await serve_off(
        url, tmp_path, hours=hours, env={"SLOTGRAPH_WORKER_TIMER_SECONDS": "0.5"}
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            hold = await payment_hold(http, server)
            # A whole round of timers after the hold was made: each round's heartbeat is written
            # after its timers, so the second heartbeat from now ends a round begun after it.
            beats = [await database_says(server, "SELECT max(beat_at) FROM worker_heartbeats")]
            for _ in range(600):
                beat = await database_says(server, "SELECT max(beat_at) FROM worker_heartbeats")
                if beat[0][0] is not None and beat != beats[-1]:
                    beats.append(beat)
                if len(beats) == 3:
                    break
                await asyncio.sleep(0.1)
            assert len(beats) == 3, "no whole round of timers"
            now = await http.get(
                f"{server.url}/v1/bookings/{hold.json()['booking_id']}", headers=server.headers()
            )
            assert now.json()["status"] == "tentative", now.json()  # still 30 minutes to pay
            ready = await http.get(f"{server.url}/readyz")
            assert ready.status_code == 200, ready.text
            # The deadline it wrote is 30 minutes on the database's clock, the one every
            # `slotgraph worker` keeps: on its own clock it was 30 minutes past (behind), or 90
            # to come (ahead), and a worker beside it timed the hold out at once (ADR 0019).
            left = await database_says(
                server,
                "SELECT payment_due_at - clock_timestamp() FROM bookings WHERE id = :id",
                id=uuid.UUID(hold.json()["booking_id"]),
            )
            assert timedelta(minutes=29) < left[0][0] <= timedelta(minutes=30), left
    finally:
        stop_server(server)
        await drop_postgres_database(url)


async def test_an_api_server_an_hour_behind_writes_deadlines_every_worker_agrees_with(
    tmp_path: Path,
) -> None:
    # Production's shape: `serve --no-worker` on a machine an hour behind, and a `slotgraph
    # worker` on a right one. Before ADR 0019 the server wrote a 30-minute hold's deadline on
    # its own clock, half an hour past by the worker's (the database's), and the worker timed
    # it out in its first round; now the server keeps the database's time too.
    url = await create_postgres_database("slotgraph_baddays")
    server = await serve_off(url, tmp_path, hours=-1, extra=["--no-worker"])
    worker = None
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            hold = await payment_hold(http, server)
            worker = start_worker(
                url, tmp_path / "worker.log", {"SLOTGRAPH_WORKER_TIMER_SECONDS": "0.5"}
            )
            beats: list[object] = []
            for _ in range(600):  # two heartbeats: a whole round of timers after the hold
                beat = await database_says(server, "SELECT max(beat_at) FROM worker_heartbeats")
                if beat[0][0] is not None and beat[0][0] not in beats:
                    beats.append(beat[0][0])
                if len(beats) == 2:
                    break
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                await asyncio.sleep(0.1)
            assert len(beats) == 2, "no whole round of timers"
            status = await database_says(
                server,
                "SELECT status FROM bookings WHERE id = :id",
                id=uuid.UUID(hold.json()["booking_id"]),
            )
            assert status[0][0] == "tentative", status  # still 30 minutes to pay
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        stop_server(server)
        await drop_postgres_database(url)
