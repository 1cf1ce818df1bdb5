"""Group classes with seats, and bookings held until paid."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.api.conftest import Api

CLASS = {"start_time": "2024-05-10T18:00:00Z", "end_time": "2024-05-10T19:00:00Z"}


@pytest.fixture
async def resource(api: Api) -> dict[str, Any]:
    return await api.resource(name="Yoga studio")


async def make_class(api: Api, resource: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"graph": "group_owner", "resource_id": resource["resource_id"], **CLASS, **fields}
    return await api.book(**body)


def payment_slot(resource: dict[str, Any], client: dict[str, Any]) -> dict[str, Any]:
    """The slot the payment tests book and fight over (the fake clock starts 2024-05-01 09:00)."""
    return {
        "resource_id": resource["resource_id"],
        "client_id": client["client_id"],
        "start_time": "2024-05-18T10:00:00Z",
        "end_time": "2024-05-18T11:00:00Z",
    }


async def seat(api: Api, owner: dict[str, Any], graph: str = "group_customer", **kw: Any) -> Any:
    client = await api.client()
    body = {
        "graph": graph,
        "owner_booking_id": owner["booking_id"],
        "client_id": client["client_id"],
    }
    return await api.post("/v1/bookings", body | kw)


async def test_seats_are_counted_and_capped(api: Api, resource: dict[str, Any]) -> None:
    owner = await make_class(api, resource, max_seats=2)
    assert (owner["max_seats"], owner["seats_taken"], owner["seats_left"]) == (2, 0, 2)
    first = await seat(api, owner)
    assert first.status_code == 201
    s = first.json()
    assert (s["resource_id"], s["start_time"], s["end_time"]) == (
        resource["resource_id"],
        CLASS["start_time"],
        CLASS["end_time"],
    )
    assert s["owner_booking_id"] == owner["booking_id"]
    assert (await seat(api, owner)).status_code == 201
    full = await seat(api, owner)
    assert full.status_code == 409
    assert full.json()["code"] == "seats_full"
    got = (await api.get(f"/v1/bookings/{owner['booking_id']}")).json()
    assert (got["seats_taken"], got["seats_left"]) == (2, 0)
    # A seat given back can be taken again.
    await api.put(f"/v1/bookings/{s['booking_id']}/cancel_by_customer")
    assert (await api.get(f"/v1/bookings/{owner['booking_id']}")).json()["seats_left"] == 1
    assert (await seat(api, owner)).status_code == 201


async def test_the_class_holds_the_resource(api: Api, resource: dict[str, Any]) -> None:
    await make_class(api, resource, max_seats=2)
    client = await api.client()
    r = await api.post(
        "/v1/bookings",
        {"resource_id": resource["resource_id"], "client_id": client["client_id"], **CLASS},
    )
    assert r.json()["code"] == "slot_unavailable"


async def test_seat_requests_are_validated(api: Api, resource: dict[str, Any]) -> None:
    owner = await make_class(api, resource, max_seats=2)
    client = await api.client()
    cases = [
        ({"owner_booking_id": None}, "owner_booking_id"),
        ({"start_time": CLASS["start_time"]}, "start_time"),
        ({"owner_booking_id": "00000000-0000-0000-0000-000000000000"}, "owner_booking_id"),
    ]
    for change, field in cases:
        body = {
            "graph": "group_customer",
            "owner_booking_id": owner["booking_id"],
            "client_id": client["client_id"],
        } | change
        r = await api.post("/v1/bookings", {k: v for k, v in body.items() if v is not None})
        assert r.status_code == 422, r.text
        assert field in [e["field"] for e in r.json()["errors"]]
    instant = await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-05-11T10:00:00Z",
        end_time="2024-05-11T11:00:00Z",
    )
    r = await api.post(
        "/v1/bookings",
        {
            "graph": "group_customer",
            "client_id": client["client_id"],
            "owner_booking_id": instant["booking_id"],
        },
    )
    assert r.status_code == 422
    r = await api.post(
        "/v1/bookings", {"graph": "group_owner", "resource_id": resource["resource_id"], **CLASS}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "max_seats"


async def test_booking_window(api: Api, resource: dict[str, Any]) -> None:
    # The clock is at 2024-05-01T09:00Z; the class starts 2024-05-10T18:00Z.
    owner = await make_class(
        api, resource, max_seats=5, max_booking_time="P7D", min_booking_time="PT2H"
    )
    early = await seat(api, owner)
    assert early.status_code == 409
    assert early.json()["code"] == "booking_window_closed"
    api.clock.now = api.clock.now.replace(day=4)  # 6 days 9 hours before: open
    assert (await seat(api, owner)).status_code == 201
    api.clock.now = api.clock.now.replace(day=10, hour=16, minute=1)  # 1h59m before: closed
    late = await seat(api, owner)
    assert late.json()["code"] == "booking_window_closed"
    got = (await api.get(f"/v1/bookings/{owner['booking_id']}")).json()
    assert got["seats_taken"] == 1


async def test_cancel_window_for_customers(api: Api, resource: dict[str, Any]) -> None:
    owner = await make_class(api, resource, max_seats=5, min_cancel_time="P1D")
    s1 = (await seat(api, owner)).json()
    s2 = (await seat(api, owner)).json()
    api.clock.now = api.clock.now.replace(day=9, hour=18)  # exactly 1 day before: still allowed
    r = await api.put(f"/v1/bookings/{s1['booking_id']}/cancel_by_customer")
    assert r.status_code == 200
    api.clock.advance(timedelta(seconds=1))
    r = await api.put(f"/v1/bookings/{s2['booking_id']}/cancel_by_customer")
    assert r.status_code == 409
    assert r.json()["code"] == "cancel_window_closed"
    assert (await api.get(f"/v1/bookings/{s2['booking_id']}")).json()["status"] == "confirmed"
    # The owner may still cancel the seat.
    r = await api.put(f"/v1/bookings/{s2['booking_id']}/cancel_by_owner")
    assert r.json()["status"] == "cancelled_by_owner"


async def test_cancelling_the_class_cancels_every_active_seat(
    api: Api, resource: dict[str, Any]
) -> None:
    owner = await make_class(api, resource, max_seats=5)
    seats = [(await seat(api, owner)).json() for _ in range(3)]
    paid = (await seat(api, owner, graph="group_customer_payment")).json()
    await api.put(f"/v1/bookings/{paid['booking_id']}/pay", {"payment_id": "pi_1"})
    gone = seats.pop()
    await api.put(f"/v1/bookings/{gone['booking_id']}/cancel_by_customer")
    r = await api.delete(f"/v1/bookings/{owner['booking_id']}")
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["seats_taken"]) == ("cancelled", 0)
    for s in [*seats, paid]:
        got = (await api.get(f"/v1/bookings/{s['booking_id']}")).json()
        assert got["status"] == "cancelled_by_owner"
        history = (await api.get(f"/v1/bookings/{s['booking_id']}/history")).json()["data"]
        assert history[-1]["message"] == "The class was cancelled."
    assert (await api.get(f"/v1/bookings/{gone['booking_id']}")).json()["status"] == (
        "cancelled_by_customer"
    )
    late = await seat(api, owner)
    assert late.status_code == 409
    # The studio is free again.
    client = await api.client()
    await api.book(resource_id=resource["resource_id"], client_id=client["client_id"], **CLASS)


async def test_moving_the_class_moves_its_seats(api: Api, resource: dict[str, Any]) -> None:
    owner = await make_class(api, resource, max_seats=5)
    s = (await seat(api, owner)).json()
    r = await api.put(
        f"/v1/bookings/{owner['booking_id']}",
        {"start_time": "2024-05-10T19:00:00Z", "end_time": "2024-05-10T20:00:00Z"},
    )
    assert r.status_code == 200, r.text
    got = (await api.get(f"/v1/bookings/{s['booking_id']}")).json()
    assert (got["start_time"], got["end_time"]) == ("2024-05-10T19:00:00Z", "2024-05-10T20:00:00Z")
    r = await api.put(f"/v1/bookings/{s['booking_id']}", {"start_time": "2024-05-10T17:00:00Z"})
    assert r.status_code == 422
    r = await api.put(f"/v1/bookings/{s['booking_id']}", {"details": "front row"})
    assert r.json()["details"] == "front row"


async def test_payment_hold_blocks_until_due_then_frees_without_any_job(
    api: Api, resource: dict[str, Any]
) -> None:
    slot = payment_slot(resource, await api.client())
    held = await api.book(graph="instant_payment", **slot)
    assert held["status"] == "tentative"
    assert held["payment_due_at"] == "2024-05-01T09:05:00Z"
    assert (await api.post("/v1/bookings", slot)).json()["code"] == "slot_unavailable"
    api.clock.advance(timedelta(minutes=5))
    # Nothing has run in the background: the next request finds the hold overdue and frees it.
    taken = await api.book(**slot)
    assert taken["status"] == "confirmed"
    got = (await api.get(f"/v1/bookings/{held['booking_id']}")).json()
    assert (got["status"], got["holds"], got["completed"]) == ("unpaid", False, True)
    history = (await api.get(f"/v1/bookings/{held['booking_id']}/history")).json()["data"]
    assert [(h["action"], h["to"], h["actor_key_id"]) for h in history][-1] == (
        "timeout",
        "unpaid",
        None,
    )


async def test_paying_after_the_deadline_is_409_and_unpaid(
    api: Api, resource: dict[str, Any]
) -> None:
    slot = payment_slot(resource, await api.client())
    held = await api.book(graph="instant_payment", payment_timeout="PT15M", **slot)
    assert held["payment_due_at"] == "2024-05-01T09:15:00Z"
    api.clock.advance(timedelta(minutes=15))
    r = await api.put(f"/v1/bookings/{held['booking_id']}/pay", {"payment_id": "pi_9"})
    assert r.status_code == 409
    assert r.json()["code"] == "payment_expired"
    got = (await api.get(f"/v1/bookings/{held['booking_id']}")).json()
    assert (got["status"], got["payment_id"]) == ("unpaid", None)
    listed = (await api.get("/v1/bookings", status="unpaid")).json()["data"]
    assert [b["booking_id"] for b in listed] == [held["booking_id"]]


async def test_paying_in_time_keeps_the_slot(api: Api, resource: dict[str, Any]) -> None:
    slot = payment_slot(resource, await api.client())
    held = await api.book(graph="instant_payment", **slot)
    api.clock.advance(timedelta(minutes=4, seconds=59))
    r = await api.put(f"/v1/bookings/{held['booking_id']}/pay", {"payment_id": "pi_1"})
    assert (r.json()["status"], r.json()["payment_id"]) == ("paid", "pi_1")
    api.clock.advance(timedelta(hours=1))
    assert (await api.post("/v1/bookings", slot)).json()["code"] == "slot_unavailable"


async def test_listing_applies_due_timeouts(api: Api, resource: dict[str, Any]) -> None:
    owner = await make_class(api, resource, max_seats=1)
    s = (await seat(api, owner, graph="group_customer_payment", payment_timeout="PT1M")).json()
    assert s["status"] == "tentative"
    assert (await seat(api, owner)).json()["code"] == "seats_full"
    api.clock.advance(timedelta(minutes=1))
    statuses = {
        b["booking_id"]: b["status"] for b in (await api.get("/v1/bookings")).json()["data"]
    }
    assert statuses[s["booking_id"]] == "unpaid"
    got = (await api.get(f"/v1/bookings/{owner['booking_id']}")).json()
    assert got["seats_taken"] == 0


async def test_an_overdue_seat_frees_its_place_for_the_next_customer(
    api: Api, resource: dict[str, Any]
) -> None:
    owner = await make_class(api, resource, max_seats=1)
    s = (await seat(api, owner, graph="group_customer_payment")).json()
    api.clock.advance(timedelta(minutes=5))
    taken = await seat(api, owner)
    assert taken.status_code == 201
    assert (await api.get(f"/v1/bookings/{s['booking_id']}")).json()["status"] == "unpaid"


async def test_confirm_decline_requests_do_not_hold_until_confirmed(
    api: Api, resource: dict[str, Any]
) -> None:
    c1, c2 = await api.client(), await api.client()
    slot = {
        "graph": "confirm_decline",
        "resource_id": resource["resource_id"],
        "start_time": "2024-05-18T10:00:00Z",
        "end_time": "2024-05-18T11:00:00Z",
    }
    a = await api.book(**slot, client_id=c1["client_id"])
    b = await api.book(**slot, client_id=c2["client_id"])
    assert (a["status"], b["status"], a["holds"]) == ("tentative", "tentative", False)
    r = await api.put(f"/v1/bookings/{a['booking_id']}/confirm")
    assert r.json()["status"] == "confirmed"
    r = await api.put(f"/v1/bookings/{b['booking_id']}/confirm")
    assert r.status_code == 409
    assert r.json()["code"] == "slot_unavailable"
    assert (await api.get(f"/v1/bookings/{b['booking_id']}")).json()["status"] == "tentative"
    r = await api.put(f"/v1/bookings/{b['booking_id']}/decline", {"message": "Sorry, taken"})
    assert r.json()["status"] == "declined"
