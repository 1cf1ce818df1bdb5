"""A hostile HTTP peer for the tests of what our clients (CalDAV, webhooks) take from a server:
it answers every request with what its `answer` says, on loopback, in a thread, and counts the
bytes it managed to write, so a test sees from outside how much the client read."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# What to write for a request (its first line): the head (status line and headers, without the
# blank line) and the body's chunks, written as they come; None chunks end the connection.
Answer = Callable[[str], tuple[bytes, Iterator[bytes]]]


@dataclass
class Hostile:
    url: str
    sent: int = 0  # body bytes written, all requests together
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_request: Callable[[int], None] | None = None  # called (server thread) with the count


def chunked(
    total: int | None = None,
    *,
    chunk: int = 64 * 1024,
    every: float = 0.0,
    status: bytes = b"207 Multi-Status",
) -> Answer:
    """A chunked body of `total` bytes (None: without end, until the client goes away), a
    chunk each `every` seconds."""

    def answer(_: str) -> tuple[bytes, Iterator[bytes]]:
        head = (
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/xml\r\n"
            b"Transfer-Encoding: chunked"
        )

        def body() -> Iterator[bytes]:
            data, left = b"x" * chunk, total
            while left is None or left > 0:
                if every:
                    time.sleep(every)
                if left is not None:
                    data, left = data[:left], left - len(data[:left])
                yield b"%x\r\n" % len(data) + data + b"\r\n"
            yield b"0\r\n\r\n"

        return head, body()

    return answer


def fixed(body: bytes, status: bytes = b"207 Multi-Status") -> Answer:
    """One body, as XML."""

    def answer(_: str) -> tuple[bytes, Iterator[bytes]]:
        head = (
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/xml; charset=utf-8\r\n"
            b"Content-Length: %d" % len(body)
        )
        return head, iter([body])

    return answer


def held(seconds: float, then: Answer) -> Answer:
    """`then`'s answer, after holding the request `seconds`."""

    def answer(line: str) -> tuple[bytes, Iterator[bytes]]:
        time.sleep(seconds)
        return then(line)

    return answer


def gzip_bomb(decoded: int, status: bytes = b"207 Multi-Status") -> Answer:
    """`decoded` zero bytes, gzip-compressed (about a thousandth of it on the wire)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1024 * 1024)
    parts = [z.compress(block) for _ in range(decoded // len(block))]
    packed = b"".join(parts) + z.flush()

    def answer(_: str) -> tuple[bytes, Iterator[bytes]]:
        head = (
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/xml\r\n"
            b"Content-Encoding: gzip\r\nContent-Length: %d" % len(packed)
        )
        return head, iter([packed])

    return answer


@contextmanager
def serving(answer: Answer) -> Iterator[Hostile]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    peer = Hostile(f"http://127.0.0.1:{port}/cal/")
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            reader = conn.makefile("rb")
            try:
                while not stop.is_set():
                    line = reader.readline().decode("latin-1").strip()
                    if not line:
                        return
                    length = 0
                    while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                        name, _, value = header.decode("latin-1").partition(":")
                        if name.strip().lower() == "content-length":
                            length = int(value)
                    reader.read(length)
                    with peer.lock:
                        peer.requests.append(line)
                        count = len(peer.requests)
                    if peer.on_request:
                        peer.on_request(count)
                    head, chunks = answer(line)
                    conn.sendall(head + b"\r\n\r\n")
                    for chunk in chunks:
                        if stop.is_set():
                            return
                        conn.sendall(chunk)
                        with peer.lock:
                            peer.sent += len(chunk)
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        stop.set()
        thread.join()
        listener.close()


@contextmanager
def holding(then: Answer | None = None) -> Iterator[tuple[Hostile, threading.Event]]:
    """A server that holds every request until the event is set (at most 120 s), then answers
    `then` (by default: not XML)."""
    release = threading.Event()
    after = then or fixed(b"<<not xml")

    def answer(line: str) -> tuple[bytes, Iterator[bytes]]:
        release.wait(120)
        return after(line)

    with serving(answer) as peer:
        try:
            yield peer, release
        finally:
            release.set()  # the client's threads and the server's go before the next test


async def seen(peer: Hostile, count: int, within: float) -> None:
    """Until the server has `count` requests in hand (at most `within` seconds)."""
    loop, reached = asyncio.get_running_loop(), asyncio.Event()

    def on_request(n: int) -> None:
        if n >= count:
            loop.call_soon_threadsafe(reached.set)

    peer.on_request = on_request
    if len(peer.requests) < count:
        await asyncio.wait_for(reached.wait(), within)
