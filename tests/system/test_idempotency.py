"""Retries with one Idempotency-Key against real server processes (2 on PostgreSQL).

50 identical requests with one key are fired at once. Each answer is the first answer, or 409
idempotency_key_in_flight while that request still runs; a retry of those gets the first answer
too. The database holds exactly one booking.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.system.conftest import Server
from tests.system.test_concurrency import database_says, setup

# Two server processes on PostgreSQL (`--workers 2`, two_on_postgresql): the retries race
# through both.
pytestmark = [pytest.mark.system, pytest.mark.two_processes]


async def test_fifty_retries_make_one_booking(server: Server) -> None:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as http:
        resource_id, client_id = await setup(http, server)
        body = {
            "resource_id": resource_id,
            "client_id": client_id,
            "start_time": "2031-01-06T09:00:00Z",
            "end_time": "2031-01-06T10:00:00Z",
        }
        headers = {**server.headers(), "Idempotency-Key": "order-7781"}

        async def post() -> httpx.Response:
            return await http.post(f"{server.url}/v1/bookings", headers=headers, json=body)

        answers = list(await asyncio.gather(*(post() for _ in range(50))))
        in_flight = [a for a in answers if a.status_code == 409]
        for a in in_flight:
            assert a.json()["code"] == "idempotency_key_in_flight", a.text
        done = [a for a in answers if a.status_code != 409]
        assert done, "every request was told the key is in flight"
        # The retries of the in-flight ones, after the first request has finished.
        retried = list(await asyncio.gather(*(post() for _ in in_flight)))
        final = done + retried
        assert len(final) == 50
        assert {a.status_code for a in final} == {201}, [a.text for a in final]
        bodies: list[Any] = [a.json() for a in final]
        assert all(b == bodies[0] for b in bodies)
        assert len({a.headers["location"] for a in final}) == 1
        assert sum("idempotent-replayed" not in a.headers for a in final) == 1

    rows = await database_says(server, "SELECT id FROM bookings")
    assert len(rows) == 1
    assert uuid.UUID(str(rows[0][0])) == uuid.UUID(bodies[0]["booking_id"])
    keys = await database_says(server, "SELECT key, status_code FROM idempotency_keys")
    assert [(k, s) for k, s in keys] == [("order-7781", 201)]
