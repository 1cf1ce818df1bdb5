"""Which address a connection is counted under (api/connections.py `address_key`): one visitor
is one address, an IPv6 visitor its /64 (it may hold all of it), and the host itself and the
named proxies are not counted (every visitor behind a proxy comes from its address)."""

from __future__ import annotations

import inspect
import socket
import sys

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from slotgraph.api.connections import (
    BoundedHttpToolsProtocol,
    Bounds,
    acked_bytes,
    address_key,
    tcp_info_option,
    trusted_networks,
)

BOUNDS = Bounds(
    head_seconds=10, per_address=64, trusted=trusted_networks("10.0.0.0/8, 192.0.2.7, unix:x")
)


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # the same /64
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        # An IPv4 visitor of a dual-stack socket is its IPv4 address, not ::ffff:0:0/64, which
        # every IPv4 visitor would share.
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("127.0.0.1", None),
        ("127.8.0.1", None),
        ("::1", None),
        ("::ffff:127.0.0.1", None),
        ("10.20.30.40", None),  # a named network of proxies
        ("192.0.2.7", None),  # a named proxy
        ("192.0.2.8", "192.0.2.8"),
        ("not-an-address", None),  # a Unix socket's peer
    ],
)
def test_counted_as(address: str, counted_as: str | None) -> None:
    assert address_key(address, BOUNDS) == counted_as


def test_every_proxy_trusted_counts_no_one() -> None:
    assert address_key("203.0.113.5", Bounds(10, 64, trusted_networks("*"))) is None


def test_the_kernels_count_is_read_only_where_its_struct_is_linuxs() -> None:
    # FreeBSD defines TCP_INFO too, with another struct tcp_info: Linux's offset is not its count
    assert tcp_info_option("freebsd14") is None
    assert tcp_info_option("darwin") is None
    assert tcp_info_option("win32") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's TCP_INFO")
def test_the_kernels_count_is_the_bytes_the_peer_acknowledged() -> None:
    """What `acked_bytes` reads is the count of bytes the other end took, in Linux's struct
    (it counts the handshake's SYN too: the difference is the data): a wrong offset reads
    another field (tcpi_max_pacing_rate before it, tcpi_bytes_received after it)."""
    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    with listener, sender, receiver:
        sent = acked_bytes(sender)
        assert sent is not None
        sender.sendall(b"x" * 300_000)
        got = 0
        while got < 300_000:
            got += len(receiver.recv(65536))
        # an answer carries the acknowledgement of all that came before it: once it is read,
        # the sender's kernel has counted it (no waiting on the clock)
        receiver.sendall(b"!")
        assert sender.recv(1) == b"!"
        assert acked_bytes(sender) == sent + 300_000


def test_the_protocol_overrides_methods_uvicorn_still_has() -> None:
    """Ten of uvicorn's methods are overridden (ADR 0012), one of them private: an upgrade that
    renames one leaves the override never called, silently (the pipelined reset's error came
    back, tests/system/test_slow_readers.py). This fails first, and names it."""
    overridden = {
        "connection_made",
        "connection_lost",
        "data_received",
        "handle_websocket_upgrade",
        "on_message_begin",
        "on_headers_complete",
        "on_response_complete",
        "pause_writing",
        "resume_writing",
        "_start_asgi_task",
    }
    ours = {name for name in vars(BoundedHttpToolsProtocol) if not name.startswith("__")}
    assert {name for name in ours if hasattr(HttpToolsProtocol, name)} == overridden
    assert list(inspect.signature(HttpToolsProtocol._start_asgi_task).parameters) == [
        "self",
        "cycle",
        "app",
    ]
