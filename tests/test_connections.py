"""Which address a connection is counted under (api/connections.py `address_key`): one visitor
is one address, an IPv6 visitor its /64 (it may hold all of it), and the host itself and the
named proxies are not counted (every visitor behind a proxy comes from its address)."""

from __future__ import annotations

import pytest

from slotgraph.api.connections import Bounds, address_key, trusted_networks

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
