"""Resources and clients."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api


async def test_resource_lifecycle(api: Api) -> None:
    r = await api.post(
        "/v1/resources",
        {
            "name": "Room A",
            "kind": "room",
            "timezone": "America/New_York",
            "location": "Oslo",
            "email": "Room@Example.com",
            "meta": {"floor": 2},
        },
    )
    assert r.status_code == 201
    room = r.json()
    assert room["email"] == "room@example.com"
    assert room["archived"] is False
    path = f"/v1/resources/{room['resource_id']}"
    # GET with the secret key adds the secret feed URL (tests/api/test_feeds.py)
    assert {**(await api.get(path)).json(), "feed_url": None} == room
    r = await api.put(path, {"name": "Room B", "meta": {"floor": 3}})
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["timezone"], r.json()["meta"]) == (
        "Room B",
        "America/New_York",
        {"floor": 3},
    )
    r = await api.put(path, {"timezone": "Not/AZone"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "timezone"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "timezone"),
        ({"name": "x", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "", "timezone": "UTC"}, "name"),
        ({"name": "x", "timezone": "UTC", "email": "nope"}, "email"),
        ({"name": "x", "timezone": "UTC", "meta": {"big": "x" * 20_000}}, "meta"),
        ({"name": "x", "timezone": "UTC", "extra": 1}, "extra"),
    ],
)
async def test_resource_validation(api: Api, body: dict[str, object], field: str) -> None:
    r = await api.post("/v1/resources", body)
    assert r.status_code == 422
    assert field in [e["field"] for e in r.json()["errors"]]
    assert (await api.get("/v1/resources")).json()["data"] == []


async def test_list_filters_by_kind_and_location_and_pages(api: Api) -> None:
    for i in range(5):
        await api.resource(name=f"Room {i}", kind="room", location="Oslo" if i % 2 else "Bergen")
    await api.resource(name="Dr. Who", kind="person", location="Oslo")
    rooms = (await api.get("/v1/resources", kind="room")).json()["data"]
    assert [r["name"] for r in rooms] == [f"Room {i}" for i in range(5)]
    oslo_rooms = (await api.get("/v1/resources", kind="room", location="Oslo")).json()["data"]
    assert [r["name"] for r in oslo_rooms] == ["Room 1", "Room 3"]
    first = (await api.get("/v1/resources", limit=4)).json()
    second = (await api.get("/v1/resources", limit=4, cursor=first["next_cursor"])).json()
    assert len(first["data"]) == 4
    assert [r["name"] for r in second["data"]] == ["Room 4", "Dr. Who"]
    assert second["next_cursor"] is None


async def test_archive_is_refused_while_bookings_hold_it(api: Api) -> None:
    resource = await api.resource()
    client = await api.client()
    booking = await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-05-18T10:00:00Z",
        end_time="2024-05-18T11:00:00Z",
    )
    path = f"/v1/resources/{resource['resource_id']}"
    r = await api.delete(path)
    assert r.status_code == 409
    assert r.json()["code"] == "resource_in_use"
    await api.delete(f"/v1/bookings/{booking['booking_id']}")
    r = await api.delete(path)
    assert r.status_code == 200
    assert r.json()["archived"] is True
    # Archived, not erased: still readable, out of the default list, takes no bookings.
    assert (await api.get(path)).json()["archived"] is True
    assert (await api.get("/v1/resources")).json()["data"] == []
    listed = (await api.get("/v1/resources", include_archived="true")).json()["data"]
    assert [r["resource_id"] for r in listed] == [resource["resource_id"]]
    r = await api.post(
        "/v1/bookings",
        {
            "resource_id": resource["resource_id"],
            "client_id": client["client_id"],
            "start_time": "2024-05-19T10:00:00Z",
            "end_time": "2024-05-19T11:00:00Z",
        },
    )
    assert r.status_code == 409
    assert r.json()["code"] == "resource_archived"
    assert (await api.get(f"/v1/bookings/{booking['booking_id']}")).json()["status"] == "cancelled"


async def test_client_lifecycle_and_unique_email(api: Api) -> None:
    r = await api.post(
        "/v1/clients",
        {"name": "Ann", "email": "Ann@Example.com", "phone": "+47 1234", "timezone": "Europe/Oslo"},
    )
    assert r.status_code == 201
    ann = r.json()
    assert ann["email"] == "ann@example.com"
    r = await api.post("/v1/clients", {"name": "Other Ann", "email": "ann@example.com"})
    assert r.status_code == 409
    assert r.json()["code"] == "client_exists"
    bob = await api.client(name="Bob", email="bob@example.com")
    r = await api.put(f"/v1/clients/{bob['client_id']}", {"email": "ann@example.com"})
    assert r.status_code == 409
    r = await api.put(f"/v1/clients/{bob['client_id']}", {"name": "Robert", "phone": "9"})
    assert (r.json()["name"], r.json()["phone"], r.json()["email"]) == (
        "Robert",
        "9",
        "bob@example.com",
    )
    found = (await api.get("/v1/clients", email="ANN@example.com")).json()["data"]
    assert [c["client_id"] for c in found] == [ann["client_id"]]
    assert (await api.post("/v1/clients", {"email": "x@example.com"})).status_code == 422
