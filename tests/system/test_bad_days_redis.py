"""Bad days: the rate limits' Redis (`SLOTGRAPH_REDIS_URL`) stops answering (docs/operations.md,
"Bad days"; docs/security.md, "Rate limits").

A Redis that accepts connections and answers nothing (hung, or behind a firewall dropping its
packets) is the worst of its failures: every call waits the 0.5 s timeout. Before, every request
asked it, so each waited 0.5-1.5 s more, and none was limited (the store's failure let it
through). Now each process counts in its own bounded store while Redis is let alone, and asks it
again every few seconds: requests are as fast as without Redis, and still limited.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.system

LIMIT = 5  # the app's requests a minute per secret key


@dataclass
class HungRedis:
    url: str
    held: list[socket.socket]  # every connection made to it: one per ask that timed out


@pytest.fixture
def hung_redis() -> Iterator[HungRedis]:
    """A `redis://` server that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield HungRedis(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", held)
    finally:
        listener.close()
        for conn in held:
            conn.close()


async def test_a_hung_redis_slows_no_request_and_the_limits_still_hold(
    fresh_database: tuple[str, str], tmp_path: Path, hung_redis: HungRedis
) -> None:
    backend, url = fresh_database
    server: Server = await start_server(
        url, backend, tmp_path / "server.log", env={"SLOTGRAPH_REDIS_URL": hung_redis.url}
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            asked_before = len(hung_redis.held)
            start = time.monotonic()
            r = await http.put(
                f"{server.url}/v1/app",
                headers=server.headers(),
                json={"rate_limits": {"secret_per_minute": LIMIT}},
            )
            assert r.status_code == 200, r.text
            answers = []
            for _ in range(6 * LIMIT):
                answers.append(
                    await http.get(f"{server.url}/v1/resources", headers=server.headers())
                )
            took = time.monotonic() - start
        # Each ask of the hung Redis waits its 0.5 s timeout (and leaves its connection): it is
        # asked once, then again every 5 s, not by each request (before: 35 asks, 18 s).
        asked = len(hung_redis.held) - asked_before
        assert 1 <= asked <= 2 + took / 5, (asked, took)
        statuses = [a.status_code for a in answers]
        assert set(statuses) == {200, 429}, statuses
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) > 0
        log = server.log.read_text()
        assert "rate limit store unavailable, counting in this process" in log, log
        assert "Traceback" not in log, log
    finally:
        stop_server(server)
