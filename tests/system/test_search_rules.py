"""Each server process keeps the rules its searches built (services/search_rules.py): an edit
made through one process is read by the next search on the other at once, on both backends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.system.conftest import Server

# Two server processes on PostgreSQL (`--workers 2`, two_on_postgresql): each has its own cache, and
# an edit made through one server must reach both of the other's.
pytestmark = [pytest.mark.system, pytest.mark.two_processes]

THURSDAY = {"start": "2031-05-01T00:00:00Z", "end": "2031-05-02T00:00:00Z", "duration": "PT1H"}
SEARCHES = 6  # per process and rules: a PostgreSQL server has two workers, each its own cache


async def offered(http: httpx.AsyncClient, server: Server, resource_id: str) -> set[str]:
    """The start hours each of several searches on `server` offers (one set if all agree)."""
    answers = set()
    for _ in range(SEARCHES):
        r = await http.get(
            f"{server.url}/v1/availability",
            headers=server.headers(),
            params={"resource_id": resource_id, **THURSDAY},
        )
        assert r.status_code == 200, r.text
        answers.add(" ".join(s["start_time"][11:16] for s in r.json()["data"]))
    return answers


async def test_an_edit_on_one_process_is_read_on_the_other(two_servers: list[Server]) -> None:
    one, other = two_servers
    async with httpx.AsyncClient(timeout=30) as http:
        made = await http.post(
            f"{one.url}/v1/resources",
            headers=one.headers(),
            json={
                "name": "Edited",
                "timezone": "UTC",
                "weekly_hours": {"thu": [["09:00", "12:00"]]},
                "slot_step": "PT1H",
            },
        )
        assert made.status_code == 201, made.text
        resource_id = made.json()["resource_id"]
        rules = f"/v1/resources/{resource_id}/availability"

        async def edit(server: Server, body: dict[str, Any]) -> None:
            r = await http.put(f"{server.url}{rules}", headers=server.headers(), json=body)
            assert r.status_code == 200, r.text

        first = {"09:00 10:00 11:00"}
        assert await offered(http, one, resource_id) == first
        assert await offered(http, other, resource_id) == first

        await edit(one, {"weekly_hours": {"thu": [["14:00", "16:00"]]}})
        assert await offered(http, other, resource_id) == {"14:00 15:00"}
        assert await offered(http, one, resource_id) == {"14:00 15:00"}

        await edit(other, {"exceptions": [{"date": "2031-05-01", "hours": [["08:00", "09:00"]]}]})
        assert await offered(http, one, resource_id) == {"08:00"}
        assert await offered(http, other, resource_id) == {"08:00"}

        await edit(one, {"weekly_hours": {"thu": [["09:00", "12:00"]]}, "exceptions": []})
        assert await offered(http, other, resource_id) == first
        assert await offered(http, one, resource_id) == first
