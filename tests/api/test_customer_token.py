"""The customer token: made once at create, stored hashed, and on the API it opens exactly its
own booking, for reading, a reschedule, the language of its emails and cancel_by_customer."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import Api

START = "2024-05-18T10:00:00Z"
END = "2024-05-18T11:00:00Z"


@pytest.fixture
async def booked(api: Api) -> dict[str, Any]:
    resource = await api.resource()
    booking = await api.book(
        resource_id=resource["resource_id"],
        start_time=START,
        end_time=END,
        customer={"name": "Ann", "email": "ann@example.com"},
    )
    return {"resource": resource, "booking": booking}


def as_customer(api: Api, token: str) -> Api:
    return api.as_key(token)


async def test_create_answers_the_token_once_and_stores_only_its_hash(
    api: Api, booked: dict[str, Any], engine: AsyncEngine
) -> None:
    token = booked["booking"]["customer_token"]
    assert token.startswith("ct_")
    assert len(token) - 3 >= 43  # 256 bits, url-safe base64 (at least 128 required)
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT token_hash, kind FROM booking_tokens"))).all()
        rows = []
        for table in ("bookings", "events", "booking_transitions", "clients"):
            rows += (await conn.execute(text(f"SELECT * FROM {table}"))).all()
    dump = "\n".join(str(row) for row in rows)
    assert [tuple(r) for r in stored] == [(hashlib.sha256(token.encode()).hexdigest(), "customer")]
    assert token not in dump
    got = await api.get(f"/v1/bookings/{booked['booking']['booking_id']}")
    assert "customer_token" not in got.json()


async def test_the_public_key_gets_a_token_too(api: Api) -> None:
    resource = await api.resource()
    b = await api.as_key(api.public_key).book(
        resource_id=resource["resource_id"],
        start_time="2030-05-18T10:00:00Z",
        end_time="2030-05-18T11:00:00Z",
        customer={"name": "Bo", "email": "bo@example.com"},
    )
    assert b["customer_token"].startswith("ct_")
    r = await as_customer(api, b["customer_token"]).get(f"/v1/bookings/{b['booking_id']}")
    assert r.status_code == 200, r.text
    assert r.json()["booking_id"] == b["booking_id"]


async def test_no_client_no_token(api: Api) -> None:
    resource = await api.resource()
    b = await api.book(
        graph="group_owner",
        max_seats=5,
        resource_id=resource["resource_id"],
        start_time=START,
        end_time=END,
    )
    assert b["customer_token"] is None


async def test_the_token_reads_its_booking_and_nothing_else(
    api: Api, booked: dict[str, Any]
) -> None:
    me = as_customer(api, booked["booking"]["customer_token"])
    bid = booked["booking"]["booking_id"]
    r = await me.get(f"/v1/bookings/{bid}")
    assert r.status_code == 200
    assert r.json()["status"] == "confirmed"
    other = await api.book(
        resource_id=booked["resource"]["resource_id"],
        start_time="2024-05-19T10:00:00Z",
        end_time="2024-05-19T11:00:00Z",
        customer={"name": "Bo", "email": "bo@example.com"},
    )
    r = await me.get(f"/v1/bookings/{other['booking_id']}")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    for path in (
        "/v1/bookings",
        f"/v1/bookings/{bid}/history",
        "/v1/resources",
        f"/v1/resources/{booked['resource']['resource_id']}",
        "/v1/clients",
        "/v1/webhooks",
        "/v1/app",
    ):
        r = await me.get(path)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["code"] == "forbidden"
    r = await me.post(
        "/v1/bookings",
        {
            "resource_id": booked["resource"]["resource_id"],
            "start_time": "2024-05-20T10:00:00Z",
            "end_time": "2024-05-20T11:00:00Z",
            "customer": {"name": "Ann", "email": "ann@example.com"},
        },
    )
    assert r.status_code == 403
    assert (await me.delete(f"/v1/bookings/{bid}")).status_code == 403
    assert (await api.as_key("ct_unknown").get(f"/v1/bookings/{bid}")).status_code == 401


async def test_the_customer_may_cancel_by_customer_only(api: Api, booked: dict[str, Any]) -> None:
    me = as_customer(api, booked["booking"]["customer_token"])
    bid = booked["booking"]["booking_id"]
    # What the token's answer offers is what it may apply: before, every action of the state
    # (cancel, cancel_by_owner, complete), each refused below. The secret key sees them all.
    assert (await me.get(f"/v1/bookings/{bid}")).json()["available_actions"] == [
        "cancel_by_customer"
    ]
    owned = (await api.get(f"/v1/bookings/{bid}")).json()["available_actions"]
    assert {"cancel", "cancel_by_owner", "cancel_by_customer"} <= set(owned), owned
    for action in ("cancel", "cancel_by_owner", "complete"):
        r = await me.put(f"/v1/bookings/{bid}/{action}")
        assert r.status_code == 403, (action, r.text)
    r = await me.put(f"/v1/bookings/{bid}/cancel_by_customer", {"message": "ill"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled_by_customer"


async def test_the_customer_may_reschedule_and_change_nothing_else(
    api: Api, booked: dict[str, Any]
) -> None:
    me = as_customer(api, booked["booking"]["customer_token"])
    bid = booked["booking"]["booking_id"]
    for body in ({"details": "x"}, {"meta": {"a": 1}}, {"override_rules": True}):
        for also in ({"start_time": "2024-05-18T12:00:00Z"}, {"locale": "de"}):
            r = await me.put(f"/v1/bookings/{bid}", {**also, **body})
            assert r.status_code == 403, (body, r.text)
    shown = (await me.get(f"/v1/bookings/{bid}")).json()
    assert (shown["start_time"], shown["locale"]) == (START, None)
    # a taken time keeps the old one
    await api.book(
        resource_id=booked["resource"]["resource_id"],
        start_time="2024-05-18T14:00:00Z",
        end_time="2024-05-18T15:00:00Z",
        customer={"name": "Bo", "email": "bo@example.com"},
    )
    r = await me.put(
        f"/v1/bookings/{bid}",
        {"start_time": "2024-05-18T14:30:00Z", "end_time": "2024-05-18T15:30:00Z"},
    )
    assert r.status_code == 409
    assert (await me.get(f"/v1/bookings/{bid}")).json()["start_time"] == START
    r = await me.put(
        f"/v1/bookings/{bid}",
        {"start_time": "2024-05-18T12:00:00Z", "end_time": "2024-05-18T13:00:00Z"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["start_time"] == "2024-05-18T12:00:00Z"


async def test_after_the_start_the_customer_may_only_choose_the_language(
    api: Api, booked: dict[str, Any]
) -> None:
    me = as_customer(api, booked["booking"]["customer_token"])
    bid = booked["booking"]["booking_id"]
    api.clock.advance(timedelta(days=17, hours=1, minutes=1))  # past 2024-05-18T10:00Z
    r = await me.put(f"/v1/bookings/{bid}/cancel_by_customer")
    assert r.status_code == 409
    assert r.json()["code"] == "notice_passed"
    r = await me.put(
        f"/v1/bookings/{bid}",
        {"start_time": "2024-05-20T12:00:00Z", "end_time": "2024-05-20T13:00:00Z"},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "notice_passed"
    # The language of the emails still to come moves nothing: no notice closes it.
    r = await me.put(f"/v1/bookings/{bid}", {"locale": "de"})
    assert r.status_code == 200, r.text
    assert (r.json()["locale"], r.json()["start_time"]) == ("de", START)
    # the secret key is not bound by the customer's notice
    r = await api.put(f"/v1/bookings/{bid}/cancel_by_customer")
    assert r.status_code == 200


async def test_the_token_offers_the_cancel_while_the_cancel_is_allowed(
    api: Api, booked: dict[str, Any]
) -> None:
    """available_actions is what the token may apply now: past the start (the notice of a
    booking made on the API), no cancel, which is refused. Before, it was listed still."""
    me = as_customer(api, booked["booking"]["customer_token"])
    bid = booked["booking"]["booking_id"]
    api.clock.now = api.clock.now.replace(day=18, hour=9, minute=59, second=59)  # 1 s before
    assert (await me.get(f"/v1/bookings/{bid}")).json()["available_actions"] == [
        "cancel_by_customer"
    ]
    api.clock.advance(timedelta(seconds=1))  # the start: too late
    assert (await me.get(f"/v1/bookings/{bid}")).json()["available_actions"] == []
    r = await me.put(f"/v1/bookings/{bid}/cancel_by_customer")
    assert (r.status_code, r.json()["code"]) == (409, "notice_passed")
    # the answer of the change the token may still make says the same
    r = await me.put(f"/v1/bookings/{bid}", {"locale": "de"})
    assert (r.status_code, r.json()["available_actions"]) == (200, [])
    # the secret key is not bound by the customer's notice, and is offered it still
    assert (
        "cancel_by_customer" in (await api.get(f"/v1/bookings/{bid}")).json()["available_actions"]
    )


async def test_a_seats_token_offers_the_cancel_while_its_class_allows_it(api: Api) -> None:
    """A seat's class closes cancel_by_customer at start - min_cancel_time (409
    cancel_window_closed): the seat's token stops offering it at that moment."""
    resource = await api.resource(name="Yoga studio")
    owner = await api.book(
        graph="group_owner",
        resource_id=resource["resource_id"],
        start_time="2024-05-10T18:00:00Z",
        end_time="2024-05-10T19:00:00Z",
        max_seats=5,
        min_cancel_time="P1D",
    )
    seat = await api.book(
        graph="group_customer",
        owner_booking_id=owner["booking_id"],
        customer={"name": "Ann", "email": "ann@example.com"},
    )
    me = as_customer(api, seat["customer_token"])
    url = f"/v1/bookings/{seat['booking_id']}"
    api.clock.now = api.clock.now.replace(day=9, hour=18)  # exactly 1 day before: allowed
    assert (await me.get(url)).json()["available_actions"] == ["cancel_by_customer"]
    api.clock.advance(timedelta(seconds=1))
    assert (await me.get(url)).json()["available_actions"] == []
    r = await me.put(f"{url}/cancel_by_customer")
    assert (r.status_code, r.json()["code"]) == (409, "cancel_window_closed")
    assert (await me.get(url)).json()["status"] == "confirmed"


async def test_another_apps_key_cannot_use_the_token_booking(
    api: Api, other_api: Api, booked: dict[str, Any]
) -> None:
    r = await other_api.get(f"/v1/bookings/{booked['booking']['booking_id']}")
    assert r.status_code == 404


async def test_the_customer_moves_the_booking_ahead_and_keeps_its_length(
    api: Api, booked: dict[str, Any]
) -> None:
    me = as_customer(api, booked["booking"]["customer_token"])
    bid = booked["booking"]["booking_id"]
    longer = {"start_time": "2024-05-18T12:00:00Z", "end_time": "2024-05-18T20:00:00Z"}
    r = await me.put(f"/v1/bookings/{bid}", longer)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "end_time"
    passed = {"start_time": "2024-04-01T10:00:00Z", "end_time": "2024-04-01T11:00:00Z"}
    r = await me.put(f"/v1/bookings/{bid}", passed)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "in_the_past"
    got = (await me.get(f"/v1/bookings/{bid}")).json()
    assert (got["start_time"], got["end_time"]) == (START, END)
    # the secret key may still do both (a back office's corrections)
    assert (await api.put(f"/v1/bookings/{bid}", longer)).status_code == 200


async def test_the_customer_sees_none_of_what_the_app_wrote_for_itself(api: Api) -> None:
    resource = await api.resource()
    b = await api.book(
        resource_id=resource["resource_id"],
        start_time=START,
        end_time=END,
        customer={"name": "Ann", "email": "ann@example.com"},
        meta={"internal": "owes money"},
        details="staff note",
    )
    me = as_customer(api, b["customer_token"])
    bid = b["booking_id"]
    hidden = {"client_id": None, "meta": {}, "details": None}
    got = (await me.get(f"/v1/bookings/{bid}")).json()
    assert {k: got[k] for k in hidden} == hidden
    moved = await me.put(
        f"/v1/bookings/{bid}",
        {"start_time": "2024-05-18T12:00:00Z", "end_time": "2024-05-18T13:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    assert {k: moved.json()[k] for k in hidden} == hidden
    cancelled = await me.put(f"/v1/bookings/{bid}/cancel_by_customer")
    assert cancelled.status_code == 200, cancelled.text
    assert {k: cancelled.json()[k] for k in hidden} == hidden
    assert "owes money" not in cancelled.text
    assert "staff note" not in cancelled.text
    # the secret key still sees it all
    whole = (await api.get(f"/v1/bookings/{bid}")).json()
    assert whole["meta"] == {"internal": "owes money"}
    assert whole["details"] == "staff note"
    assert whole["client_id"] == b["client_id"]


async def test_a_time_the_owner_confirmed_is_not_the_customers_to_move(api: Api) -> None:
    """`confirm_decline`: the owner agreed to one time. The customer may move a request still
    waiting for the decision (the owner decides on the new time), not a confirmed one: before,
    the token moved a confirmed request to any free time, still confirmed, and the owner heard
    nothing (owners get emails of new bookings and requests only)."""
    resource = await api.resource()
    booking = await api.book(
        graph="confirm_decline",
        resource_id=resource["resource_id"],
        start_time=START,
        end_time=END,
        customer={"name": "Ann", "email": "ann@example.com"},
    )
    bid = booking["booking_id"]
    me = as_customer(api, booking["customer_token"])
    r = await me.put(
        f"/v1/bookings/{bid}",
        {"start_time": "2024-05-18T12:00:00Z", "end_time": "2024-05-18T13:00:00Z"},
    )
    assert r.status_code == 200, r.text  # still a request: the owner decides on this time
    assert (await api.put(f"/v1/bookings/{bid}/confirm", {})).status_code == 200
    r = await me.put(
        f"/v1/bookings/{bid}",
        {"start_time": "2024-05-19T08:00:00Z", "end_time": "2024-05-19T09:00:00Z"},
    )
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "confirmed_by_owner"
    shown = (await me.get(f"/v1/bookings/{bid}")).json()
    assert (shown["status"], shown["start_time"]) == ("confirmed", "2024-05-18T12:00:00Z")
    # Their language, and a cancel, stay theirs; the owner may still move it.
    assert (await me.put(f"/v1/bookings/{bid}", {"locale": "de"})).status_code == 200
    r = await api.put(
        f"/v1/bookings/{bid}",
        {"start_time": "2024-05-19T08:00:00Z", "end_time": "2024-05-19T09:00:00Z"},
    )
    assert r.status_code == 200, r.text
    assert (await me.put(f"/v1/bookings/{bid}/cancel_by_customer", {})).status_code == 200
