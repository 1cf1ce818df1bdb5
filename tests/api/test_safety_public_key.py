"""Issue 10: the browser (public) key, least privilege, and the bounds of a booking.

Expectations from the issue and docs/security.md: the public key books only with an inline
customer, only in the app's public graphs, without override_rules, with payment_timeout at most
P1D; it never learns a client's id; it reads a resource's public fields only. A booking is at
most P31D long unless its resource's max_duration allows more; a class has at most 10,000 seats.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

DAY = "2024-05-20"  # a Monday, after the test clock's now (2024-05-01)
SLOT = {"start_time": f"{DAY}T10:00:00Z", "end_time": f"{DAY}T11:00:00Z"}
ADA = {"name": "Ada", "email": "ada@example.com"}


def assert_problem(r: Any, status: int, code: str, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code
    if field is not None:
        assert field in [e["field"] for e in r.json()["errors"]], r.text


async def test_public_key_cannot_book_by_client_id(api: Api) -> None:
    resource = await api.resource()
    client = await api.client()
    public = api.as_key(api.public_key)
    r = await public.post(
        "/v1/bookings",
        {"resource_id": resource["resource_id"], "client_id": client["client_id"], **SLOT},
    )
    assert_problem(r, 403, "forbidden")
    assert "customer" in r.json()["detail"]
    assert (await api.get("/v1/bookings")).json()["data"] == []


async def test_an_email_of_a_client_links_without_revealing_it(api: Api) -> None:
    resource = await api.resource()
    client = await api.client(name="Ada Lovelace", email="ada@example.com", phone="+4712345678")
    earlier = await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time=f"{DAY}T08:00:00Z",
        end_time=f"{DAY}T09:00:00Z",
    )
    public = api.as_key(api.public_key)
    r = await public.post(
        "/v1/bookings",
        {
            "resource_id": resource["resource_id"],
            "customer": {"name": "Someone", "email": "ADA@example.com"},
            **SLOT,
        },
    )
    assert r.status_code == 201, r.text
    text = r.text
    assert r.json()["client_id"] is None
    for secret in (client["client_id"], earlier["booking_id"], "Lovelace", "+4712345678"):
        assert secret not in text
    # It is linked: the secret key sees the client on it, and the client is unchanged.
    mine = (await api.get(f"/v1/bookings/{r.json()['booking_id']}")).json()
    assert mine["client_id"] == client["client_id"]
    assert (await api.get(f"/v1/clients/{client['client_id']}")).json()["name"] == "Ada Lovelace"


async def test_the_timekit_answer_names_no_client_either(api: Api) -> None:
    resource = await api.resource()
    client = await api.client(name="Ada Lovelace", email="ada@example.com")
    r = await api.http.post(
        "/v2/bookings",
        params={"include": "attributes,customers"},
        json={
            "resource_id": resource["resource_id"],
            "graph": "instant",
            "start": SLOT["start_time"],
            "end": SLOT["end_time"],
            "customer": {"name": "Someone", "email": "ada@example.com"},
        },
        headers={"Authorization": f"Bearer {api.public_key}"},
    )
    assert r.status_code == 201, r.text
    assert client["client_id"] not in r.text
    assert "Lovelace" not in r.text


async def test_public_graphs_setting_and_group_owner(api: Api) -> None:
    resource = await api.resource()
    public = api.as_key(api.public_key)
    body = {"resource_id": resource["resource_id"], "customer": ADA, **SLOT}
    owner = {
        "resource_id": resource["resource_id"],
        "graph": "group_owner",
        "max_seats": 10,
        **SLOT,
    }
    assert_problem(await public.post("/v1/bookings", owner), 403, "forbidden")
    r = await api.put("/v1/app", {"public_graphs": ["instant"]})
    assert r.status_code == 200, r.text
    r = await public.post("/v1/bookings", {**body, "graph": "confirm_decline"})
    assert_problem(r, 403, "forbidden")
    assert "public_graphs" in r.json()["detail"]
    r = await public.post("/v1/bookings", {**body, "graph": "instant"})
    assert r.status_code == 201, r.text


async def test_seats_are_at_most_10000(api: Api) -> None:
    resource = await api.resource()
    owner = {"resource_id": resource["resource_id"], "graph": "group_owner", **SLOT}
    assert_problem(
        await api.post("/v1/bookings", {**owner, "max_seats": 100_000}),
        422,
        "validation_error",
        "max_seats",
    )
    assert (await api.post("/v1/bookings", {**owner, "max_seats": 10_000})).status_code == 201


async def test_public_key_no_override_rules(api: Api) -> None:
    resource = await api.resource()
    public = api.as_key(api.public_key)
    body = {"resource_id": resource["resource_id"], "customer": ADA, "override_rules": True, **SLOT}
    assert_problem(await public.post("/v1/bookings", body), 403, "forbidden")


async def test_payment_timeout_for_the_public_key(api: Api) -> None:
    resource = await api.resource()
    public = api.as_key(api.public_key)
    body = {
        "resource_id": resource["resource_id"],
        "customer": ADA,
        "graph": "instant_payment",
        **SLOT,
    }
    assert_problem(
        await public.post("/v1/bookings", {**body, "payment_timeout": "P50Y"}),
        422,
        "validation_error",
        "payment_timeout",
    )
    r = await public.post("/v1/bookings", {**body, "payment_timeout": "P2D"})
    assert_problem(r, 422, "validation_error", "payment_timeout")
    assert "P1D" in r.json()["detail"]
    r = await public.post("/v1/bookings", {**body, "payment_timeout": "P1D"})
    assert r.status_code == 201, r.text
    later = {**body, "start_time": f"{DAY}T12:00:00Z", "end_time": f"{DAY}T13:00:00Z"}
    r = await api.post("/v1/bookings", {**later, "payment_timeout": "P2D"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("key", ["public", "secret"])
async def test_a_booking_is_at_most_31_days(api: Api, key: str) -> None:
    resource = await api.resource()
    caller = api.as_key(api.public_key if key == "public" else api.secret_key)
    body = {"resource_id": resource["resource_id"], "customer": ADA}
    for start, end in (
        ("3000-01-01T00:00:00Z", "5000-01-01T00:00:00Z"),
        ("2100-01-01T00:00:00Z", "2199-01-01T00:00:00Z"),
        ("2024-06-01T00:00:00Z", "2024-07-02T00:00:01Z"),
    ):
        r = await caller.post("/v1/bookings", {**body, "start_time": start, "end_time": end})
        assert r.status_code == 422, r.text
    r = await caller.post(
        "/v1/bookings",
        {**body, "start_time": "2024-06-01T00:00:00Z", "end_time": "2024-07-02T00:00:00Z"},
    )
    assert r.status_code == 201, r.text


async def test_override_rules_keeps_the_length_bound_and_max_duration_extends_it(api: Api) -> None:
    resource = await api.resource()
    rid = resource["resource_id"]
    body = {"resource_id": rid, "customer": ADA, "override_rules": True}
    long = {"start_time": "2024-06-01T00:00:00Z", "end_time": "2024-07-16T00:00:00Z"}  # 45 days
    r = await api.post("/v1/bookings", {**body, **long})
    assert_problem(r, 422, "validation_error", "end_time")
    assert "P31D" in r.json()["detail"]
    assert (await api.put(f"/v1/resources/{rid}", {"max_duration": "P60D"})).status_code == 200
    r = await api.post("/v1/bookings", {**body, **long})
    assert r.status_code == 201, r.text


async def test_public_key_reads_public_fields_only(api: Api) -> None:
    hidden = await api.resource(
        email="berg@example.com", meta={"internal": "x"}, location="Oslo", kind="dentist"
    )
    await api.resource(name="Room", meta={"public": True, "floor": 2})
    public = api.as_key(api.public_key)
    one = (await public.get(f"/v1/resources/{hidden['resource_id']}")).json()
    assert (one["name"], one["kind"], one["timezone"], one["location"]) == (
        "Dr. Berg",
        "dentist",
        "Europe/Oslo",
        "Oslo",
    )
    assert (one["email"], one["meta"]) == (None, {})
    listed = {r["name"]: r for r in (await public.get("/v1/resources")).json()["data"]}
    assert (listed["Dr. Berg"]["email"], listed["Dr. Berg"]["meta"]) == (None, {})
    assert listed["Room"]["meta"] == {"public": True, "floor": 2}
    v2 = await api.http.get(
        f"/v2/resources/{hidden['resource_id']}",
        headers={"Authorization": f"Bearer {api.public_key}"},
    )
    assert v2.status_code == 200, v2.text
    assert "berg@example.com" not in v2.text
    assert "internal" not in v2.text
    v2 = await api.http.get("/v2/resources", headers={"Authorization": f"Bearer {api.public_key}"})
    assert "berg@example.com" not in v2.text
    # The secret key still sees everything.
    full = (await api.get(f"/v1/resources/{hidden['resource_id']}")).json()
    assert (full["email"], full["meta"]) == ("berg@example.com", {"internal": "x"})
