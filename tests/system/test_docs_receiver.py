"""docs/webhooks.md's receiver for your own machine, run as written there (its Python block,
copied out of the page) against a real `serve` with private networks allowed: it takes what
slotgraph sends, prints each event, and refuses a request that slotgraph did not sign. README's
tour (step 8) points there for a receiver on one's own machine; before, the page named the
setting and had no receiver."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import SECRET, Server, free_port, serving

pytestmark = pytest.mark.system

DOC = Path(__file__).parents[2] / "docs" / "webhooks.md"


def receiver_source(port: int) -> str:
    section = DOC.read_text().split("### A receiver on your own machine", 1)[1]
    source = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert '("127.0.0.1", 9000)' in source  # the port the page's curl names
    return source.replace('("127.0.0.1", 9000)', f'("127.0.0.1", {port})')


@pytest.fixture
async def server(fresh_database: tuple[str, str], tmp_path: Path) -> AsyncIterator[Server]:
    env = {"SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "SLOTGRAPH_MAIL_DIR": str(tmp_path)}
    async with serving(fresh_database, tmp_path, env=env) as srv:
        yield srv


async def _deliveries(http: httpx.AsyncClient, hook: str, count: int) -> list[dict[str, object]]:
    """The endpoint's attempts, once there are `count` (up to 60 s: the worker polls)."""
    deadline = time.monotonic() + 60
    while True:
        r = await http.get(f"/v1/webhooks/{hook}/deliveries")
        data: list[dict[str, object]] = r.json()["data"]
        if len(data) >= count or time.monotonic() > deadline:
            return data
        await asyncio.sleep(0.2)


async def test_the_pages_receiver_takes_signed_events_and_refuses_others(
    server: Server, tmp_path: Path
) -> None:
    port = free_port()
    script = tmp_path / "receiver.py"
    script.write_text(receiver_source(port))
    headers = {"Authorization": f"Bearer {SECRET}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        made = await http.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/hook"})
        assert made.status_code == 201, made.text
        hook, secret = made.json()["webhook_id"], made.json()["secret"]
        receiver = subprocess.Popen(
            [sys.executable, str(script)],
            env={**os.environ, "SECRET": secret},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            async with httpx.AsyncClient() as outsider:
                for _ in range(300):  # until it listens (up to 30 s)
                    try:
                        forged = await outsider.post(
                            f"http://127.0.0.1:{port}/hook",
                            content=b'{"type": "booking.confirmed"}',
                            headers={
                                "webhook-id": "msg_1",
                                "webhook-timestamp": str(int(time.time())),
                                "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl",
                            },
                        )
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            assert forged.status_code == 401  # not signed with the secret
            assert (await http.post(f"/v1/webhooks/{hook}/test")).status_code == 202
            resource = await http.post(
                "/v1/resources", json={"name": "Dr. Berg", "timezone": "Europe/Oslo"}
            )
            booking = {
                "resource_id": resource.json()["resource_id"],
                "start_time": "2030-05-18T10:00:00Z",
                "end_time": "2030-05-18T11:00:00Z",
                "customer": {"name": "Ann", "email": "ann@example.com"},
            }
            booked = await http.post("/v1/bookings", json=booking)
            assert booked.status_code == 201, booked.text
            attempts = await _deliveries(http, hook, 2)
        finally:
            receiver.terminate()
            printed, _ = receiver.communicate(timeout=30)
    assert sorted(a["status_code"] for a in attempts) == [204, 204], attempts
    assert sorted(printed.splitlines()) == ["booking.confirmed confirmed", "webhook.test None"]
