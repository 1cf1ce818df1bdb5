"""Blocks: busy time from outside the engine (issue 9, item 3).

A block is always recorded (201), whatever it overlaps; it lists the holding bookings it
overlaps in `conflicts` and changes nothing on them. A booking may overlap neither a block nor
another holding booking, and the database itself refuses it (ADR 0007).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import Api

DAY = "2024-05-02"  # the clock reads 2024-05-01T09:00Z


def at(hhmm: str) -> str:
    return f"{DAY}T{hhmm}:00Z"


@pytest.fixture
async def setup(api: Api) -> dict[str, Any]:
    resource = await api.resource(timezone="UTC")
    return {
        "resource": resource,
        "client": await api.client(),
        "blocks": f"/v1/resources/{resource['resource_id']}/blocks",
    }


async def block(api: Api, setup: dict[str, Any], start: str, end: str, **kw: Any) -> Any:
    r = await api.post(setup["blocks"], {"start_time": at(start), "end_time": at(end), **kw})
    assert r.status_code == 201, r.text
    return r.json()


async def book(api: Api, setup: dict[str, Any], start: str, end: str, **kw: Any) -> Any:
    return await api.post(
        "/v1/bookings",
        {
            "resource_id": setup["resource"]["resource_id"],
            "client_id": setup["client"]["client_id"],
            "start_time": at(start),
            "end_time": at(end),
            **kw,
        },
    )


async def test_blocks_overlap_blocks_and_bookings(api: Api, setup: dict[str, Any]) -> None:
    lunch = await block(api, setup, "12:00", "14:00", reason="Lunch")
    assert lunch["conflicts"] == []
    assert (lunch["start_time"], lunch["end_time"], lunch["reason"]) == (
        at("12:00"),
        at("14:00"),
        "Lunch",
    )
    inside = await block(api, setup, "12:30", "13:00", reason="Call")
    assert inside["conflicts"] == []
    first = (await book(api, setup, "15:00", "16:00")).json()
    second = (await book(api, setup, "16:00", "17:00")).json()
    for b in (first, second):
        b.pop("customer_token")  # the create answer's only
    off = await block(api, setup, "15:30", "18:00", reason="Sick")
    assert off["conflicts"] == sorted([first["booking_id"], second["booking_id"]])
    # Nothing changed on the bookings; the owner decides.
    for b in (first, second):
        assert (await api.get(f"/v1/bookings/{b['booking_id']}")).json() == b
    listed = (await api.get(setup["blocks"])).json()["data"]
    assert [x["reason"] for x in listed] == ["Lunch", "Call", "Sick"]
    assert all("conflicts" not in x for x in listed)


async def test_only_holding_bookings_conflict(api: Api, setup: dict[str, Any]) -> None:
    await api.put(
        f"/v1/resources/{setup['resource']['resource_id']}/availability",
        {"buffer_after": "PT30M"},
    )
    buffered = (await book(api, setup, "09:00", "10:00")).json()  # holds until 10:30
    cancelled = (await book(api, setup, "11:00", "12:00")).json()
    await api.delete(f"/v1/bookings/{cancelled['booking_id']}")
    request = (await book(api, setup, "12:00", "13:00", graph="confirm_decline")).json()
    assert request["holds"] is False
    got = await block(api, setup, "10:15", "13:00")  # touches only the first one's buffer
    assert got["conflicts"] == [buffered["booking_id"]]
    # A payment hold past its deadline holds nothing, so it is no conflict either.
    unpaid = (await book(api, setup, "14:00", "15:00", graph="instant_payment")).json()
    api.clock.now = datetime(2024, 5, 1, 9, 10, tzinfo=UTC)  # the 5-minute deadline has passed
    assert (await block(api, setup, "14:00", "15:00"))["conflicts"] == []
    assert (await api.get(f"/v1/bookings/{unpaid['booking_id']}")).json()["status"] == "unpaid"


async def test_no_booking_over_any_block(api: Api, setup: dict[str, Any]) -> None:
    a = await block(api, setup, "12:00", "14:00")
    await block(api, setup, "13:00", "15:00")
    for start, end in (("11:30", "12:30"), ("13:45", "14:15"), ("14:30", "15:30")):
        r = await book(api, setup, start, end)
        assert (r.status_code, r.json()["code"]) == (409, "slot_unavailable"), (start, r.text)
        assert r.json()["detail"] == "The resource is blocked (busy time) for (part of) this time."
    assert (await book(api, setup, "15:00", "16:00")).status_code == 201
    # Moving a booking onto a block, or confirming a request over one, is refused the same way.
    early = (await book(api, setup, "09:00", "10:00")).json()
    moved = await api.put(
        f"/v1/bookings/{early['booking_id']}", {"start_time": at("12:00"), "end_time": at("13:00")}
    )
    assert (moved.status_code, moved.json()["code"]) == (409, "slot_unavailable")
    request = (await book(api, setup, "16:00", "17:00", graph="confirm_decline")).json()
    await block(api, setup, "16:30", "17:30")
    confirm = await api.put(f"/v1/bookings/{request['booking_id']}/confirm")
    assert (confirm.status_code, confirm.json()["code"]) == (409, "slot_unavailable")
    assert (await api.get(f"/v1/bookings/{request['booking_id']}")).json()["status"] == "tentative"
    # Deleting one block frees only what no other block covers.
    assert (await api.delete(f"{setup['blocks']}/{a['block_id']}")).status_code == 204
    assert (await book(api, setup, "12:00", "13:00")).status_code == 201
    assert (await book(api, setup, "13:00", "13:30")).json()["code"] == "slot_unavailable"


async def test_search_treats_the_union_of_blocks_as_busy(api: Api, setup: dict[str, Any]) -> None:
    rid = setup["resource"]["resource_id"]
    await api.put(f"/v1/resources/{rid}/availability", {"slot_step": "PT1H"})
    await block(api, setup, "10:00", "12:00")
    await block(api, setup, "11:00", "13:00")
    await block(api, setup, "11:30", "11:45")
    await book(api, setup, "14:00", "15:00")
    got = await api.get(
        "/v1/availability", resource_id=rid, start=at("08:00"), end=at("17:00"), duration="PT1H"
    )
    assert [s["start_time"] for s in got.json()["data"]] == [
        at("08:00"),
        at("09:00"),
        at("13:00"),
        at("15:00"),
        at("16:00"),
    ]


async def test_the_database_refuses_a_booking_hold_over_a_block(
    api: Api, setup: dict[str, Any], engine: AsyncEngine
) -> None:
    """Not the services' check: the database's own (a trigger on both backends, ADR 0007)."""
    await block(api, setup, "12:00", "14:00")
    booking = (await book(api, setup, "09:00", "10:00")).json()
    pg = engine.dialect.name == "postgresql"

    def uid(value: str) -> str:
        return value if pg else uuid.UUID(value).hex

    insert = text(
        "INSERT INTO booking_holds (id, booking_id, resource_id, start_time, end_time, active) "
        "VALUES (:id, :booking, :resource, :start, :end, :active)"
    )
    params = {
        "id": uid(str(uuid.uuid4())),
        "booking": uid(booking["booking_id"]),
        "resource": uid(setup["resource"]["resource_id"]),
        "start": "2024-05-02 13:00:00.000000" if not pg else datetime(2024, 5, 2, 13, tzinfo=UTC),
        "end": "2024-05-02 13:30:00.000000" if not pg else datetime(2024, 5, 2, 13, 30, tzinfo=UTC),
        "active": True,
    }
    async with engine.begin() as conn:  # the booking's own hold goes; we write a new one
        await conn.execute(
            text("DELETE FROM booking_holds WHERE booking_id = :b"), {"b": params["booking"]}
        )
    with pytest.raises(DBAPIError, match="booking_holds_no_block_overlap"):
        async with engine.begin() as conn:
            await conn.execute(insert, params)
    # The same row outside the block is accepted (so the refusal above was about the block).
    later = (
        {"start": datetime(2024, 5, 2, 14, tzinfo=UTC), "end": datetime(2024, 5, 2, 15, tzinfo=UTC)}
        if pg
        else {"start": "2024-05-02 14:00:00.000000", "end": "2024-05-02 15:00:00.000000"}
    )
    async with engine.begin() as conn:
        await conn.execute(insert, {**params, **later})
