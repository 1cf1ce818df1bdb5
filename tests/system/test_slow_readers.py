"""Answers that outrun their client, against a real `slotgraph serve` (docs/security.md, ADR 0012):
a client that never reads is reset after a stretch (SLOTGRAPH_SEND_TIMEOUT_SECONDS), one that
reads at the minimum rate or more is served within the total (SLOTGRAPH_SEND_MAX_SECONDS), and
a reset under pipelining logs no error. Split from test_slow_clients.py (heads, bodies and many
clients), which passed 400 lines."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import SECRET, Server
from tests.system.slow_clients import RATE, SEND, address, parse_answer, serving

pytestmark = pytest.mark.system


_ESTABLISHED = 1  # Linux's TCP_ESTABLISHED, the first byte of TCP_INFO


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


async def _largest_search(server: Server) -> str:
    """The query of an availability search whose answer is as large as one may be (docs/
    availability.md: 5,000 slots x 20 resources, about 4.5 MB): more than the kernel's buffers
    take (at most 4 MB here, net.ipv4.tcp_wmem), so the rest waits in the server process."""
    auth = {"Authorization": f"Bearer {SECRET}"}
    ids = []
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=30) as http:
        for n in range(20):
            r = await http.post("/v1/resources", json={"name": f"Room {n}", "timezone": "UTC"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["resource_id"])
    query = "&".join(f"resource_id={i}" for i in ids)
    return f"/v1/availability?{query}&start=2030-01-07T00:00:00Z&end=2030-03-07T00:00:00Z" + (
        "&duration=PT15M&limit=5000"
    )


async def test_a_client_that_does_not_read_its_answer_is_cut_off_within_the_limit(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    """The largest availability answer, asked for on a socket with a 4 KB receive buffer that is
    never read. Before, the connection stayed open for as long as the client liked, the rest of
    the answer in the server's memory (the head's and keep-alive's deadlines close it, and a
    close waits for the buffer to drain). The connection's state is read from the client's
    kernel (TCP_INFO), never by reading: the server's reset makes it CLOSE."""
    loop = asyncio.get_running_loop()
    async with serving(fresh_database, tmp_path) as server:
        path = await _largest_search(server)
        # A client that reads gets the whole answer.
        auth = {"Authorization": f"Bearer {SECRET}"}
        async with httpx.AsyncClient(timeout=60, headers=auth) as http:
            whole = await http.get(f"{server.url}{path}")
        assert whole.status_code == 200, whole.text
        assert len(whole.json()["data"]) == 5000
        assert len(whole.content) > 4_200_000
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, address(server))
        ask = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\r\n"
        await loop.sock_sendall(sock, ask.encode())
        started = time.monotonic()
        # Looked at every 0.1 s for at most SEND + 20 s: the bound only ends a test whose
        # server never cuts the connection.
        for _ in range(int((SEND + 20) * 10)):
            if _tcp_state(sock) != _ESTABLISHED:
                break
            await asyncio.sleep(0.1)
        took, state = time.monotonic() - started, _tcp_state(sock)
        sock.close()
        # The server goes on serving.
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(f"{server.url}/healthz")).status_code == 200
        log = server.log.read_text()
    assert state != _ESTABLISHED, f"still open after {took:.1f} s"
    assert SEND - 0.5 < took < SEND + 10, took
    assert "unhandled error" not in log, log


async def _ask(server: Server, path: str, *, receive_buffer: int, times: int = 1) -> socket.socket:
    """A socket whose receive buffer is about `receive_buffer` bytes, that asked for `path`
    (`times` requests at once: pipelined) and has read nothing yet."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, address(server))
    ask = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\r\n"
    await loop.sock_sendall(sock, ask.encode() * times)
    return sock


def _answers(received: bytes | bytearray) -> int:
    """How many whole answers `received` holds."""
    rest, whole = bytes(received), 0
    while (end := rest.find(b"\r\n\r\n")) >= 0:
        length = int(parse_answer(rest[: end + 4])[1]["content-length"])
        if len(rest) < end + 4 + length:
            break
        rest, whole = rest[end + 4 + length :], whole + 1
    return whole


async def _read_at(
    sock: socket.socket, rate: int, bound: float, answers: int = 1
) -> tuple[int, float, bool]:
    """Reads `answers` answers at `rate` bytes a second, counted from its first byte on the test's
    clock (a turn that comes late reads what it is owed, so the rate holds on a loaded machine),
    until it has all come or the server cut the connection: (bytes read, seconds from the first
    byte, cut). `bound` only ends a test whose server neither finishes nor cuts."""
    received = bytearray()
    first: float | None = None
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        owed = 4096 if first is None else int(rate * (time.monotonic() - first)) - len(received)
        while owed > 0:
            try:
                chunk = sock.recv(min(owed, 65536), socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:  # closed: after the whole answer, or cut
                took = time.monotonic() - (first or time.monotonic())
                return len(received), took, _answers(received) < answers
            first = first or time.monotonic()
            received += chunk
            owed -= len(chunk)
        if _answers(received) == answers:
            return len(received), time.monotonic() - (first or 0.0), False
        await asyncio.sleep(0.01)
    raise AssertionError(f"neither finished nor cut after {bound} s: {len(received)} bytes")


@pytest.mark.parametrize(
    ("reads", "least", "longest", "asked", "cut_after"),
    [
        # Two answers asked at once, 8.7 MB read in about 8.3 s: served. The kernel's send
        # buffer (up to 4 MB here) holds the first one's rest while the second waits in the
        # process for far longer than a stretch (the first rule's cut: 2 s after it outran).
        (4 * RATE, RATE, 60, 2, None),
        (RATE // 4, RATE, 60, 1, SEND),  # under the minimum: reset at the first stretch's end
        # Over the minimum, but slower than the total allows (slow enough that the kernel's
        # send buffer, which takes what the process holds, does not take it all by then).
        (64 * 1024, 32 * 1024, 5, 1, 5.0),
    ],
    ids=["above-the-minimum", "below-the-minimum", "past-the-total"],
)
async def test_a_client_that_reads_slowly_is_served_at_the_minimum_rate_within_the_total(
    fresh_database: tuple[str, str],
    tmp_path: Path,
    reads: int,
    least: int,
    longest: int,
    asked: int,
    cut_after: float | None,
) -> None:
    """The largest availability answer (about 4.3 MB), read at a steady rate. Before, an
    answer had to drain within one stretch (SEND) whatever the client read: one reading 1 MB/s
    was cut here (after 30 s, about 150 KB/s, by default)."""
    env = {
        "SLOTGRAPH_SEND_MIN_BYTES_PER_SECOND": str(least),
        "SLOTGRAPH_SEND_MAX_SECONDS": str(longest),
    }
    async with serving(fresh_database, tmp_path, **env) as server:
        path = await _largest_search(server)
        sock = await _ask(server, path, receive_buffer=65536, times=asked)
        read, took, cut = await _read_at(sock, reads, 60, asked)
        sock.close()
        async with httpx.AsyncClient(timeout=30) as http:  # the server goes on serving
            assert (await http.get(f"{server.url}/healthz")).status_code == 200
        log = server.log.read_text()
    assert '"level":"error"' not in log, log
    if cut_after is None:
        assert not cut, f"cut after {took:.1f} s, {read} bytes read"
        assert read > 8_400_000
        assert took > 3 * SEND, took
    else:
        assert cut, f"served in {took:.1f} s"
        assert read < 4_200_000
        assert cut_after - 0.5 < took < cut_after + 5, took


async def test_a_total_shorter_than_a_stretch_still_holds(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    """SLOTGRAPH_SEND_MAX_SECONDS under SLOTGRAPH_SEND_TIMEOUT_SECONDS (2 s, a stretch of 8 s):
    a client reading over the minimum is reset at the total, not at the first stretch's end
    (it was: 8 s)."""
    env = {
        "SLOTGRAPH_SEND_TIMEOUT_SECONDS": "8",
        "SLOTGRAPH_SEND_MIN_BYTES_PER_SECOND": str(32 * 1024),
        "SLOTGRAPH_SEND_MAX_SECONDS": "2",
    }
    async with serving(fresh_database, tmp_path, **env) as server:
        path = await _largest_search(server)
        sock = await _ask(server, path, receive_buffer=65536)
        read, took, cut = await _read_at(sock, 64 * 1024, 60)
        sock.close()
        log = server.log.read_text()
    assert '"level":"error"' not in log, log
    assert cut, f"served in {took:.1f} s"
    assert read < 4_200_000
    assert 1.5 < took < 6, took


async def test_a_reset_under_pipelining_logs_no_error(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    """Three requests for the largest answer sent at once, none read. uvicorn keeps only the last
    request it parsed: the reset marked that queued one as gone, and the answer being sent
    wrote to the aborted transport (uvloop's RuntimeError, logged with its traceback as an
    error in the ASGI application)."""
    async with serving(fresh_database, tmp_path) as server:
        path = await _largest_search(server)
        sock = await _ask(server, path, receive_buffer=4096, times=3)
        for _ in range(int((SEND + 20) * 10)):  # the bound only ends a test that never cuts
            if _tcp_state(sock) != _ESTABLISHED:
                break
            await asyncio.sleep(0.1)
        state = _tcp_state(sock)
        sock.close()
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(f"{server.url}/healthz")).status_code == 200
        log = server.log.read_text()
    assert state != _ESTABLISHED
    assert '"level":"error"' not in log, log
