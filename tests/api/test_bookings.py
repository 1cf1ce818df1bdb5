"""The booking core through HTTP: create, read, list, modify, cancel, history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from slotgraph.schemas import BookingCreated
from tests.api.conftest import Api

START = "2024-05-18T10:00:00Z"
END = "2024-05-18T11:00:00Z"


@pytest.fixture
async def setup(api: Api) -> dict[str, Any]:
    return {"resource": await api.resource(), "client": await api.client()}


def slot(setup: dict[str, Any], start: str = START, end: str = END, **extra: Any) -> dict[str, Any]:
    return {
        "resource_id": setup["resource"]["resource_id"],
        "client_id": setup["client"]["client_id"],
        "start_time": start,
        "end_time": end,
        **extra,
    }


async def test_seed_request_works_verbatim(api: Api, setup: dict[str, Any]) -> None:
    body = {
        "resource_id": setup["resource"]["resource_id"],
        "start_time": "2024-05-18T10:00:00Z",
        "end_time": "2024-05-18T11:00:00Z",
        "client_id": setup["client"]["client_id"],
        "details": "Meeting regarding project updates",
    }
    r = await api.post("/v1/bookings", body)
    assert r.status_code == 201, r.text
    b = r.json()
    assert r.headers["location"] == f"/v1/bookings/{b['booking_id']}"
    for key in ("resource_id", "start_time", "end_time", "client_id", "details"):
        assert b[key] == body[key]
    assert b["status"] == "confirmed"
    assert b["graph"] == "instant"
    assert b["meta"] == {}
    assert b["available_actions"] == ["cancel", "cancel_by_customer", "cancel_by_owner", "complete"]
    assert b["completed"] is False
    assert b["created_at"]
    assert b["updated_at"]
    assert b.pop("customer_token").startswith("ct_")  # in the create answer only
    got = await api.get(f"/v1/bookings/{b['booking_id']}")
    assert got.status_code == 200
    assert got.json() == b


async def test_overlap_is_refused_and_adjacent_is_fine(api: Api, setup: dict[str, Any]) -> None:
    await api.book(**slot(setup))
    r = await api.post("/v1/bookings", slot(setup, "2024-05-18T10:45:00Z", "2024-05-18T12:00:00Z"))
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "slot_unavailable"
    # Half-open intervals: ending at 10:00 or starting at 11:00 touches but does not overlap.
    await api.book(**slot(setup, "2024-05-18T09:00:00Z", "2024-05-18T10:00:00Z"))
    await api.book(**slot(setup, "2024-05-18T11:00:00Z", "2024-05-18T12:00:00Z"))
    # The same time on another resource is fine.
    other = await api.resource(name="Room 2")
    await api.book(**slot(setup, resource_id=other["resource_id"]))


async def test_offsets_are_normalised_to_utc(api: Api, setup: dict[str, Any]) -> None:
    b = await api.book(**slot(setup, "2024-05-18T12:00:00+02:00", "2024-05-18T13:00:00+02:00"))
    assert b["start_time"] == START
    r = await api.post("/v1/bookings", slot(setup))  # the same instant, written in UTC
    assert r.json()["code"] == "slot_unavailable"


async def test_cancel_frees_the_slot_and_keeps_the_booking(api: Api, setup: dict[str, Any]) -> None:
    b = await api.book(**slot(setup))
    r = await api.delete(f"/v1/bookings/{b['booking_id']}")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert r.json()["completed"] is True
    assert r.json()["available_actions"] == []
    again = await api.book(**slot(setup))
    assert again["status"] == "confirmed"
    kept = await api.get(f"/v1/bookings/{b['booking_id']}")
    assert kept.json()["status"] == "cancelled"
    history = (await api.get(f"/v1/bookings/{b['booking_id']}/history")).json()["data"]
    assert [(h["from"], h["action"], h["to"]) for h in history] == [
        (None, "create", "confirmed"),
        ("confirmed", "cancel", "cancelled"),
    ]
    assert all(h["actor_key_id"] for h in history)


async def test_cancelling_twice_is_invalid_action(api: Api, setup: dict[str, Any]) -> None:
    b = await api.book(**slot(setup))
    await api.delete(f"/v1/bookings/{b['booking_id']}")
    r = await api.delete(f"/v1/bookings/{b['booking_id']}")
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_action"
    assert r.json()["allowed_actions"] == []


async def test_modify_rechecks_the_slot_atomically(api: Api, setup: dict[str, Any]) -> None:
    first = await api.book(**slot(setup))
    second = await api.book(**slot(setup, "2024-05-18T12:00:00Z", "2024-05-18T13:00:00Z"))
    path = f"/v1/bookings/{second['booking_id']}"
    r = await api.put(path, {"start_time": "2024-05-18T10:30:00Z"})
    assert r.status_code == 409
    assert r.json()["code"] == "slot_unavailable"
    unchanged = (await api.get(path)).json()
    second.pop("customer_token")  # the create answer's only
    assert unchanged == second
    # Moving within its own old time (overlapping itself) is fine.
    r = await api.put(path, {"start_time": "2024-05-18T11:30:00Z", "details": "earlier"})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["start_time"], moved["details"]) == ("2024-05-18T11:30:00Z", "earlier")
    assert moved["version"] == second["version"] + 1
    # The old time is free again, the new one is taken.
    await api.book(**slot(setup, "2024-05-18T13:00:00Z", "2024-05-18T14:00:00Z"))
    r = await api.post("/v1/bookings", slot(setup, "2024-05-18T11:00:00Z", "2024-05-18T11:45:00Z"))
    assert r.json()["code"] == "slot_unavailable"
    # Moving to another resource re-checks there.
    room = await api.resource(name="Room")
    await api.book(**slot(setup, resource_id=room["resource_id"]))
    r = await api.put(f"/v1/bookings/{first['booking_id']}", {"resource_id": room["resource_id"]})
    assert r.json()["code"] == "slot_unavailable"
    history = (await api.get(f"{path}/history")).json()["data"]
    assert [h["action"] for h in history] == ["create", "update"]
    assert history[1]["meta"] == {"changed": ["start_time", "details"]}


async def test_modify_validates(api: Api, setup: dict[str, Any]) -> None:
    b = await api.book(**slot(setup))
    path = f"/v1/bookings/{b['booking_id']}"
    r = await api.put(path, {"end_time": "2024-05-18T09:00:00Z"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "end_time"
    r = await api.put(path, {"status": "cancelled"})
    assert r.status_code == 422
    r = await api.put(path, {"resource_id": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "resource_id"
    await api.delete(path)
    r = await api.put(path, {"details": "too late"})
    assert r.status_code == 409
    assert r.json()["code"] == "not_modifiable"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end_time": START}, "end_time"),
        ({"end_time": "2024-05-18T09:00:00Z"}, "end_time"),
        ({"start_time": "2024-05-18T10:00:00"}, "start_time"),
        ({"end_time": "tomorrow"}, "end_time"),
        ({"resource_id": "not-a-uuid"}, "resource_id"),
        ({"resource_id": "00000000-0000-0000-0000-000000000000"}, "resource_id"),
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, "client_id"),
        ({"colour": "blue"}, "colour"),
        ({"details": 12}, "details"),
        ({"graph": "nope"}, "graph"),
        ({"resource_id": None}, "resource_id"),
        ({"client_id": None}, "client_id"),
        ({"meta": []}, "meta"),
        ({"payment_timeout": "PT5M"}, "payment_timeout"),
        ({"max_seats": 3}, "max_seats"),
    ],
)
async def test_bad_input_is_422_with_the_field_path(
    api: Api, setup: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    body = {**slot(setup), **change}
    r = await api.post("/v1/bookings", body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert problem["status"] == 422
    assert problem["code"] == "validation_error"
    assert field in [e["field"] for e in problem["errors"]]
    # Nothing was written.
    listed = await api.get("/v1/bookings")
    assert listed.json()["data"] == []


async def test_malformed_json_is_400(api: Api) -> None:
    r = await api.http.post(
        "/v1/bookings",
        content=b'{"resource_id": ',
        headers={"Authorization": f"Bearer {api.key}", "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "malformed_json"


async def test_inline_customer_finds_or_creates_the_client(api: Api, setup: dict[str, Any]) -> None:
    base = {k: v for k, v in slot(setup).items() if k != "client_id"}
    b1 = await api.book(**base, customer={"name": "Bo", "email": "Bo@Example.com"})
    b2 = await api.book(
        **{**base, "start_time": "2024-05-18T11:00:00Z", "end_time": "2024-05-18T12:00:00Z"},
        customer={"name": "Bo", "email": "bo@example.com"},
    )
    assert b1["client_id"] == b2["client_id"]
    client = (await api.get(f"/v1/clients/{b1['client_id']}")).json()
    assert client["email"] == "bo@example.com"
    r = await api.post(
        "/v1/bookings",
        {
            **base,
            "customer": {"name": "No email"},
            "start_time": END,
            "end_time": "2024-05-18T13:00:00Z",
        },
    )
    assert r.status_code == 422


async def test_list_filters_and_pages(api: Api, setup: dict[str, Any]) -> None:
    other_client = await api.client()
    room = await api.resource(name="Room", kind="room")
    made = []
    for hour in range(8, 18):
        made.append(
            await api.book(
                **slot(
                    setup,
                    f"2024-05-18T{hour:02d}:00:00Z",
                    f"2024-05-18T{hour:02d}:30:00Z",
                    client_id=(other_client if hour % 2 else setup["client"])["client_id"],
                )
            )
        )
    await api.book(**slot(setup, resource_id=room["resource_id"]))
    await api.delete(f"/v1/bookings/{made[0]['booking_id']}")

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"resource_id": setup["resource"]["resource_id"], "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/bookings", **params)).json()
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [b["booking_id"] for b in seen] == [b["booking_id"] for b in made]

    by_client = (await api.get("/v1/bookings", client_id=other_client["client_id"])).json()
    assert {b["start_time"][11:13] for b in by_client["data"]} == {"09", "11", "13", "15", "17"}
    cancelled = (await api.get("/v1/bookings", status="cancelled")).json()["data"]
    assert [b["booking_id"] for b in cancelled] == [made[0]["booking_id"]]
    window = (
        await api.get(
            "/v1/bookings",
            **{"from": "2024-05-18T10:15:00Z", "to": "2024-05-18T12:00:00Z"},
            resource_id=setup["resource"]["resource_id"],
        )
    ).json()["data"]
    assert [b["start_time"][11:16] for b in window] == ["10:00", "11:00"]
    assert (await api.get("/v1/bookings", limit=201)).status_code == 422
    assert (await api.get("/v1/bookings", cursor="garbage!")).status_code == 400
    naive = await api.get("/v1/bookings", **{"from": "2024-05-18T10:00:00"})
    assert naive.status_code == 422


async def test_actions_unknown_and_messages(api: Api, setup: dict[str, Any]) -> None:
    b = await api.book(**slot(setup))
    path = f"/v1/bookings/{b['booking_id']}"
    r = await api.put(f"{path}/fly")
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_action"
    assert r.json()["allowed_actions"] == b["available_actions"]
    r = await api.put(f"{path}/complete", {"message": "went well"})
    assert r.status_code == 200
    assert r.json()["status"] == "completed"
    history = (await api.get(f"{path}/history")).json()["data"]
    assert history[-1]["message"] == "went well"
    api.clock.advance(timedelta(hours=1))
    assert (await api.get(f"{path}/history")).json()["data"] == history


NOBODY = "01900000-0000-7000-8000-000000000000"


@pytest.mark.parametrize(
    ("client", "resource", "errors"),
    [
        (True, False, [("resource_id", f"no such resource: {NOBODY}")]),
        (False, True, [("client_id", "no such client")]),
        (  # every unknown id at once
            False,
            False,
            [("client_id", "no such client"), ("resource_id", f"no such resource: {NOBODY}")],
        ),
    ],
)
async def test_unknown_client_or_resource_is_422_on_its_field(
    api: Api,
    setup: dict[str, Any],
    client: bool,
    resource: bool,
    errors: list[tuple[str, str]],
) -> None:
    body = slot(setup)
    if not client:
        body["client_id"] = NOBODY
    if not resource:
        body["resource_id"] = NOBODY
    r = await api.post("/v1/bookings", body)
    assert r.status_code == 422, r.text
    assert [(e["field"], e["message"]) for e in r.json()["errors"]] == errors
    assert (await api.get("/v1/bookings")).json()["data"] == []


async def test_the_create_answer_is_the_schema_rendered_byte_for_byte(
    api: Api, setup: dict[str, Any]
) -> None:
    """The answer is made from the booking's JSON, rendered once for the answer and its event
    (ADR 0005); it must be the very text the answer's schema renders, odd characters and all."""
    odd = 'Quote " backslash \\ ø 日本 \u2028 </script> \t tab'
    meta = {"n": 1.5, "big": 2**62, "list": [None, True, "ø"], "nested": {"e": ""}}
    for extra in (
        {"details": odd, "meta": meta},
        {"client_id": None, "graph": "group_owner", "max_seats": 3},  # no client: no token
    ):
        r = await api.post("/v1/bookings", slot(setup, **extra))
        assert r.status_code == 201, r.text
        assert r.content == BookingCreated.model_validate_json(r.content).model_dump_json().encode()
        setup = {**setup, "resource": await api.resource()}
    public = await api.as_key(api.public_key).post(
        "/v1/bookings",
        {
            "resource_id": setup["resource"]["resource_id"],
            "start_time": "2031-05-18T10:00:00Z",
            "end_time": "2031-05-18T11:00:00Z",
            "customer": {"name": "Åse Ødegård", "email": "odd@example.com"},
            "details": odd,
        },
    )
    assert public.status_code == 201, public.text
    assert public.json()["client_id"] is None  # the public key never learns a client's id
    assert public.content == (
        BookingCreated.model_validate_json(public.content).model_dump_json().encode()
    )
