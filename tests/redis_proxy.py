"""A real Redis behind a TCP proxy that hands each of its answers on late: a Redis that answers,
slowly (swapping, a saturated link, a busy single thread). Used by the rate limits' tests
(docs/operations.md, "Bad days")."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tests.api.test_safety_limits import redis_url

SLOW = 0.3  # seconds each answer of the slow Redis takes


@dataclass
class SlowRedis:
    url: str
    asks: list[int]  # one entry per write from slotgraph to Redis (a command or a pipeline)


def _pump(source: socket.socket, sink: socket.socket, delay: float, asks: list[int]) -> None:
    """Copy bytes from `source` to `sink`, each read `delay` s late (Redis' answers), or
    counted (slotgraph's asks)."""
    try:
        while chunk := source.recv(65536):
            if delay:
                time.sleep(delay)  # the slow peer itself, not the test waiting for it
            else:
                asks.append(len(chunk))
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def slow_redis_proxy(delay: float = SLOW) -> Iterator[SlowRedis]:
    """The test Redis (skipped, or failed in CI, without one) behind the proxy."""
    upstream = redis_url()
    asks: list[int] = []
    opened: list[socket.socket] = []

    def proxy(conn: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", 6379))
        opened.extend((conn, up))
        threading.Thread(target=_pump, args=(conn, up, 0.0, asks), daemon=True).start()
        threading.Thread(target=_pump, args=(up, conn, delay, asks), daemon=True).start()

    database = upstream.rsplit("/", 1)[1]
    try:
        with listening(proxy) as port:
            yield SlowRedis(f"redis://127.0.0.1:{port}/{database}", asks)
    finally:
        for conn in opened:
            conn.close()


@contextlib.contextmanager
def listening(on_connection: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP port on 127.0.0.1 whose every connection goes to `on_connection`, in a thread,
    until the block ends (the connections are the caller's to close)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            on_connection(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
