"""A booking under a resource's rules lasts whole minutes, at least one (docs/api.md): a booking
of one microsecond (end = start + 0.000001 s) was accepted from the public key. The rule is
the domain's (`availability.check_booking`), so /v1 and the /v2 adapter answer the same 422
`duration_not_whole_minutes`; `override_rules` (the secret key) books any length, and a move
that keeps a booking's length is not refused for it (docs/availability.md). Both backends."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.api.test_timekit import MONDAY, customer, resource, v2

START = "2024-06-03T10:00:00"
ANN = {"name": "Ann", "email": "ann@example.com"}


@pytest.mark.parametrize("end", ["10:00:00.000001", "10:00:30", "10:01:30", "10:59:59.999999"])
async def test_v1_lengths_that_are_not_whole_minutes_are_422(api: Api, end: str) -> None:
    rid = (await api.resource(timezone="UTC", slot_step="PT1M"))["resource_id"]
    body = {"resource_id": rid, "start_time": START + "Z", "end_time": f"2024-06-03T{end}Z"}
    for key in (api.public_key, api.secret_key):
        r = await api.http.post(
            "/v1/bookings",
            json={**body, "customer": ANN},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "duration_not_whole_minutes"
    assert (await api.get("/v1/bookings")).json()["data"] == []
    # The secret key may still book any length, outside the rules.
    r = await api.post("/v1/bookings", {**body, "customer": ANN, "override_rules": True})
    assert r.status_code == 201, r.text


async def test_v1_whole_minutes_are_booked(api: Api) -> None:
    rid = (await api.resource(timezone="UTC", slot_step="PT1M"))["resource_id"]
    body = {"resource_id": rid, "start_time": START + "Z", "end_time": "2024-06-03T10:01:00Z"}
    r = await api.http.post(
        "/v1/bookings",
        json={**body, "customer": ANN},
        headers={"Authorization": f"Bearer {api.public_key}"},
    )
    assert r.status_code == 201, r.text


async def test_v2_a_microsecond_booking_is_422(api: Api) -> None:
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
            "end": f"{MONDAY}T10:00:00.000001+02:00",
            "what": "A blink",
            "customer": customer(),
        },
        key=api.public_key,
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "duration_not_whole_minutes"


async def _odd_booking(api: Api) -> tuple[str, str]:
    """A booking of 30 minutes 30 seconds, made with `override_rules` (the secret key): its id
    and its customer token."""
    rid = (await api.resource(timezone="UTC", slot_step="PT1M"))["resource_id"]
    r = await api.post(
        "/v1/bookings",
        {
            "resource_id": rid,
            "start_time": START + "Z",
            "end_time": "2024-06-03T10:30:30Z",
            "customer": ANN,
            "override_rules": True,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["booking_id"], r.json()["customer_token"]


async def test_a_booking_of_odd_length_moves_when_it_keeps_its_length(api: Api) -> None:
    """Its length was allowed when it was set (override_rules): a move that keeps it, under the
    rules, by the secret key or by its customer (who may not change a length at all), is not
    refused for it. Before, every such move was a 422 `duration_not_whole_minutes`."""
    bid, token = await _odd_booking(api)
    moves = [
        (api, "2024-06-03T11:00:00Z", "2024-06-03T11:30:30Z"),
        (api.as_key(token), "2024-06-03T12:00:00Z", "2024-06-03T12:30:30Z"),
        (api, "2024-06-04T09:00:00+02:00", "2024-06-04T09:30:30+02:00"),
    ]
    for caller, start, end in moves:
        r = await caller.put(f"/v1/bookings/{bid}", {"start_time": start, "end_time": end})
        assert r.status_code == 200, r.text
    got = (await api.get(f"/v1/bookings/{bid}")).json()
    assert (got["start_time"], got["end_time"]) == ("2024-06-04T07:00:00Z", "2024-06-04T07:30:30Z")
    # /v2's reschedule is the same move.
    r = await v2(
        api,
        "POST",
        f"/bookings/{bid}/reschedule",
        {"start": "2024-06-05T10:00:00+00:00", "end": "2024-06-05T10:30:30+00:00"},
    )
    assert r.status_code == 200, r.text
    # The rest of the rules still hold for it: the grid (a start at 10:00:30), and so on.
    r = await api.put(
        f"/v1/bookings/{bid}",
        {"start_time": "2024-06-06T10:00:30Z", "end_time": "2024-06-06T10:31:00Z"},
    )
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "outside_availability"


async def test_a_move_that_sets_an_odd_length_is_still_422(api: Api) -> None:
    bid, _ = await _odd_booking(api)
    # A new length that is not whole minutes: 422, as for a new booking; its end alone too.
    for body in (
        {"start_time": "2024-06-03T11:00:00Z", "end_time": "2024-06-03T11:20:10Z"},
        {"end_time": "2024-06-03T10:30:31Z"},
    ):
        r = await api.put(f"/v1/bookings/{bid}", body)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "duration_not_whole_minutes"
    got = (await api.get(f"/v1/bookings/{bid}")).json()
    assert (got["start_time"], got["end_time"]) == ("2024-06-03T10:00:00Z", "2024-06-03T10:30:30Z")
    # A whole-minute length set by the move is booked.
    r = await api.put(
        f"/v1/bookings/{bid}",
        {"start_time": "2024-06-03T11:00:00Z", "end_time": "2024-06-03T11:20:00Z"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["end_time"] == "2024-06-03T11:20:00Z"
