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
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.system

LIMIT = 5  # the app's requests a minute per secret key


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A `redis://` URL whose server accepts every connection and never answers."""
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
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        listener.close()
        for conn in held:
            conn.close()


async def test_a_hung_redis_slows_no_request_and_the_limits_still_hold(
    fresh_database: tuple[str, str], tmp_path: Path, hung_redis: str
) -> None:
    backend, url = fresh_database
    server: Server = await start_server(
        url, backend, tmp_path / "server.log", env={"SLOTGRAPH_REDIS_URL": hung_redis}
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.put(
                f"{server.url}/v1/app",
                headers=server.headers(),
                json={"rate_limits": {"secret_per_minute": LIMIT}},
            )
            assert r.status_code == 200, r.text
            answers, took = [], []
            for _ in range(6 * LIMIT):
                start = time.monotonic()
                answers.append(
                    await http.get(f"{server.url}/v1/resources", headers=server.headers())
                )
                took.append(time.monotonic() - start)
        statuses = [a.status_code for a in answers]
        assert set(statuses) == {200, 429}, statuses
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) > 0
        # Each ask of the hung Redis waits its 0.5 s timeout: most requests ask it no more.
        assert statistics.median(took) < 0.4, took
        log = server.log.read_text()
        assert "rate limit store unavailable, counting in this process" in log, log
        assert "Traceback" not in log, log
    finally:
        stop_server(server)
