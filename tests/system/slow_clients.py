"""What the slow-client tests share (test_slow_clients.py: heads, bodies, many clients;
test_slow_readers.py: answers that outrun their client): the limits a server is started with,
and reading raw HTTP/1.1 off a socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from tests.system.conftest import Server
from tests.system.conftest import serving as _serving

HEAD = 2.0  # SLOTGRAPH_HEADER_TIMEOUT_SECONDS in these tests
BODY = 2.0  # SLOTGRAPH_BODY_TIMEOUT_SECONDS
SEND = 2.0  # SLOTGRAPH_SEND_TIMEOUT_SECONDS: a stretch
RATE = 256 * 1024  # SLOTGRAPH_SEND_MIN_BYTES_PER_SECOND
LIMITS = {
    "SLOTGRAPH_HEADER_TIMEOUT_SECONDS": str(HEAD),
    "SLOTGRAPH_BODY_TIMEOUT_SECONDS": str(BODY),
    "SLOTGRAPH_SEND_TIMEOUT_SECONDS": str(SEND),
    "SLOTGRAPH_SEND_MIN_BYTES_PER_SECOND": str(RATE),
    "SLOTGRAPH_SEND_MAX_SECONDS": "60",
}


@asynccontextmanager
async def serving(
    fresh_database: tuple[str, str], tmp_path: Path, *args: str, workers: int = 1, **env: str
) -> AsyncIterator[Server]:
    """A server with these tests' LIMITS (and `env` over them)."""
    async with _serving(fresh_database, tmp_path, *args, workers=workers, env=LIMITS | env) as srv:
        yield srv


def address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


async def until_closed(reader: asyncio.StreamReader, bound: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took; the
    bound only ends a test whose server never closes."""
    started = time.monotonic()
    received = b""
    with suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(65536), bound):
            received += chunk
    return received, time.monotonic() - started


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """Send `data` a byte at a time, until it is all sent or the server has closed."""
    with suppress(ConnectionError):
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(every)


def parse_answer(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body
