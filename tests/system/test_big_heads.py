"""A request's head is bounded in size by `slotgraph serve` (api/connections.py, docs/security.md).

httptools joins the pieces of a header's value with `bytes +=` (and uvicorn the URL's), a copy
of everything before at every read: one client sending a header of 44 MB within the head's
deadline (10 s) held the event loop, so every request of the process waited (a `/healthz`
asked meanwhile took 10.8 s), and the whole head stayed in memory until the deadline. Now a head
over 64 KiB is answered 431 and closed as soon as it is read past that.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import suppress

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.system.conftest import Server, _database
from tests.system.slow_clients import address, parse_answer, serving, until_closed

pytestmark = pytest.mark.system

MAX_HEAD = 64 * 1024


@pytest.fixture(scope="module", params=BACKENDS)
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    """One server per backend for the module (a start is most of a test's CPU): each test's
    connections are closed before it ends, and none reads the log. The head's deadline is long,
    so that only the size can end a head in time."""
    backend: str = request.param
    tmp_path = tmp_path_factory.mktemp(f"big-heads-{backend}")
    async with (
        _database(backend, tmp_path) as url,
        serving((backend, url), tmp_path, SLOTGRAPH_HEADER_TIMEOUT_SECONDS="30") as srv,
    ):
        yield srv


async def _send_endless_header(writer: asyncio.StreamWriter, limit: int) -> int:
    """A header value of up to `limit` bytes, as fast as the server takes it (until it closes);
    what was sent."""
    sent = 0
    chunk = b"a" * 65536
    with suppress(ConnectionError):
        while sent < limit:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    return sent


async def test_a_huge_head_is_answered_431_and_others_are_not_held(server: Server) -> None:
    reader, writer = await asyncio.open_connection(*address(server))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sending = asyncio.create_task(_send_endless_header(writer, 64 * 1024 * 1024))
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as other:
        started = time.monotonic()
        assert (await other.get("/healthz")).status_code == 200
        others_waited = time.monotonic() - started
    answer, _ = await until_closed(reader, 30)
    await sending  # what follows the 431 is read and dropped, then the connection closed
    writer.close()
    # A head just under the bound, as many cookies make it, is still served.
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        cookies = "; ".join(f"c{i}={'v' * 90}" for i in range(500))  # 48 KB
        assert (await client.get("/healthz", headers={"cookie": cookies})).status_code == 200
    status, headers, body = parse_answer(answer)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large", answer[:200]
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "headers_too_large"
    assert others_waited < 5, others_waited  # 10.8 s before, with 44 MB in 10 s


async def test_pipelined_heads_under_the_bound_are_all_served(server: Server) -> None:
    """Twenty requests of 60 KB heads sent at once: a read then holds the end of one head, whole
    others and the start of the next. Counted as one head (the bound's first version did), the
    reads made 431s of heads under the bound; only a read that is all head counts."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 60_000 + b"\r\n\r\n"
    reader, writer = await asyncio.open_connection(*address(server))
    writer.write(request * 20)
    await writer.drain()
    received = b""
    while received.count(b"HTTP/1.1 ") < 20:
        chunk = await asyncio.wait_for(reader.read(65536), 30)
        if not chunk:
            break
        received += chunk
    writer.close()
    assert received.count(b"HTTP/1.1 200 OK") == 20, received.count(b"HTTP/1.1 ")
