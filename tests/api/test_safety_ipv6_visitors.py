"""An IPv6 client is counted as its /64 by the rate limits (docs/security.md "Rate limits").

An IPv6 host is given a /64 at least and may send each request from another of its 2^64
addresses. The limits counted the address itself: from rotating addresses of one /64, the
public key's 600 a minute and the 20 unknown keys a minute per address did not limit at all.
Now an IPv6 address counts as its /64 (slotgraph/addresses.py), as the connections per address did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.addresses import visitor
from slotgraph.services import apps
from tests.api.conftest import Clock, make_api
from tests.api.test_safety_bad_keys import LIMIT, SETTINGS, Net, bearer
from tests.conftest import clean

PUBLIC_LIMIT = 3


@pytest.fixture
async def net(engine: AsyncEngine) -> AsyncIterator[tuple[Net, apps.CreatedApp]]:
    await clean(engine)
    http, created = await make_api(engine, Clock(), SETTINGS)
    r = await http.put(
        "/v1/app",
        json={"rate_limits": {"public_per_minute": PUBLIC_LIMIT}},
        headers=bearer(created.secret_key),
    )
    assert r.status_code == 200, r.text
    await http.aclose()
    net = Net(http._transport.app)  # type: ignore[attr-defined]
    yield net, created
    await net.close()


def rotating(n: int, prefix: str = "2001:db8:7:9") -> list[str]:
    """`n` addresses of one /64, each a new one, as a host may send from."""
    return [f"{prefix}:{i:x}:{i * 7 % 65536:x}:1:{i + 1:x}" for i in range(n)]


async def test_the_public_keys_limit_counts_an_ipv6_client_by_its_slash_64(
    net: tuple[Net, apps.CreatedApp],
) -> None:
    n, created = net
    statuses = [
        (await n.at(ip).get("/v1/resources", headers=bearer(created.public_key))).status_code
        for ip in rotating(PUBLIC_LIMIT + 2)
    ]
    # The sliding window may let one more through if the minute turns now.
    assert statuses[:PUBLIC_LIMIT] == [200] * PUBLIC_LIMIT
    assert statuses[-1] == 429, statuses
    # Another /64 is another visitor.
    other = await n.at("2001:db8:7:a::1").get("/v1/resources", headers=bearer(created.public_key))
    assert other.status_code == 200


async def test_unknown_keys_from_rotating_ipv6_addresses_are_limited(
    net: tuple[Net, apps.CreatedApp],
) -> None:
    n, _ = net
    statuses = [
        (await n.at(ip).get("/v1/resources", headers=bearer(f"sk_guess{i}"))).status_code
        for i, ip in enumerate(rotating(LIMIT + 2))
    ]
    assert statuses[:LIMIT] == [401] * LIMIT
    assert statuses[-1] == 429, statuses


def test_who_an_address_is_counted_as() -> None:
    assert visitor("198.51.100.9") == "198.51.100.9"
    assert visitor("::ffff:198.51.100.9") == "198.51.100.9"  # IPv4 on a dual-stack socket
    assert visitor("2001:db8:7:9:1:2:3:4") == "2001:db8:7:9::/64"
    assert visitor("2001:db8:7:9::ffff") == visitor("2001:db8:7:9:abcd::1")
    assert visitor("unknown") == "unknown"
    assert visitor("x" * 100) == "x" * 64
