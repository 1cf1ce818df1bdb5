"""What one connection may hold: before it has sent a request, and while its answer is sent
(docs/security.md, ADR 0012).

uvicorn bounds neither how long a request's head may take to arrive nor how many connections
one address may keep open: a client that sends half a head, or connects and sends nothing,
held its socket for as long as it liked, and enough of them used up the process's files. This
protocol is uvicorn's httptools protocol (what `slotgraph serve` runs) with four bounds added:

- **the head's deadline**: from the moment a connection is accepted, and again from the end of
  each answer on a kept-alive connection, the next request's head must be complete within
  `SLOTGRAPH_HEADER_TIMEOUT_SECONDS` (10); else the connection is closed, with a 408 if part
  of a head had come. uvicorn's keep-alive timeout (5 s) still closes an idle connection
  first; the deadline holds while bytes trickle in, which that timeout does not.
- **the answer's minimum rate**: once an answer outruns its client (uvicorn's write buffer
  passes its high-water mark: the kernel's buffers are full and 64 KiB more wait in the
  process), each stretch of `SLOTGRAPH_SEND_TIMEOUT_SECONDS` (30) must move at least
  `SLOTGRAPH_SEND_MIN_BYTES_PER_SECOND` (16 KiB) a second of it out of the process, and all of
  it must have left within `SLOTGRAPH_SEND_MAX_SECONDS` (300; each pipelined answer its own);
  else the connection is reset (a close would wait for the buffer to drain). A client that
  did not read its answer held the connection, its buffered answer and its place in the count
  below for as long as it liked; one reading a byte a second is reset after the first stretch,
  one reading just fast enough after the total. An answer that fits in the buffers costs no timer.
- **connections per address**: at most `SLOTGRAPH_MAX_CONNECTIONS_PER_ADDRESS` (256, per server
  process; IPv6 counted per /64) open at once; one more is answered 503 and closed before it is
  read. The host itself (loopback) and the proxies named in `SLOTGRAPH_FORWARDED_ALLOW_IPS`
  are not counted: every visitor behind a proxy comes from its address.

- **the head's size**: at most `MAX_HEAD_BYTES` (64 KiB: the request line and every header);
  past it the answer is 431 and the connection is closed. httptools joins a header's pieces
  (and uvicorn the URL's) with `bytes +=`, a copy of all that came before at every read: a
  head of 44 MB in 10 s held the event loop, every request of the process waiting (a
  `/healthz` took 10.8 s), and the whole head in memory until the deadline.

The body's deadline is the guard's (api/guard.py `read_body`, `SLOTGRAPH_BODY_TIMEOUT_SECONDS`):
it answers 408 problem+json in the API's own shape.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import struct
import sys
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from slotgraph.addresses import visitor
from slotgraph.settings import Settings

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Bounds:
    head_seconds: float
    per_address: int  # 0: not counted
    trusted: tuple[_Network, ...] | None  # None: every address is a trusted proxy ("*")
    send_seconds: float = 30.0  # a stretch
    send_min_rate: int = 16 * 1024  # bytes a second, averaged over a stretch
    send_max_seconds: float = 300.0


@cache
def bounds() -> Bounds:
    """Read once per server process, from the environment (`serve --workers N` starts each
    process from an import path, so the protocol cannot be handed its settings)."""
    settings = Settings()
    return Bounds(
        head_seconds=settings.header_timeout_seconds,
        send_seconds=settings.send_timeout_seconds,
        send_min_rate=settings.send_min_bytes_per_second,
        send_max_seconds=settings.send_max_seconds,
        per_address=settings.max_connections_per_address,
        trusted=trusted_networks(settings.forwarded_allow_ips),
    )


def trusted_networks(setting: str | None) -> tuple[_Network, ...] | None:
    names = [n.strip() for n in (setting or "").split(",") if n.strip()]
    if "*" in names:
        return None
    networks = []
    for name in names:  # what uvicorn takes besides addresses (a Unix socket's name) is no peer's
        try:
            networks.append(ipaddress.ip_network(name, strict=False))
        except ValueError:
            continue
    return tuple(networks)


def address_key(address: str, bounds: Bounds) -> str | None:
    """What a connection from `address` is counted under, or None when it is not counted."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None  # a Unix socket's peer: the host itself
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # an IPv4 client of a dual-stack socket: not a /64 shared by all
    if bounds.trusted is None or ip.is_loopback or any(ip in n for n in bounds.trusted):
        return None
    return visitor(str(ip))  # IPv6: its /64, as the rate limits count it


def _answer(status: int, reason: str, code: str, detail: str) -> bytes:
    body = json.dumps(
        {
            "type": f"urn:slotgraph:problem:{code}",
            "title": reason,
            "status": status,
            "detail": detail,
            "code": code,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
    )
    if status == 503:
        head += "retry-after: 10\r\n"
    return head.encode() + b"\r\n" + body


HEAD_TIMEOUT = _answer(
    408,
    "Request Timeout",
    "request_timeout",
    "The request's head did not arrive in time (the server's header_timeout_seconds).",
)
HEAD_TOO_LARGE = _answer(
    431,
    "Request Header Fields Too Large",
    "headers_too_large",
    "The request line and headers may be at most 65536 bytes.",
)
MAX_HEAD_BYTES = 64 * 1024
LINGER_SECONDS = 2.0
TOO_MANY = _answer(
    503,
    "Service Unavailable",
    "too_many_connections",
    "Too many connections are open from your address (max_connections_per_address).",
)
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
_ACKED_AT = 120  # tcpi_bytes_acked's offset in Linux's struct tcp_info (since Linux 4.1)


def tcp_info_option(platform: str = sys.platform) -> int | None:
    """TCP_INFO where its struct is Linux's. FreeBSD has the option too, with a layout of its
    own: what stands at Linux's offset there is no count of acknowledged bytes, and read as one
    it decides whether a slow reader is reset."""
    return getattr(socket, "TCP_INFO", None) if platform.startswith("linux") else None


_TCP_INFO = tcp_info_option()
_OPEN: dict[str, int] = {}  # this process's connections per counted address


def acked_bytes(sock: Any) -> int | None:
    """The bytes the peer has acknowledged on `sock` (Linux's `tcpi_bytes_acked`), or None
    where the kernel does not say (another system, or a kernel whose struct stops before it)."""
    if _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _ACKED_AT + 8)
    except OSError:
        return None
    return int(struct.unpack_from("Q", info, _ACKED_AT)[0]) if len(info) >= _ACKED_AT + 8 else None


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the head's deadline, the answer's minimum rate and the
    per-address count."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bounds = bounds()
        self._deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None
        self._send_started = 0.0  # when the answer outran the client (the total's clock)
        self._sending: Any = None  # the request whose answer the total's clock is for
        self._stretch_started = 0.0
        self._level = 0  # the write buffer's size when last looked at
        self._moved = 0  # bytes that left the process in this stretch
        self._acked: int | None = None  # the client's kernel's count when the stretch began
        self._running: Any = None  # the request whose answer is being sent (uvicorn's cycle)
        self._counted: str | None = None
        self._head_begun = False
        self._head_bytes = 0  # of the head being read, after the read it began in
        self._head_refused = False
        self._began_in_read = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._bounds.per_address and self.client:
            key = address_key(self.client[0], self._bounds)
            if key is not None:
                self._counted = key
                _OPEN[key] = _OPEN.get(key, 0) + 1
                if _OPEN[key] > self._bounds.per_address:
                    transport.write(TOO_MANY)
                    transport.close()
                    return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_send()
        self._uncount()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The connection is the WebSocket protocol's from here (when a WebSocket library is
        # installed): this protocol hears no connection_lost to uncount it.
        self._disarm()
        self._disarm_send()
        self._uncount()
        super().handle_websocket_upgrade()

    def _uncount(self) -> None:
        if self._counted is not None:
            left = _OPEN.get(self._counted, 1) - 1
            if left > 0:
                _OPEN[self._counted] = left
            else:
                _OPEN.pop(self._counted, None)
            self._counted = None

    def data_received(self, data: bytes) -> None:
        # Only a read that is all head counts: one that began a head also held the bytes before
        # it (the last request's, pipelined), so a head may reach MAX_HEAD_BYTES and one read
        # more (256 KiB at most) before it is refused.
        if self._head_refused:
            return  # what comes after the 431 is read and dropped until the close
        self._began_in_read = False
        super().data_received(data)
        if self._head_begun and not self._began_in_read and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head()

    def _refuse_head(self) -> None:
        """431, then our side of the connection shut; the rest the client sends is dropped for
        LINGER_SECONDS, then it is closed (closed at once, with the client's bytes unread, the
        kernel sends a reset and the client loses the answer). Behind an answer still being sent
        (pipelining) the connection is reset instead: a 431 written now would land inside that
        answer's length (tests/test_head_bound_pipelined.py)."""
        self._head_refused = True
        self._disarm()
        if self._running is not None and not self._running.response_complete:
            self._reset()
            return
        self.transport.write(HEAD_TOO_LARGE)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def on_message_begin(self) -> None:
        self._head_begun = True
        self._began_in_read = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head_begun = False
        if self.transport.get_write_buffer_size() == 0:  # the last answer drained: a new clock
            self._disarm_send()
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # uvicorn keeps only the last request it parsed (`self.cycle`): with pipelining, that is
        # one still queued, not the one whose answer is being sent.
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def pause_writing(self) -> None:
        """The answer outran the client: from now on it must move (see _send_check)."""
        super().pause_writing()
        self._look()
        if self._send_deadline is None:
            self._send_started = self._stretch_started = self.loop.time()
            self._moved, self._acked = 0, self._kernel_acked()
            b = self._bounds  # a total shorter than a stretch ends the first one
            self._send_deadline = self.loop.call_later(
                min(b.send_seconds, b.send_max_seconds), self._send_check
            )
        elif self._running is not self._sending:
            # A pipelined answer, written once the one before it left the process (uvicorn
            # waits for the buffer to drain before an answer's first write): its own total,
            # as on a connection that asks again once its answer came. The stretch goes on
            # (the client's rate is the connection's).
            self._send_started = self.loop.time()
        self._sending = self._running

    def resume_writing(self) -> None:
        self._look()
        super().resume_writing()

    def _kernel_acked(self) -> int | None:
        """The bytes the client has acknowledged on this connection, from the kernel (Linux's
        TCP_INFO `tcpi_bytes_acked`), or None where it does not say. What the client took,
        whatever sits in the kernel's send buffer: the process's buffer alone moves in bursts
        of up to a third of that buffer (megabytes), the kernel's wake-ups."""
        sock = self.transport.get_extra_info("socket")
        return None if sock is None else acked_bytes(sock)

    def _look(self) -> None:
        """Where the kernel does not count (_kernel_acked), what left the write buffer since it
        was last looked at. Looked at when it outruns the client (just after a write), when it
        drains (before the next write) and at each stretch's end: uvicorn writes nothing while it
        is paused, so a fall in size is what the client took. (A write between a resume and the
        next look hides the bytes that left just before it: the count errs low, never high.)"""
        size = self.transport.get_write_buffer_size()
        self._moved += max(0, self._level - size)
        self._level = size

    def _disarm_send(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _send_check(self) -> None:
        """A stretch's end: the answer drained (the next one that outruns the client starts
        anew), or it moved at least the minimum and is within its total, or it is reset."""
        self._send_deadline = None
        self._look()
        if self.transport.get_write_buffer_size() == 0:
            return
        b = self._bounds
        now = self.loop.time()
        left = self._send_started + b.send_max_seconds - now
        # A stretch cut short by a total that a pipelined answer then restarted owes its length's
        # share of the minimum only.
        owed = b.send_min_rate * min(b.send_seconds, now - self._stretch_started)
        acked = self._kernel_acked()
        moved = self._moved if acked is None or self._acked is None else acked - self._acked
        if moved < owed or left <= 0:
            self._reset()
            return
        self._moved, self._acked, self._stretch_started = 0, acked, now
        self._send_deadline = self.loop.call_later(min(b.send_seconds, left), self._send_check)

    def _reset(self) -> None:
        # A reset, not a close: a close (ours, or the head's or keep-alive's deadline) waits for
        # the process's buffer to drain, which a client that does not read never lets happen;
        # and an abort alone still leaves the kernel's buffer (megabytes) queued before a FIN
        # that the client never reads either. SO_LINGER 0 makes it a reset: both are freed.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.transport.abort()
        # The answer being sent, and any request queued behind it (pipelining), is told at once:
        # its send returns without writing (uvicorn hears of the abort only on the loop's next
        # turn, and a write to the aborted transport in between raised RuntimeError, logged as
        # an error in the ASGI application).
        for cycle in (self._running, self.cycle, *(c for c, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle now: the next head's clock starts
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self._bounds.head_seconds, self._head_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            self.transport.write(HEAD_TIMEOUT)
        self.transport.close()
