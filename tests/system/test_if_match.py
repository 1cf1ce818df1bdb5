"""No lost updates through real server processes: two processes on one database (each backend),
many clients editing the same booking or resource at once with the `If-Match` they read.

Exactly one change wins; every other one is 412 precondition_failed naming the version that won,
and nothing it sent is stored. With `require_if_match` on, a change without `If-Match` is 428.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.system.conftest import Server
from tests.system.test_concurrency import setup

pytestmark = pytest.mark.system

EDITORS = 12  # concurrent clients, spread over the two processes


# The module's tests share two processes on one fresh database (conftest.two_servers): each
# test edits its own resource and booking, and every edit sends `If-Match`, so one test's
# `require_if_match` changes nothing for the other.


async def edit_at_once(
    http: httpx.AsyncClient,
    servers: list[Server],
    method: str,
    path: str,
    bodies: list[dict[str, Any]],
    etag: str,
) -> list[httpx.Response]:
    """Every body sent at once with the same `If-Match`, the i-th to process i modulo 2."""

    async def one(i: int, body: dict[str, Any]) -> httpx.Response:
        server = servers[i % len(servers)]
        headers = {**server.headers(), "If-Match": etag}
        return await http.request(method, f"{server.url}{path}", headers=headers, json=body)

    return list(await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies))))


async def a_booking(http: httpx.AsyncClient, server: Server, day: str) -> tuple[str, str]:
    """A resource with an hour booked on `day`: its id and the booking's path."""
    resource_id, client_id = await setup(http, server)
    r = await http.post(
        f"{server.url}/v1/bookings",
        headers=server.headers(),
        json={
            "resource_id": resource_id,
            "client_id": client_id,
            "start_time": f"{day}T09:00:00Z",
            "end_time": f"{day}T10:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    return resource_id, f"/v1/bookings/{r.json()['booking_id']}"


def one_winner(answers: list[httpx.Response], version_after: int) -> httpx.Response:
    won = [a for a in answers if a.status_code == 200]
    lost = [a for a in answers if a.status_code != 200]
    assert len(won) == 1, [a.text for a in answers]
    for a in lost:
        assert a.status_code == 412, a.text
        assert a.headers["content-type"] == "application/problem+json"
        problem = a.json()
        assert problem["code"] == "precondition_failed"
        assert problem["current_version"] == version_after, problem
    assert won[0].json()["version"] == version_after
    return won[0]


async def test_concurrent_edits_of_a_booking_and_a_resource_lose_nothing(
    two_servers: list[Server],
) -> None:
    first = two_servers[0]
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=50)) as http:
        resource_id, booking = await a_booking(http, first, "2031-03-03")

        # A booking: everyone read version 1; each sends its own details.
        read = await http.get(f"{two_servers[1].url}{booking}", headers=first.headers())
        assert read.headers["etag"] == '"1"'
        bodies = [{"details": f"editor {i}"} for i in range(EDITORS)]
        answers = await edit_at_once(http, two_servers, "PUT", booking, bodies, '"1"')
        winner = one_winner(answers, version_after=2)
        stored = (await http.get(f"{first.url}{booking}", headers=first.headers())).json()
        assert stored["details"] == winner.json()["details"]
        assert stored["version"] == 2
        history = await http.get(f"{first.url}{booking}/history", headers=first.headers())
        assert len(history.json()["data"]) == 2, history.text  # created, and one change

        # A resource: the same, with its name.
        resource = f"/v1/resources/{resource_id}"
        read = await http.get(f"{two_servers[1].url}{resource}", headers=first.headers())
        etag = read.headers["etag"]
        version = int(etag.strip('"'))
        bodies = [{"name": f"Room {i}"} for i in range(EDITORS)]
        answers = await edit_at_once(http, two_servers, "PUT", resource, bodies, etag)
        winner = one_winner(answers, version_after=version + 1)
        stored = (await http.get(f"{first.url}{resource}", headers=first.headers())).json()
        assert stored["name"] == winner.json()["name"]

        # A cancel races an edit, each on its own process: one wins, the other is told so.
        a, b = two_servers
        answers = list(
            await asyncio.gather(
                http.delete(f"{a.url}{booking}", headers={**a.headers(), "If-Match": '"2"'}),
                http.put(
                    f"{b.url}{booking}",
                    headers={**b.headers(), "If-Match": '"2"'},
                    json={"details": "late"},
                ),
            )
        )
        one_winner(answers, version_after=3)


async def test_require_if_match_is_428_through_a_server(two_servers: list[Server]) -> None:
    server = two_servers[0]  # the process that changes the setting sees it at once (deps.py)
    async with httpx.AsyncClient(timeout=120) as http:
        _, path = await a_booking(http, server, "2031-03-04")
        booking = f"{server.url}{path}"
        on = await http.put(
            f"{server.url}/v1/app", headers=server.headers(), json={"require_if_match": True}
        )
        assert on.status_code == 200, on.text
        bare = await http.put(booking, headers=server.headers(), json={"details": "no tag"})
        assert bare.status_code == 428, bare.text
        assert bare.json()["code"] == "precondition_required"
        assert bare.json()["current_version"] == 1
        cancel = await http.delete(booking, headers=server.headers())
        assert cancel.status_code == 428
        tagged = await http.put(
            booking, headers={**server.headers(), "If-Match": '"1"'}, json={"details": "tagged"}
        )
        assert tagged.status_code == 200, tagged.text
        assert tagged.json()["details"] == "tagged"
        # Creating needs no precondition.
        made = await http.post(
            f"{server.url}/v1/clients", headers=server.headers(), json={"name": "New"}
        )
        assert made.status_code == 201
