"""The client address the limits count: the connection's, unless a proxy is trusted.

`X-Forwarded-For` is anyone's to write. Sent straight to `slotgraph serve` (no proxy trusted),
it must not change the address a visitor is counted under (docs/security.md#rate-limits):
else one client rotates the header and is never limited. With `SLOTGRAPH_FORWARDED_ALLOW_IPS`
naming the proxy, the proxy's header names the visitor.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.system.conftest import start_server, stop_server

pytestmark = pytest.mark.system

LIMIT = "3"  # unknown keys a minute per address (SLOTGRAPH_BAD_KEY_LIMIT)


async def unknown_keys(url: str, addresses: list[str]) -> list[int]:
    """One made-up key per request, each with `X-Forwarded-For: address`."""
    async with httpx.AsyncClient(base_url=url) as http:
        return [
            (
                await http.get(
                    "/v1/ping",
                    headers={"Authorization": f"Bearer pk_made_up_{i}", "X-Forwarded-For": a},
                )
            ).status_code
            for i, a in enumerate(addresses)
        ]


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    backend, url = fresh_database
    rotating = [f"198.51.100.{i}" for i in range(1, 7)]
    env = {"SLOTGRAPH_BAD_KEY_LIMIT": LIMIT}
    # No proxy trusted (the default): this client is one address whatever the header says.
    server = await start_server(url, backend, tmp_path / "plain.log", env=env)
    try:
        assert await unknown_keys(server.url, rotating) == [401] * 3 + [429] * 3
    finally:
        stop_server(server)
    # Behind a proxy on this host: its header names the visitor, one count per visitor.
    env["SLOTGRAPH_FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    server = await start_server(url, backend, tmp_path / "proxied.log", env=env)
    try:
        assert await unknown_keys(server.url, rotating) == [401] * 6
        assert await unknown_keys(server.url, ["203.0.113.5"] * 4) == [401] * 3 + [429]
    finally:
        stop_server(server)
