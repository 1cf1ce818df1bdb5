"""A booking under a resource's rules lasts whole minutes, at least one (docs/api.md): a booking
of one microsecond (end = start + 0.000001 s) was accepted from the public key. The rule is
the domain's (`availability.check_booking`), so /v1 and the /v2 adapter answer the same 422
`duration_not_whole_minutes`; `override_rules` (the secret key) books any length. Both backends."""

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
