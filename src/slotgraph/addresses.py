"""Who a client address stands for, wherever visitors are told apart: the rate limits and the
bad-key limit (api/ratelimit.py), the connections per address (api/connections.py) and whose an
idempotent answer is (services/idempotency.py `caller`). Pure, so services may import it.

An IPv4 address is one visitor (or one NAT). An IPv6 host is given a /64 at least (SLAAC, a
home router's prefix) and may send from any of its 2^64 addresses, a new one per request if it
likes: counted per address, it was never limited. So an IPv6 address is counted as its /64,
and an IPv4 client of a dual-stack socket (`::ffff:a.b.c.d`) as its IPv4 address.
"""

from __future__ import annotations

import ipaddress

MAX_NAME = 64  # what is not an address (a Unix socket's name) is counted by its first 64 chars


def visitor(address: str) -> str:
    """The name `address` is counted under: itself (IPv4), its /64 (IPv6), or its first
    MAX_NAME characters when it is no address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:MAX_NAME]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
