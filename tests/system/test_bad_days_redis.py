"""Bad days: the rate limits' Redis (`SLOTGRAPH_REDIS_URL`) stops answering (docs/operations.md,
"Bad days"; docs/security.md, "Rate limits").

A Redis that accepts connections and answers nothing (hung, or behind a firewall dropping its
packets) is the worst of its failures: every ask waits the timeout (0.5 s then, 0.1 s now).
Before, every request asked it, so each waited 0.5-1.5 s more, and none was limited (the store's
failure let it through). Now each process counts in its own bounded store while Redis is let
alone, and asks it again every few seconds: requests are as fast as without Redis, and still
limited. A Redis that answers, but slowly, is failing too (the second test).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.redis_proxy import SlowRedis, listening, slow_redis_proxy
from tests.system.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.system

LIMIT = 5  # the app's requests a minute per secret key


async def requests_over_the_limit(server: Server) -> tuple[list[httpx.Response], float]:
    """The app limited to `LIMIT` requests a minute, then six times as many: their answers, and
    how long it all took."""
    async with httpx.AsyncClient(timeout=30) as http:
        start = time.monotonic()
        r = await http.put(
            f"{server.url}/v1/app",
            headers=server.headers(),
            json={"rate_limits": {"secret_per_minute": LIMIT}},
        )
        assert r.status_code == 200, r.text
        answers = [
            await http.get(f"{server.url}/v1/resources", headers=server.headers())
            for _ in range(6 * LIMIT)
        ]
        return answers, time.monotonic() - start


@dataclass
class HungRedis:
    url: str
    held: list[socket.socket]  # every connection made to it: one per ask that timed out


@pytest.fixture
def hung_redis() -> Iterator[HungRedis]:
    """A `redis://` server that accepts every connection and never answers."""
    held: list[socket.socket] = []
    try:
        with listening(held.append) as port:
            yield HungRedis(f"redis://127.0.0.1:{port}/0", held)
    finally:
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
        asked_before = len(hung_redis.held)
        answers, took = await requests_over_the_limit(server)
        # Each ask of the hung Redis waits its 0.1 s timeout (and leaves its connection): the
        # server process (one here) asks it once, then again every 5 s, not with each request
        # (before: 35 asks, 18 s).
        asked = len(hung_redis.held) - asked_before
        assert 1 <= asked <= 1 + took / 5, (asked, took)
        statuses = [a.status_code for a in answers]
        assert set(statuses) == {200, 429}, statuses
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) > 0
        log = server.log.read_text()
        assert "rate limit store unavailable, counting in this process" in log, log
        # The limiter's bound, not redis-py's socket timeout (ten times it): which fired first
        # was a race while they were equal.
        assert "did not answer within 0.1 s" in log, log
        assert "Traceback" not in log, log
    finally:
        stop_server(server)


@pytest.fixture
def slow_redis() -> Iterator[SlowRedis]:
    with slow_redis_proxy() as proxy:
        yield proxy


async def test_a_slow_redis_slows_no_request_and_the_limits_still_hold(
    fresh_database: tuple[str, str], tmp_path: Path, slow_redis: SlowRedis
) -> None:
    """A Redis that answers, but 0.3 s late: before, nothing failed, so every request waited
    for each of its asks (three or four a request: about a second each); now an ask that takes
    longer than the limiter's bound is a failure like any other, and the process counts in its
    own store for 5 s."""
    backend, url = fresh_database
    server: Server = await start_server(
        url, backend, tmp_path / "server.log", env={"SLOTGRAPH_REDIS_URL": slow_redis.url}
    )
    try:
        asked_before = len(slow_redis.asks)
        answers, took = await requests_over_the_limit(server)
        statuses = [a.status_code for a in answers]
        # Before: every request asked Redis (and waited for each answer), 31 requests, over 90
        # asks. Now: asked once (its connection's first writes too), then again every 5 s, by
        # the server process.
        asked = len(slow_redis.asks) - asked_before
        assert 1 <= asked <= 3 + took / 5, (asked, took)
        assert set(statuses) == {200, 429}, statuses
        log = server.log.read_text()
        assert "rate limit store unavailable, counting in this process" in log, log
        assert "did not answer within 0.1 s" in log, log
        assert "Traceback" not in log, log
    finally:
        stop_server(server)
