"""The answer's rule (api/connections.py, ADR 0012 "The answer's rule"), in process: the
protocol `slotgraph serve` runs, on a socket of this test's loop, serving an answer larger than
the kernel's buffers (made small, so the process holds most of it) to a client that reads at a
set rate. tests/system/test_slow_readers.py runs the same rule against the real server, where
only Linux's count can be used.

- **The fallback count** (`_look`: what the process's buffer gave up, where the kernel does not
  count the bytes the client acknowledged: not Linux) is forced by switching the kernel's count
  off. It may count low, never high: a client that reads nothing, or under the minimum, or that
  stops, is reset at the end of that stretch; one that reads well over the minimum is served.
- **Pipelined answers each have their own total** (SLOTGRAPH_SEND_MAX_SECONDS), as answers asked
  one after another on a kept-alive connection do: two answers, each served well within the
  total, asked at once and read at the same rate, are both served. Before, the total's clock ran
  from the first one's start: the second was reset at the total.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from slotgraph.api import connections
from slotgraph.api.connections import BoundedHttpToolsProtocol, Bounds, acked_bytes

KIB = 1024
STRETCH = 1.0  # SLOTGRAPH_SEND_TIMEOUT_SECONDS here
MINIMUM = 128 * KIB  # SLOTGRAPH_SEND_MIN_BYTES_PER_SECOND here


class _SmallBuffers(BoundedHttpToolsProtocol):
    """The kernel's send buffer fixed small (not grown up to megabytes): what the client has not
    read waits in the process, where the rule looks."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        super().connection_made(transport)


@asynccontextmanager
async def _serving(
    monkeypatch: pytest.MonkeyPatch, size: int, total: float, pieces: int = 1
) -> AsyncIterator[tuple[str, int]]:
    """A server of `size`-byte answers (sent in `pieces` writes) with the rule's settings, on
    this test's loop."""
    piece = b"x" * (size // pieces)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        head = [(b"content-length", str(len(piece) * pieces).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        for i in range(pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": i < pieces - 1})

    bounds = Bounds(
        head_seconds=60,
        per_address=0,
        trusted=(),
        send_seconds=STRETCH,
        send_min_rate=MINIMUM,
        send_max_seconds=total,
    )
    monkeypatch.setattr(connections, "bounds", lambda: bounds)
    config = Config(app, lifespan="off", access_log=False, log_config=None, timeout_keep_alive=60)
    config.load()
    state = ServerState()
    server = await asyncio.get_running_loop().create_server(
        lambda: _SmallBuffers(config=config, server_state=state, app_state={}), "127.0.0.1", 0
    )
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        for conn in list(state.connections):
            conn.shutdown()
        for task in list(state.tasks):
            task.cancel()


async def _ask(address: tuple[str, int], times: int = 1) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * times)
    return sock


_CLOSE = 7  # Linux's TCP_CLOSE (the first byte of TCP_INFO): after a reset


def _reset(sock: socket.socket) -> bool:
    """Whether the server reset the connection, from the client's kernel (not by reading,
    which a client that reads nothing does not do)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == _CLOSE


async def _read(
    sock: socket.socket, rate: int, expected: int, stop_after: float | None = None
) -> tuple[int, float, bool]:
    """Reads at `rate` bytes a second from the first byte on (a late turn reads what it is
    owed, so the rate holds on a loaded machine), nothing after `stop_after` seconds, until
    `expected` bytes have come or the server cut the connection: (bytes, seconds from the first
    byte, cut). A client that reads nothing still takes the first byte: the clock's start."""
    received, first = 0, None
    bound = time.monotonic() + 60  # ends only a test whose server neither serves nor cuts
    while time.monotonic() < bound:
        now = time.monotonic()
        if first is None:
            owed = 1
        elif stop_after is not None and now - first > stop_after:
            owed = 0
        else:
            owed = int(rate * (now - first)) - received
        while owed > 0:
            try:
                chunk = sock.recv(min(owed, 65536))
            except BlockingIOError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return received, now - (first or now), received < expected
            first = first or now
            received += len(chunk)
            owed -= len(chunk)
        if received >= expected:
            return received, now - (first or now), False
        if first is not None and _reset(sock):
            return received, now - first, True
        await asyncio.sleep(0.01)
    raise AssertionError(f"neither served nor cut after 60 s: {received} bytes")


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's count switched off, as on a system whose TCP_INFO is not Linux's."""
    monkeypatch.setattr(connections, "_TCP_INFO", None)
    with socket.socket() as sock:
        assert acked_bytes(sock) is None


HEAD = 40  # at least the answer's head (status line, date, server, Content-Length)
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the connection's state is read from TCP_INFO"
)


@pytest.mark.parametrize(
    ("rate", "stop_after", "cut_after"),
    [
        (0, None, STRETCH),  # reads nothing: reset at the first stretch's end
        (MINIMUM // 2, None, STRETCH),  # under the minimum: likewise
        # Over the minimum for a stretch, then nothing: reset at the end of the next one
        # (a count that adds up more than the buffer gave up would let it go on).
        (4 * MINIMUM, STRETCH * 1.2, 2 * STRETCH),
        (4 * MINIMUM, None, None),  # well over the minimum: served
    ],
    ids=["nothing", "under-the-minimum", "stops", "over-the-minimum"],
)
@pytest.mark.usefixtures("fallback")
async def test_the_fallback_count_resets_who_reads_too_little_and_serves_who_reads(
    monkeypatch: pytest.MonkeyPatch, rate: int, stop_after: float | None, cut_after: float | None
) -> None:
    size = 3 * 1024 * KIB
    async with _serving(monkeypatch, size, total=60) as address:
        sock = await _ask(address)
        with sock:
            read, took, cut = await _read(sock, rate, size + HEAD, stop_after)
    if cut_after is None:
        assert not cut, f"cut after {took:.1f} s, {read} bytes read"
        assert read >= size
    else:
        assert cut, f"served in {took:.1f} s"
        assert cut_after - 0.3 < took < cut_after + 1.5, took


@pytest.mark.parametrize("count", ["kernel", "fallback"])
async def test_pipelined_answers_each_have_the_whole_total(
    monkeypatch: pytest.MonkeyPatch, count: str
) -> None:
    """Two answers of 1.5 MiB asked at once, read at 768 KiB/s: about 2 s each, 4 s both, with
    a total of 3 s an answer."""
    if count == "fallback":
        monkeypatch.setattr(connections, "_TCP_INFO", None)
    size = 1536 * KIB
    async with _serving(monkeypatch, size, total=3.0) as address:
        sock = await _ask(address, times=2)
        with sock:
            read, took, cut = await _read(sock, 6 * MINIMUM, 2 * (size + HEAD))
    assert not cut, f"cut after {took:.1f} s, {read} bytes read"
    assert took > 3.0, took  # longer than one total: the second answer had its own
