"""A disconnect frees the pulled time at once and leaves the rows' bookkeeping to the worker,
in batches, on both backends against a real Radicale: the request's work does not grow with
the blocks the connection ever pulled, and nothing is busy or bookable that should not be."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from slotgraph.db.models import BookingHold, CalendarConnection, ResourceBlock
from slotgraph.services import calendar_removals
from slotgraph.worker import Worker
from tests.api.calendars.conftest import busy, connect, vevent
from tests.api.conftest import T0, Api
from tests.api.test_block_holds_index import plan, statements
from tests.radicale import Radicale

HOURS = [f"2024-05-0{d}T10:00:00Z" for d in range(2, 7)]  # five private appointments


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    """Blocks still naming a connection, and connection rows (hidden ones too)."""
    async with engine.begin() as conn:
        named = "SELECT count(*) FROM resource_blocks WHERE calendar_id IS NOT NULL"
        linked = (await conn.execute(text(named))).one()[0]
        rows = (await conn.execute(text("SELECT count(*) FROM calendar_connections"))).one()[0]
    return int(linked), int(rows)


async def _blocks(api: Api, resource: dict[str, Any]) -> list[str]:
    r = await api.get(f"/v1/resources/{resource['resource_id']}/blocks")
    assert r.status_code == 200, r.text
    return sorted(b["start_time"] for b in r.json()["data"])


async def test_the_time_is_free_at_once_and_the_worker_lets_go_of_the_blocks_in_batches(
    cal_api: Api,
    engine: AsyncEngine,
    radicale: Radicale,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(calendar_removals, "CLEAR_BATCH", 2)
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    for day in range(2, 7):
        calendar.add_event(vevent(f"a{day}", f":2024050{day}T100000Z", f":2024050{day}T110000Z"))
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    assert await worker.calendars.run_once() == 1
    window = ("2024-05-01T00:00:00Z", "2024-05-08T00:00:00Z")
    hours = [(s, s.replace("T10", "T11")) for s in HOURS]
    assert await busy(cal_api, resource, *window) == hours
    assert (await cal_api.delete(path)).status_code == 204
    # At once: free, bookable, not listed; the rows are the worker's to let go of.
    assert await busy(cal_api, resource, *window) == []
    assert await _blocks(cal_api, resource) == []
    assert await _counts(engine) == (5, 1)
    client = (await cal_api.client())["client_id"]
    booked = await cal_api.book(
        resource_id=resource["resource_id"],
        client_id=client,
        start_time=HOURS[0],
        end_time=hours[0][1],
    )
    # The same calendar connected again before the worker has let go of the old blocks.
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    assert await worker.calendars.clear(batches=1) == 2
    assert await _counts(engine) == (3, 2)
    assert await worker.calendars.run_once() == 1  # the rest let go of, then the new pull
    assert await _counts(engine) == (5, 1)  # the new connection's five; the old row gone
    assert await busy(cal_api, resource, *window) == hours  # each once
    assert await _blocks(cal_api, resource) == HOURS
    state = (await cal_api.get(path)).json()
    assert state["counts"]["pulled_blocks"] == 5
    assert [c["booking_id"] for c in state["conflicts"]] == [booked["booking_id"]]


async def test_a_disconnect_finds_the_pulled_blocks_holds_by_key(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # Its statement goes from the connection's live blocks (migration 0021) to their holds by
    # key (0020): its work is those blocks (at most 50,000), not every active block hold of the
    # resource, each looked up, as before (the resource's own blocks, without end).
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    calendar.add_event(vevent("a", ":20240502T100000Z", ":20240502T110000Z"))
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    assert await worker.calendars.run_once() == 1
    window = ("2024-05-01T00:00:00Z", "2024-05-08T00:00:00Z")
    hour = ("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")
    assert await busy(cal_api, resource, *window) == [hour]
    with statements(engine, "UPDATE BOOKING_HOLDS") as seen:
        assert (await cal_api.delete(path)).status_code == 204
    assert len(seen) == 1, seen
    how = await plan(engine, *seen[0])
    assert "ix_booking_holds_block" in how, how
    assert "ix_resource_blocks_calendar_live" in how, how  # not the blocks deleted before
    assert await busy(cal_api, resource, *window) == []


@pytest.mark.slow
async def test_a_calendar_with_more_blocks_than_a_statement_takes_parameters_disconnects(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # 33,000 blocks (a connection keeps at most 50,000). Before: the request sent their ids
    # back, one parameter each, and PostgreSQL takes 32,767: a 500, every time.
    resource = await cal_api.resource()
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await connect(cal_api, radicale.new_calendar(), resource)).status_code == 201
    await _pulled_blocks(engine, 33_000, per_object=10)
    window = ("2024-05-01T09:00:00Z", "2024-05-01T10:00:00Z")
    assert len(await busy(cal_api, resource, *window)) == 6
    assert (await cal_api.delete(path)).status_code == 204
    assert await busy(cal_api, resource, *window) == []
    await worker.calendars.clear()
    assert await _counts(engine) == (0, 0)


@pytest.mark.slow
async def test_a_full_sync_that_finds_more_objects_gone_than_a_statement_takes_ends(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # 33,000 blocks of as many objects, all gone from the (empty) calendar at its full sync.
    # Before: their hrefs went into one statement, one parameter each (PostgreSQL takes 32,767,
    # SQLite 32,766): the sync failed every time, and the deleted events stayed busy.
    resource = await cal_api.resource()
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await connect(cal_api, radicale.new_calendar(), resource)).status_code == 201
    await _pulled_blocks(engine, 33_000, per_object=1)
    window = ("2024-05-01T09:00:00Z", "2024-05-01T10:00:00Z")
    assert len(await busy(cal_api, resource, *window)) == 6
    assert await worker.calendars.run_once() == 1
    state = (await cal_api.get(path)).json()
    assert (state["status"], state["last_error"], state["counts"]["pulled_blocks"]) == (
        "ok",
        None,
        0,
    ), state
    assert await busy(cal_api, resource, *window) == []


async def _pulled_blocks(engine: AsyncEngine, count: int, *, per_object: int) -> None:
    """`count` blocks of the one connection, as its syncs would have written them (five minutes
    every ten from T0, `per_object` to a calendar object), each with its hold; written through
    the tables in two statements (through the ORM, 33,000 took 10-20 s of CPU to build)."""
    async with AsyncSession(engine) as session, session.begin():
        conn = await session.scalar(select(CalendarConnection))
        assert conn is not None
        blocks = [
            {
                "id": uuid.uuid4(),
                "app_id": conn.app_id,
                "resource_id": conn.resource_id,
                "start_time": T0 + timedelta(minutes=10 * i),
                "end_time": T0 + timedelta(minutes=10 * i + 5),
                "reason": "Busy in the connected calendar",
                "created_at": T0,
                "calendar_id": conn.id,
                "calendar_href": f"/{i // per_object}.ics",
            }
            for i in range(count)
        ]
        await session.execute(insert(ResourceBlock.__table__), blocks)
        holds = [
            {
                "id": uuid.uuid4(),
                "block_id": b["id"],
                "resource_id": b["resource_id"],
                "start_time": b["start_time"],
                "end_time": b["end_time"],
                "active": True,
            }
            for b in blocks
        ]
        await session.execute(insert(BookingHold.__table__), holds)
