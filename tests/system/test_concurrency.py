"""Never double-booked, under real concurrency against real server processes.

Requests are fired together with asyncio.gather over many connections; nothing sleeps to win a
race. Afterwards the database itself is asked what it holds, about the test's own resource. Each
test runs against one server process per backend, and against two server processes that share one
SQLite file (the processes are shared by the module's tests).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from slotgraph.db.engine import create_engine
from tests.system.conftest import Server

# Two server processes on PostgreSQL (`--workers 2`, two_on_postgresql): the requests race through
# both, as in production.
pytestmark = [pytest.mark.system, pytest.mark.two_processes]

START = datetime(2031, 1, 6, 9, 0, tzinfo=UTC)


async def setup(http: httpx.AsyncClient, server: Server) -> tuple[str, str]:
    """A new resource and a new client (the server may already hold other tests' data)."""
    r = await http.post(
        f"{server.url}/v1/resources",
        headers=server.headers(),
        json={"name": "Contested", "timezone": "Europe/Oslo"},
    )
    assert r.status_code == 201, r.text
    c = await http.post(
        f"{server.url}/v1/clients",
        headers=server.headers(),
        json={"name": "Many", "email": f"many-{uuid.uuid4().hex[:12]}@example.com"},
    )
    assert c.status_code == 201, c.text
    return r.json()["resource_id"], c.json()["client_id"]


async def fire(
    http: httpx.AsyncClient, servers: list[Server], bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    """All at once; the i-th request goes to server i modulo their number."""

    async def one(server: Server, body: dict[str, Any]) -> httpx.Response:
        return await http.post(f"{server.url}/v1/bookings", headers=server.headers(), json=body)

    return list(
        await asyncio.gather(*(one(servers[i % len(servers)], b) for i, b in enumerate(bodies)))
    )


def stored_id(server: Server, value: str) -> str:
    """An id as the backend stores it in SQL (SQLite: 32 hex digits, no dashes)."""
    return value.replace("-", "") if server.backend == "sqlite" else value


async def database_says(server: Server, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(server.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


def client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    return httpx.AsyncClient(limits=limits, timeout=120)


async def test_many_requests_for_one_slot_exactly_one_wins(servers: list[Server]) -> None:
    server = servers[0]
    async with client() as http:
        resource, client_id = await setup(http, server)
        body = {
            "resource_id": resource,
            "client_id": client_id,
            "start_time": START.isoformat(),
            "end_time": (START + timedelta(hours=1)).isoformat(),
        }
        answers = await fire(http, servers, [body] * 150)
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 1, 409: 149}, [r.text for r in answers if r.status_code >= 500][:3]
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"slot_unavailable"}
    rid = stored_id(server, resource)
    rows = await database_says(
        server,
        "SELECT COUNT(*) FROM booking_holds WHERE resource_id = :r AND active = :t",
        r=rid,
        t=True,
    )
    assert rows[0][0] == 1
    rows = await database_says(
        server, "SELECT COUNT(*) FROM bookings WHERE resource_id = :r", r=rid
    )
    assert rows[0][0] == 1


async def test_last_five_seats_go_to_exactly_five(servers: list[Server]) -> None:
    server = servers[0]
    async with client() as http:
        resource, client_id = await setup(http, server)
        owner = await http.post(
            f"{server.url}/v1/bookings",
            headers=server.headers(),
            json={
                "graph": "group_owner",
                "resource_id": resource,
                "max_seats": 20,
                "start_time": START.isoformat(),
                "end_time": (START + timedelta(hours=1)).isoformat(),
            },
        )
        assert owner.status_code == 201, owner.text
        seat = {
            "graph": "group_customer",
            "owner_booking_id": owner.json()["booking_id"],
            "client_id": client_id,
        }
        first = await fire(http, servers, [seat] * 15)
        assert Counter(r.status_code for r in first) == {201: 15}
        answers = await fire(http, servers, [seat] * 100)
        final = await http.get(
            f"{server.url}/v1/bookings/{owner.json()['booking_id']}", headers=server.headers()
        )
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 5, 409: 95}, [r.text for r in answers if r.status_code >= 500][:3]
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"seats_full"}
    assert (final.json()["seats_taken"], final.json()["seats_left"]) == (20, 0)
    oid = stored_id(server, owner.json()["booking_id"])
    rows = await database_says(
        server,
        "SELECT COUNT(*) FROM bookings WHERE graph = 'group_customer' AND status = 'confirmed'"
        " AND owner_booking_id = :o",
        o=oid,
    )
    assert rows[0][0] == 20
    taken = await database_says(
        server, "SELECT seats_taken FROM bookings WHERE graph = 'group_owner' AND id = :o", o=oid
    )
    assert [tuple(t) for t in taken] == [(20,)]


async def test_random_overlapping_requests_never_overlap(servers: list[Server]) -> None:
    server = servers[0]
    rng = random.Random(20261122)
    async with client() as http:
        resource, client_id = await setup(http, server)
        bodies = []
        for _ in range(120):
            start = START + timedelta(minutes=15 * rng.randrange(0, 40))
            end = start + timedelta(minutes=15 * rng.randrange(1, 8))
            bodies.append(
                {
                    "resource_id": resource,
                    "client_id": client_id,
                    "start_time": start.isoformat(),
                    "end_time": end.isoformat(),
                }
            )
        answers = await fire(http, servers, bodies)
        listed = await http.get(
            f"{server.url}/v1/bookings",
            headers=server.headers(),
            params={"limit": 200, "resource_id": resource},
        )
    assert all(r.status_code in (201, 409) for r in answers), [
        r.text for r in answers if r.status_code not in (201, 409)
    ][:3]
    won = sorted(
        (r.json()["start_time"], r.json()["end_time"]) for r in answers if r.status_code == 201
    )
    assert len(won) >= 2
    for (_, end), (start, _) in itertools.pairwise(won):
        assert end <= start, "two accepted bookings overlap"
    assert sorted((b["start_time"], b["end_time"]) for b in listed.json()["data"]) == won
    # And every refused request really did collide with an accepted one (no deadlock answers).
    for body, r in zip(bodies, answers, strict=True):
        if r.status_code == 409:
            s = datetime.fromisoformat(body["start_time"])
            e = datetime.fromisoformat(body["end_time"])
            assert any(
                datetime.fromisoformat(ws.replace("Z", "+00:00")) < e
                and s < datetime.fromisoformat(we.replace("Z", "+00:00"))
                for ws, we in won
            )


async def test_blocks_and_bookings_at_once_never_let_a_booking_overlap(
    servers: list[Server],
) -> None:
    """Blocks and bookings on one resource, all at once (issue 9, item 3; ADR 0007), spread over
    the module's servers (each topology), whose database holds the other tests' rows too: the
    holds are counted on this test's resource.

    Every block is kept; a booking may overlap no other booking and no block created before it.
    So every booking that overlaps a block must be listed in that block's `conflicts`, and each
    `conflicts` list must be exactly the bookings that overlap its block.
    """
    rng = random.Random(20261129)

    def span(max_quarters: int) -> tuple[datetime, datetime]:
        start = START + timedelta(minutes=15 * rng.randrange(0, 48))
        return start, start + timedelta(minutes=15 * rng.randrange(1, max_quarters))

    server = servers[0]
    async with client() as http:
        resource, client_id = await setup(http, server)
        bookings = []
        for _ in range(100):
            s, e = span(6)
            bookings.append(
                {
                    "resource_id": resource,
                    "client_id": client_id,
                    "start_time": s.isoformat(),
                    "end_time": e.isoformat(),
                }
            )
        blocks = [
            {"start_time": s.isoformat(), "end_time": e.isoformat()}
            for s, e in (span(10) for _ in range(30))
        ]

        async def one(to: Server, path: str, body: dict[str, Any]) -> httpx.Response:
            return await http.post(f"{to.url}{path}", headers=to.headers(), json=body)

        requests = [("/v1/bookings", b) for b in bookings]
        requests += [(f"/v1/resources/{resource}/blocks", b) for b in blocks]
        rng.shuffle(requests)
        answers = await asyncio.gather(
            *(one(servers[i % len(servers)], *r) for i, r in enumerate(requests))
        )

    def when(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    made_blocks, made_bookings = [], []
    for (path, _), r in zip(requests, answers, strict=True):
        if path.endswith("/blocks"):
            assert r.status_code == 201, r.text
            made_blocks.append(r.json())
        else:
            assert r.status_code in (201, 409), r.text
            if r.status_code == 409:
                assert r.json()["code"] == "slot_unavailable", r.text
            else:
                made_bookings.append(r.json())
    assert len(made_blocks) == 30
    assert len(made_bookings) >= 2
    won = sorted((when(b["start_time"]), when(b["end_time"])) for b in made_bookings)
    for (_, end), (start, _) in itertools.pairwise(won):
        assert end <= start, "two accepted bookings overlap"
    some_conflict = False
    for blk in made_blocks:
        s, e = when(blk["start_time"]), when(blk["end_time"])
        overlapping = sorted(
            b["booking_id"]
            for b in made_bookings
            if when(b["start_time"]) < e and s < when(b["end_time"])
        )
        assert blk["conflicts"] == overlapping, "a booking overlaps a block it was not listed in"
        some_conflict = some_conflict or bool(overlapping)
    assert some_conflict, "the test never raced a block against a booking"
    # The database agrees: what it holds is what the answers said.
    holds = "SELECT COUNT(*) FROM booking_holds WHERE active = :t AND resource_id = :rid AND"
    rid = stored_id(server, resource)
    rows = await database_says(server, f"{holds} block_id IS NOT NULL", t=True, rid=rid)
    assert rows[0][0] == 30
    rows = await database_says(server, f"{holds} booking_id IS NOT NULL", t=True, rid=rid)
    assert rows[0][0] == len(made_bookings)
    # And every refused booking really collided with an accepted booking or with a block.
    for (path, body), r in zip(requests, answers, strict=True):
        if path == "/v1/bookings" and r.status_code == 409:
            s, e = when(body["start_time"]), when(body["end_time"])
            taken = [(when(b["start_time"]), when(b["end_time"])) for b in made_bookings]
            taken += [(when(b["start_time"]), when(b["end_time"])) for b in made_blocks]
            assert any(ws < e and s < we for ws, we in taken), body
