"""A worker killed with sends in flight: exactly the sends it had not recorded are made again."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.receiver import Receiver, running_receiver
from tests.system.conftest import start_server, start_worker, stop_server, subscribe
from tests.system.test_concurrency import database_says
from tests.system.test_workers import ENV, book_many, wait_for

pytestmark = pytest.mark.system

BATCH = 4
ANSWERED = 6  # the receiver answers this many, then holds every later request


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def worker(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **ENV,
        "SLOTGRAPH_WORKER_BATCH": str(BATCH),
        "SLOTGRAPH_WORKER_LEASE_SECONDS": "5",  # the second worker takes over after this
    }
    return start_worker(database_url, log, env)


async def test_a_killed_worker_s_unrecorded_sends_are_made_again_and_only_those(
    fresh_database: tuple[str, str], tmp_path: Path, receiver: Receiver
) -> None:
    backend, url = fresh_database
    server = await start_server(url, backend, tmp_path / "api.log", "--no-worker", env=ENV)
    first = second = None
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            await subscribe(http, server, receiver.url)
            await book_many(http, server, 0, ANSWERED + BATCH)
        receiver.hold(after=ANSWERED)
        first = worker(url, tmp_path / "first.log")

        async def recorded() -> int:
            rows = await database_says(server, "SELECT COUNT(*) FROM delivery_attempts")
            return int(rows[0][0])

        # The first six answered and recorded; the next four on the wire, held.
        for _ in range(1200):
            if receiver.arrived == ANSWERED + BATCH and await recorded() == ANSWERED:
                break
            await asyncio.sleep(0.05)
        assert (receiver.arrived, await recorded()) == (ANSWERED + BATCH, ANSWERED)
        first.send_signal(signal.SIGKILL)
        first.wait()
        receiver.release()  # the held four now reach the receiver, unrecorded

        second = worker(url, tmp_path / "second.log")
        await wait_for(lambda: receiver.arrived == ANSWERED + 2 * BATCH, 120, "the resends")
        for _ in range(600):
            if await recorded() == ANSWERED + BATCH:
                break
            await asyncio.sleep(0.05)
    finally:
        receiver.release()
        for w in (first, second):
            if w is not None and w.poll() is None:
                w.send_signal(signal.SIGTERM)
                w.wait(timeout=30)
        stop_server(server)

    times = Counter(Counter(r.headers["webhook-id"] for r in receiver.requests).values())
    assert times == {1: ANSWERED, 2: BATCH}  # six sent once, the four cut off sent twice
    attempts = await database_says(
        server,
        "SELECT d.attempts, a.attempt, d.status FROM deliveries d "
        "JOIN delivery_attempts a ON a.delivery_id = d.id",
    )
    assert Counter(tuple(row) for row in attempts) == {
        (1, 1, "succeeded"): ANSWERED,
        (2, 2, "succeeded"): BATCH,  # attempt 1 went out but was never recorded
    }
