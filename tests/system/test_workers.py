"""Workers as separate processes: every event delivered, none twice, even after a kill -9."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.receiver import Receiver, running_receiver
from tests.system.conftest import Server, start_server, start_worker, stop_server, subscribe
from tests.system.test_concurrency import database_says

pytestmark = pytest.mark.system

# The lease must outlast a claim's send and record on a loaded machine, or a live worker's claim
# is taken over and sent twice (phase 1 forbids that); short enough that a killed worker's claims
# come back within phase 2's wait. A batch is recorded in one transaction, well within it.
ENV = {"SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "SLOTGRAPH_WORKER_LEASE_SECONDS": "30"}
START = datetime(2032, 1, 5, 0, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


async def book_many(http: httpx.AsyncClient, server: Server, first: int, count: int) -> None:
    r = await http.post(
        f"{server.url}/v1/resources",
        headers=server.headers(),
        json={"name": f"R{first}", "timezone": "UTC"},
    )
    resource = r.json()["resource_id"]
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        start = START + timedelta(hours=i)
        async with sem:
            r = await http.post(
                f"{server.url}/v1/bookings",
                headers=server.headers(),
                json={
                    "resource_id": resource,
                    "start_time": start.isoformat(),
                    "end_time": (start + timedelta(minutes=30)).isoformat(),
                    "customer": {"name": "C", "email": f"c{i}@example.com"},
                    "notify": False,  # webhooks only (emails: test_email_worker.py)
                },
            )
            assert r.status_code == 201, r.text

    await asyncio.gather(*(one(i) for i in range(first, first + count)))


async def event_ids(http: httpx.AsyncClient, server: Server) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, "type": "booking.confirmed"}
        if cursor:
            params["cursor"] = cursor
        page = (
            await http.get(f"{server.url}/v1/events", headers=server.headers(), params=params)
        ).json()
        ids |= {e["event_id"] for e in page["data"]}
        cursor = page["next_cursor"]
        if not cursor:
            return ids


async def wait_for(predicate: Any, seconds: float, what: str) -> None:
    for _ in range(int(seconds * 10)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def until_all_succeeded(server: Server, seconds: float) -> None:
    """Wait until no delivery is left unfinished: a killed worker's claims come back after their
    lease and are sent again. The caller asserts the statuses it expects."""
    for _ in range(int(seconds * 10)):
        pending = await database_says(
            server, "SELECT COUNT(*) FROM deliveries WHERE status <> 'succeeded'"
        )
        if pending[0][0] == 0:
            return
        await asyncio.sleep(0.1)


async def test_two_workers_deliver_everything_once_and_survive_a_kill(
    fresh_database: tuple[str, str], tmp_path: Path, receiver: Receiver
) -> None:
    backend, url = fresh_database
    server = await start_server(url, backend, tmp_path / "api.log", "--no-worker", env=ENV)
    workers = [start_worker(url, tmp_path / f"worker{i}.log", ENV) for i in range(2)]
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            await subscribe(http, server, receiver.url)

            # Phase 1: 500 bookings; both workers running; every event exactly once.
            await book_many(http, server, 0, 500)
            expected = await event_ids(http, server)
            assert len(expected) == 500

            def received() -> Counter[str]:
                return Counter(e["id"] for e in receiver.events())

            await wait_for(lambda: set(received()) >= expected, 120, "500 deliveries")
            assert max(received().values()) == 1, "an event was delivered twice"

            # Phase 2: slow receiver, 300 more bookings, kill -9 one worker mid-run.
            receiver.delay = 0.05
            await book_many(http, server, 1000, 300)
            expected = await event_ids(http, server)
            assert len(expected) == 800
            await wait_for(lambda: len(received()) >= 550, 120, "phase 2 to get going")
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            await wait_for(lambda: set(received()) >= expected, 180, "all 800 deliveries")
            await until_all_succeeded(server, 60)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                w.wait(timeout=30)
        stop_server(server)

    assert set(received()) == expected
    duplicates = {k for k, n in received().items() if n > 1}
    # Only an attempt cut off by the kill may be repeated, and then as a new attempt number.
    rows = await database_says(
        server,
        "SELECT delivery_id, attempt, COUNT(*) FROM delivery_attempts "
        "GROUP BY delivery_id, attempt HAVING COUNT(*) > 1",
    )
    assert rows == [], "two workers made the same attempt"
    statuses = await database_says(
        server, "SELECT status, COUNT(*) FROM deliveries GROUP BY status"
    )
    assert dict((s, n) for s, n in statuses) == {"succeeded": 800}
    # At most what docs/operations.md promises for a kill -9: the sends on the wire (one
    # WORKER_BATCH, 32 by default) and the answers waiting for the recorder (two batches); no
    # send here is slow (50 ms), so none is in flight beyond the slots.
    assert len(duplicates) <= 3 * 32
    assert workers[1].returncode == 0, (tmp_path / "worker1.log").read_text()


async def test_sigterm_releases_what_it_cannot_finish_in_time(
    fresh_database: tuple[str, str], tmp_path: Path, receiver: Receiver
) -> None:
    backend, url = fresh_database
    server = await start_server(url, backend, tmp_path / "api.log", "--no-worker", env=ENV)
    # A 2-second grace against a 30-second answer: a worker that waited for the send would stop
    # after 30 s with the delivery recorded; one that honours its grace stops long before, even
    # on a loaded machine (the stop after the grace took 8-16 s there: wait, release, exit).
    env = {**ENV, "SLOTGRAPH_WORKER_SHUTDOWN_SECONDS": "2"}
    receiver.delay = 30.0
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            r = await http.post(
                f"{server.url}/v1/webhooks", headers=server.headers(), json={"url": receiver.url}
            )
            webhook = r.json()["webhook_id"]
            await http.post(f"{server.url}/v1/webhooks/{webhook}/test", headers=server.headers())
            worker = start_worker(url, tmp_path / "worker.log", env)
            for _ in range(300):  # until the worker has claimed the delivery
                claimed = await database_says(
                    server, "SELECT COUNT(*) FROM deliveries WHERE locked_by IS NOT NULL"
                )
                if claimed[0][0]:
                    break
                await asyncio.sleep(0.1)
            sent = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
            stopped = time.monotonic() - sent
    finally:
        stop_server(server)
    said = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 0, said
    assert " started on uvloop" in said  # the loop `serve` runs its worker on (cli_commands.run)
    assert stopped < 25  # long before the receiver would have answered
    rows = await database_says(server, "SELECT status, attempts, locked_by FROM deliveries")
    assert [(r[0], r[1], r[2]) for r in rows] == [("pending", 0, None)]  # released, not lost
