"""A resource holds at most 50,000 live blocks made through the API (docs/security.md). Before
2026-12-01 there was no bound: a secret key, or a leaked one, could add millions, and every
availability search of the resource (the public key's too) read them. Past it the answer is
409 `limit_reached`, counted with the resource locked, so two creates at once cannot both take
the last place. Both backends."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from slotgraph.db.models import BookingHold, Resource, ResourceBlock
from slotgraph.services import resources
from tests.api.conftest import T0, Api
from tests.api.test_block_holds_index import plan, statements


def hour(i: int) -> dict[str, str]:
    start = T0 + timedelta(days=1, hours=i)
    return {"start_time": start.isoformat(), "end_time": (start + timedelta(hours=1)).isoformat()}


async def add(api: Api, resource: dict[str, Any], i: int) -> Any:
    return await api.post(f"/v1/resources/{resource['resource_id']}/blocks", hour(i))


def assert_limit(r: Any, detail: str) -> None:
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (r.json()["code"], r.json()["detail"]) == ("limit_reached", detail)


async def test_a_resource_holds_at_most_max_blocks_and_a_deleted_one_makes_room(
    api: Api, other_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "MAX_BLOCKS", 3)
    res, other = await api.resource(), await api.resource(name="Room 2")
    made = []
    for i in range(3):
        r = await add(api, res, i)
        assert r.status_code == 201, r.text
        made.append(r.json()["block_id"])
    assert_limit(
        await add(api, res, 3),
        "This resource has 3 blocks and may have at most 3; delete one first "
        "(those that have ended too: GET its blocks with ?to= now).",
    )
    blocks = f"/v1/resources/{res['resource_id']}/blocks"
    assert len((await api.get(blocks)).json()["data"]) == 3  # nothing was added
    # Another resource's count is its own, and another app's.
    assert (await add(api, other, 0)).status_code == 201
    assert (await add(other_api, await other_api.resource(), 0)).status_code == 201
    assert (await api.delete(f"{blocks}/{made[0]}")).status_code == 204
    assert (await add(api, res, 3)).status_code == 201
    assert (await add(api, res, 4)).status_code == 409


async def test_two_creates_at_once_never_both_take_the_last_place(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counted before the resource's lock, on PostgreSQL most of these found room (tried).
    monkeypatch.setattr(resources, "MAX_BLOCKS", 2)
    res = await api.resource()
    answers = await asyncio.gather(*(add(api, res, i) for i in range(12)))
    assert sorted(r.status_code for r in answers) == [201] * 2 + [409] * 10
    listed = (await api.get(f"/v1/resources/{res['resource_id']}/blocks")).json()["data"]
    assert len(listed) == 2


async def test_the_list_reads_on_by_its_cursor(api: Api) -> None:
    # Before: the first 1,000 by start time were the whole answer, nothing said more existed,
    # and nothing read on (a resource may hold 50,000 of its own and as many of its calendar).
    res = await api.resource()
    for i in (3, 0, 1, 1, 2):  # two at the same time: the cursor tells them apart
        assert (await add(api, res, i)).status_code == 201
    path = f"/v1/resources/{res['resource_id']}/blocks"
    pages, cursor = [], None
    while True:
        r = await (
            api.get(path, limit=2) if cursor is None else api.get(path, limit=2, cursor=cursor)
        )
        assert r.status_code == 200, r.text
        pages.append([b["start_time"] for b in r.json()["data"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    starts = [hour(i)["start_time"].replace("+00:00", "Z") for i in (0, 1, 1, 2, 3)]
    assert pages == [starts[:2], starts[2:4], starts[4:]]
    whole = (await api.get(path)).json()
    assert ([b["start_time"] for b in whole["data"]], whole["next_cursor"]) == (starts, None)
    for bad in ({"limit": 0}, {"limit": 1001}, {"cursor": "nonsense"}):
        r = await api.get(path, **bad)
        assert r.status_code in (400, 422), r.text
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_the_count_reads_the_resources_own_live_blocks_by_key(
    api: Api, engine: AsyncEngine
) -> None:
    # ix_resource_blocks_own_live (migration 0022): without it the count went through every
    # block of the resource, its calendar's deleted ones too, which grow without end.
    res = await api.resource()
    with statements(engine, "SELECT COUNT") as seen:
        assert (await add(api, res, 0)).status_code == 201
    assert len(seen) == 1, seen
    assert "ix_resource_blocks_own_live" in await plan(engine, *seen[0])


@pytest.mark.slow
async def test_the_bound_is_50000_and_one_over_from_before_is_told_how_many_to_delete(
    api: Api, engine: AsyncEngine
) -> None:
    res = await api.resource()
    await _stored_blocks(engine, uuid.UUID(res["resource_id"]), 49_999)
    assert (await add(api, res, 0)).status_code == 201
    assert_limit(
        await add(api, res, 1),
        "This resource has 50,000 blocks and may have at most 50,000; delete one first "
        "(those that have ended too: GET its blocks with ?to= now).",
    )
    listed = (await api.get(f"/v1/resources/{res['resource_id']}/blocks")).json()
    assert (len(listed["data"]), listed["next_cursor"] is not None) == (1000, True)
    # A resource over the bound from before it (no bound until 2026-12-01) is told the number.
    await _stored_blocks(engine, uuid.UUID(res["resource_id"]), 1_500)
    assert_limit(
        await add(api, res, 1),
        "This resource has 51,500 blocks and may have at most 50,000; delete 1,501 first "
        "(those that have ended too: GET its blocks with ?to= now).",
    )


async def _stored_blocks(engine: AsyncEngine, resource_id: uuid.UUID, count: int) -> None:
    """`count` blocks of the resource as the API makes them (five minutes every ten from a year
    before T0), each with its hold, written directly through the tables."""
    start = T0 - timedelta(days=365)
    async with AsyncSession(engine) as session, session.begin():
        app_id = await session.scalar(select(Resource.app_id).where(Resource.id == resource_id))
        blocks = [
            {
                "id": uuid.uuid4(),
                "app_id": app_id,
                "resource_id": resource_id,
                "start_time": start + timedelta(minutes=10 * i),
                "end_time": start + timedelta(minutes=10 * i + 5),
                "reason": "Stored",
                "created_at": T0,
            }
            for i in range(count)
        ]
        await session.execute(insert(ResourceBlock.__table__), blocks)
        holds = [
            {
                "id": uuid.uuid4(),
                "block_id": b["id"],
                "resource_id": resource_id,
                "start_time": b["start_time"],
                "end_time": b["end_time"],
                "active": True,
            }
            for b in blocks
        ]
        await session.execute(insert(BookingHold.__table__), holds)
