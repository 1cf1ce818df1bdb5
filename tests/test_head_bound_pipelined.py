"""A head over the bound behind an answer still being sent (pipelining), in process
(api/connections.py, docs/security.md "the head's size").

The 431 was written into the connection as soon as the head passed 64 KiB: behind an answer
that was still being sent, it landed inside that answer's Content-Length (a client reads it as
the body's bytes), and the answer's next write, after the write side was shut, raised
RuntimeError in the ASGI application. Where an answer is in flight the connection is reset
instead: the client sees a cut answer, never another's bytes inside it. (A 431 behind an
answer already whole in the buffer is sent after it, as before.)
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.test_send_rule import KIB, _serving


async def test_a_huge_head_behind_an_answer_in_flight_cuts_the_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    size = 3 * 1024 * KIB  # far more than the (small) buffers: the answer stays in flight
    async with _serving(monkeypatch, size, total=60, pieces=48) as address:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            await loop.sock_sendall(
                sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nX-Big: "
            )
            received = await loop.sock_recv(sock, 1)  # the first answer has begun
            await loop.sock_sendall(sock, b"a" * (80 * KIB))  # the second head, over 64 KiB
            while True:
                try:
                    chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                received += chunk
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size
    assert received.startswith(head), received[:100]
    first = received[: len(head) + size]  # the first answer, as its Content-Length says
    assert b"HTTP/1.1 431" not in first, first.index(b"HTTP/1.1 431")
    assert "RuntimeError" not in caplog.text
