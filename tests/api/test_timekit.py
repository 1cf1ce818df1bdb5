"""The /v2 Timekit adapter through HTTP: Timekit's shapes in, Timekit's shapes out.

Expectations are written out from Timekit's documentation and the widget's source
(booking-js 3.3.1), not derived from the adapter's tables.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.api.conftest import Api

MONDAY = "2024-05-06"  # T0 is 2024-05-01 (a Wednesday); the clock stays there


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f":{key}".encode()).decode()}


async def v2(
    api: Api, method: str, path: str, body: Any = None, key: str | None = None, **params: Any
) -> httpx.Response:
    return await api.http.request(
        method,
        "/v2" + path,
        json=body,
        params=params or None,
        headers={
            **basic(key or api.secret_key),
            "Timekit-App": "my-app",
            "Timekit-Context": "widget",
        },
    )


async def resource(api: Api, **fields: Any) -> dict[str, Any]:
    r = await v2(
        api, "POST", "/resources", {"name": "Doc Brown", "timezone": "Europe/Oslo", **fields}
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


def customer(n: int = 1) -> dict[str, Any]:
    return {
        "name": f"Marty {n}",
        "email": f"marty{n}@example.com",
        "phone": "555",
        "timezone": "America/Los_Angeles",
        "voip": "McFly",
    }


async def test_basic_auth_and_errors_in_timekit_shape(api: Api) -> None:
    r = await api.http.get("/v2/resources")
    assert r.status_code == 401
    assert "error" in r.json()
    assert "type" not in r.json()
    r = await v2(api, "GET", "/resources", key="nope")
    assert r.status_code == 401
    r = await v2(api, "GET", "/bookings/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404
    assert set(r.json()) >= {"error"}
    r = await v2(api, "POST", "/resources", {"name": "x"})
    assert r.status_code == 422
    assert r.json()["errors"] == {"timezone": ["Field required"]}
    r = await v2(api, "GET", "/bookings", key=api.public_key)
    assert r.status_code == 403


async def test_instant_booking_round_trip(api: Api) -> None:
    res = await resource(api)
    r = await v2(
        api,
        "POST",
        "/bookings",
        {
            "resource_id": res["id"],
            "graph": "instant",
            "action": "confirm",
            "start": f"{MONDAY}T10:00:00+02:00",
            "end": f"{MONDAY}T11:00:00+02:00",
            "what": "Catch the lightning",
            "where": "Courthouse",
            "description": "10:04 PM",
            "customer": customer(),
            "meta": {"ref": "A1"},
        },
        include="attributes,event,customers,user",
    )
    assert r.status_code == 201, r.text
    b = r.json()["data"]
    assert (b["graph"], b["state"], b["completed"]) == ("instant", "confirmed", False)
    assert b["available_actions"] == b["possible_actions"]
    assert set(b["available_actions"]) == {
        "cancel",
        "cancel_by_customer",
        "cancel_by_owner",
        "complete",
    }
    assert b["attributes"]["event_info"] == {
        "start": "2024-05-06T08:00:00+00:00",
        "end": "2024-05-06T09:00:00+00:00",
        "what": "Catch the lightning",
        "where": "Courthouse",
        "description": "10:04 PM",
    }
    assert b["customers"][0]["email"] == "marty1@example.com"
    assert b["customers"][0]["voip"] == "McFly"
    assert b["meta"] == {"ref": "A1"}
    assert b["user"]["name"] == "Doc Brown"
    # the same booking through /v1: one set of services, one booking
    v1 = await api.get(f"/v1/bookings/{b['id']}")
    assert v1.json()["details"] == "10:04 PM"
    assert v1.json()["status"] == "confirmed"
    # a second booking of the same slot: slotgraph never double-books
    again = await v2(
        api,
        "POST",
        "/bookings",
        {
            "resource_id": res["id"],
            "graph": "instant",
            "start": f"{MONDAY}T10:30:00+02:00",
            "end": f"{MONDAY}T11:30:00+02:00",
            "customer": customer(2),
        },
    )
    assert again.status_code == 409
    assert again.json()["code"] == "slot_unavailable"
    # Timekit-Timezone shapes the output
    shown = await api.http.get(
        f"/v2/bookings/{b['id']}",
        params={"include": "event"},
        headers={**basic(api.secret_key), "Timekit-Timezone": "Europe/Oslo"},
    )
    assert shown.json()["data"]["event"]["start"] == "2024-05-06T10:00:00+02:00"


async def test_actions_search_and_reschedule(api: Api) -> None:
    res = await resource(api)
    body = {
        "resource_id": res["id"],
        "graph": "confirm_decline",
        "action": "create",
        "start": f"{MONDAY}T12:00:00+02:00",
        "end": f"{MONDAY}T13:00:00+02:00",
        "customer": customer(),
        "meta": {"shop": "hill-valley"},
    }
    b = (await v2(api, "POST", "/bookings", body)).json()["data"]
    assert b["state"] == "tentative"
    bad = await v2(api, "PUT", f"/bookings/{b['id']}/pay")
    assert bad.status_code == 409
    assert set(bad.json()["allowed_actions"]) == {
        "confirm",
        "decline",
        "cancel",
    }
    ok = await v2(api, "PUT", f"/bookings/{b['id']}/confirm", {"confirm": {"message": "ok"}})
    assert ok.json()["data"]["state"] == "confirmed"
    found = await v2(
        api,
        "GET",
        "/bookings",
        search="graph:confirm_decline;state:confirmed;"
        "meta.shop:hill-valley;customer.email:marty1@example.com",
        limit=1,
    )
    page = found.json()
    assert [x["id"] for x in page["data"]] == [b["id"]]
    assert (page["total"], page["per_page"], page["current_page"], page["last_page"]) == (
        1,
        1,
        1,
        1,
    )
    none = await v2(api, "GET", "/bookings", search="state:cancelled")
    assert none.json()["total"] == 0
    moved = await v2(
        api,
        "POST",
        f"/bookings/{b['id']}/reschedule/",
        {
            "start": f"{MONDAY}T14:00:00+02:00",
            "end": f"{MONDAY}T15:00:00+02:00",
            "resource_id": res["id"],
            "message": "later",
        },
        include="event",
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["event"]["start"] == "2024-05-06T12:00:00+00:00"
    no_time = await v2(api, "POST", "/bookings", {"resource_id": res["id"], "customer": customer()})
    assert set(no_time.json()["errors"]) == {"start", "end"}
    bad_search = await v2(api, "GET", "/bookings", search="color:red")
    assert bad_search.status_code == 422
    assert "search" in bad_search.json()["errors"]


async def test_group_class_and_seats(api: Api) -> None:
    res = await resource(api)
    owner = (
        await v2(
            api,
            "POST",
            "/bookings",
            {
                "resource_id": res["id"],
                "graph": "group_owner",
                "action": "create",
                "start": f"{MONDAY}T16:00:00+02:00",
                "end": f"{MONDAY}T17:00:00+02:00",
                "what": "Yoga",
                "meta": {"teacher_phone": "555-0101"},
                "settings": {"max_seats": 2},
                "customer": customer(),
            },
        )
    ).json()["data"]
    groups = (await v2(api, "GET", "/bookings/groups", key=api.public_key)).json()
    item = groups["data"][0]
    assert item["meta"] == {}  # the widget key never sees the class's private meta
    assert "customers" not in item
    assert item["id"] == owner["id"]
    assert item["resource"]["id"] == res["id"]
    assert item["attributes"]["group_booking"] == {
        "max_seats": 2,
        "current_seats": 0,
        "seats_left": 2,
    }
    assert item["attributes"]["event_info"]["what"] == "Yoga"
    # as the widget books a seat: resource and times of the class, related owner id
    seat = await v2(
        api,
        "POST",
        "/bookings",
        {
            "graph": "group_customer",
            "resource_id": res["id"],
            "start": item["attributes"]["event_info"]["start"],
            "end": item["attributes"]["event_info"]["end"],
            "related": {"owner_booking_id": owner["id"]},
            "customer": customer(2),
        },
        key=api.public_key,
    )
    assert seat.status_code == 201, seat.text
    one = (await v2(api, "GET", f"/bookings/groups/{owner['id']}")).json()["data"]
    assert one["attributes"]["group_booking"]["current_seats"] == 1


async def test_availability_modes_and_constraints(api: Api) -> None:
    a = await resource(api, name="A")
    b = await resource(api, name="B")
    (
        await api.book(
            resource_id=b["id"],
            start_time=f"{MONDAY}T08:00:00Z",
            end_time=f"{MONDAY}T09:00:00Z",
            customer={"name": "X", "email": "x@example.com"},
        )
    )
    query = {
        "resources": [a["id"], b["id"]],
        "from": f"{MONDAY}T08:00:00Z",
        "to": f"{MONDAY}T10:00:00Z",
        "length": "1 hour",
        "timeslot_increments": "1 hour",
        "output_timezone": "Europe/Oslo",
    }
    mutual = (await v2(api, "POST", "/availability", {**query, "mode": "mutual"})).json()
    assert mutual["data"] == [
        {
            "start": "2024-05-06T11:00:00+02:00",
            "end": "2024-05-06T12:00:00+02:00",
            "resources": [{"id": a["id"], "name": "A"}, {"id": b["id"], "name": "B"}],
        }
    ]
    prio = (
        await v2(
            api,
            "POST",
            "/availability",
            {**query, "mode": "roundrobin_prioritized"},
            key=api.public_key,
        )
    ).json()["data"]
    assert [(s["start"], [r["name"] for r in s["resources"]]) for s in prio] == [
        ("2024-05-06T10:00:00+02:00", ["A"]),
        ("2024-05-06T11:00:00+02:00", ["A"]),
    ]
    rnd = (await v2(api, "POST", "/availability", {**query, "mode": "roundrobin_random"})).json()
    assert [len(s["resources"]) for s in rnd["data"]] == [1, 1]
    # Oslo 10-11 local only (allow_hours), Monday only
    narrowed = (
        await v2(
            api,
            "POST",
            "/availability",
            {
                **query,
                "mode": "roundrobin_prioritized",
                "constraints": [
                    {"allow_day": {"day": "Monday"}},
                    {"allow_hours": {"start": 11, "end": 12}},
                ],
            },
        )
    ).json()
    assert [s["start"] for s in narrowed["data"]] == ["2024-05-06T11:00:00+02:00"]
    blocked = (
        await v2(
            api,
            "POST",
            "/availability",
            {
                **query,
                "mode": "mutual",
                "constraints": [
                    {"block_period": {"start": f"{MONDAY}T09:30:00Z", "end": f"{MONDAY}T09:45:00Z"}}
                ],
            },
        )
    ).json()
    assert blocked["data"] == []
    too_many = await v2(api, "POST", "/availability", {**query, "resources": [a["id"]] * 201})
    assert too_many.status_code == 422
    assert "resources" in too_many.json()["errors"]
    bad = await v2(api, "POST", "/availability", {**query, "constraints": [{"allow_moon": {}}]})
    assert bad.status_code == 422
    assert "constraints.0" in bad.json()["errors"]


async def test_projects_and_the_widget_view(api: Api) -> None:
    res = await resource(api)
    r = await v2(
        api,
        "POST",
        "/projects",
        {
            "name": "Sales demo",
            "slug": "sales-demo",
            "resources": [res["id"]],
            "booking": {"graph": "instant"},
            "availability": {"mode": "roundrobin_random", "length": "30 minutes"},
            "customer_fields": {"name": {"title": "Name", "required": True}},
            "ui": {"display_name": "Doc"},
        },
    )
    assert r.status_code == 201, r.text
    pid = r.json()["data"]["id"]
    embed = (await v2(api, "GET", f"/projects/embed/{pid}", key=api.public_key)).json()["data"]
    assert set(embed) == {
        "id",
        "slug",
        "name",
        "app_key",
        "booking",
        "availability",
        "availability_constraints",
        "customer_fields",
        "ui",
    }
    assert embed["app_key"] == api.public_key
    assert embed["availability"]["resources"] == [res["id"]]
    hosted = (await v2(api, "GET", "/projects/hosted/sales-demo", key=api.public_key)).json()
    assert hosted["data"]["id"] == pid
    dup = await v2(api, "POST", "/projects", {"name": "x", "slug": "sales-demo"})
    assert dup.status_code == 409
    slots = (
        await v2(
            api,
            "POST",
            "/availability",
            {"project_id": pid, "from": f"{MONDAY}T08:00:00Z", "to": f"{MONDAY}T09:00:00Z"},
            key=api.public_key,
        )
    ).json()["data"]
    assert len(slots) == 3  # 30 minutes on the 15-minute grid: 08:00, 08:15, 08:30
    assert (await v2(api, "DELETE", f"/projects/{pid}")).status_code == 200
    gone = await v2(api, "GET", f"/projects/embed/{pid}", key=api.public_key)
    assert gone.status_code == 404
