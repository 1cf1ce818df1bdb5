"""Dates and durations at the edge of the calendar (issue 9, item 4).

Every datetime the API takes is accepted from 1900-01-01T00:00:00Z to before
2200-01-01T00:00:00Z, and every duration up to its documented bound (docs/api.md); anything
else is 422 naming the field, never a 500. The tables below are written out from the docs.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.test_webhooks import one_booking

YEAR_1 = "0001-01-01T00:00:00+01:00"
YEAR_9999 = "9999-12-31T23:30:00-01:00"
OUTSIDE = [
    YEAR_1,
    YEAR_9999,
    "1899-12-31T23:59:59Z",
    "1900-01-01T00:30:00+01:00",  # 1899-12-31T23:30Z
    "2200-01-01T00:00:00Z",
    "2199-12-31T23:30:00-01:00",  # 2200-01-01T00:30Z
]


def assert_422(r: Any, field: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"
    assert field in [e["field"] for e in r.json()["errors"]], r.text


@pytest.fixture
async def made(api: Api) -> dict[str, Any]:
    booking = await one_booking(api, day=1)  # 2024-06-01T10:00Z-11:00Z
    booking.pop("customer_token")  # the create answer's only
    return {
        "resource": {"resource_id": booking["resource_id"]},
        "client": {"client_id": booking["client_id"]},
        "booking": booking,
    }


@pytest.mark.parametrize("value", OUTSIDE)
async def test_datetimes_in_bodies(api: Api, made: dict[str, Any], value: str) -> None:
    rid, cid = made["resource"]["resource_id"], made["client"]["client_id"]
    inside = "2024-06-02T10:00:00Z"
    for field, start, end in (("start_time", value, inside), ("end_time", inside, value)):
        body = {"resource_id": rid, "client_id": cid, "start_time": start, "end_time": end}
        assert_422(await api.post("/v1/bookings", body), field)
        block = {"start_time": start, "end_time": end}
        assert_422(await api.post(f"/v1/resources/{rid}/blocks", block), field)
        move = {field: value}
        assert_422(await api.put(f"/v1/bookings/{made['booking']['booking_id']}", move), field)
    # Nothing was written or changed.
    listed = (await api.get("/v1/bookings")).json()["data"]
    assert listed == [made["booking"]]


@pytest.mark.parametrize("value", OUTSIDE)
async def test_datetimes_in_queries(api: Api, made: dict[str, Any], value: str) -> None:
    rid = made["resource"]["resource_id"]
    for path in ("/v1/bookings", "/v1/events", f"/v1/resources/{rid}/blocks"):
        for name in ("from", "to"):
            assert_422(await api.get(path, **{name: value}), name)
    window = {"resource_id": rid, "duration": "PT1H"}
    for path in ("/v1/availability", "/v1/availability/dates", "/v1/availability/groups"):
        params = {**window, "start": value, "end": "2024-06-02T00:00:00Z"}
        assert_422(await api.get(path, **params), "start")
        params = {**window, "start": "2024-06-01T00:00:00Z", "end": value}
        assert_422(await api.get(path, **params), "end")


async def test_the_first_and_last_accepted_instants(api: Api, made: dict[str, Any]) -> None:
    rid, cid = made["resource"]["resource_id"], made["client"]["client_id"]
    for start, end in (
        ("1900-01-01T00:00:00Z", "1900-01-01T02:00:00+01:00"),  # an offset near the edge
        ("2199-12-31T23:00:00Z", "2199-12-31T23:59:59Z"),
    ):
        # override_rules: under the rules a booking lasts whole minutes, so none ends at 23:59:59
        booking = {"resource_id": rid, "client_id": cid, "start_time": start, "end_time": end}
        r = await api.post("/v1/bookings", {**booking, "override_rules": True})
        assert r.status_code == 201, r.text
    r = await api.post(
        "/v1/bookings",
        {
            "resource_id": rid,
            "client_id": cid,
            "start_time": "1900-01-01T00:00:00Z",
            "end_time": "1900-01-01T00:59:00Z",
        },
    )
    assert (r.status_code, r.json()["code"]) == (409, "slot_unavailable")
    found = await api.get(
        "/v1/availability",
        resource_id=rid,
        start="2199-12-31T20:00:00Z",
        end="2199-12-31T23:59:59Z",
        duration="PT1H",
    )
    assert found.status_code == 200, found.text
    assert [s["start_time"] for s in found.json()["data"]] == [
        "2199-12-31T20:00:00Z",
        "2199-12-31T20:15:00Z",
        "2199-12-31T20:30:00Z",
        "2199-12-31T20:45:00Z",
        "2199-12-31T21:00:00Z",
        "2199-12-31T21:15:00Z",
        "2199-12-31T21:30:00Z",
        "2199-12-31T21:45:00Z",
        "2199-12-31T22:00:00Z",
    ]


# field -> (the largest accepted value, as the API shows it, the smallest refused one), as
# docs/api.md lists them. (ISO 8601 output counts 365 days as a year: P365D reads back as P1Y.)
RESOURCE_BOUNDS = {
    "buffer_before": ("P7D", "P7D", "P7DT1S"),
    "buffer_after": ("P7D", "P7D", "P7DT1S"),
    "min_notice": ("P365D", "P1Y", "P365DT1S"),
    "max_advance": ("P3650D", "P10Y", "P3650DT1S"),
    "min_duration": ("P365D", "P1Y", "P365DT1S"),
    "max_duration": ("P365D", "P1Y", "P365DT1S"),
    "slot_step": ("P1D", "P1D", "P1DT1M"),
}
GROUP_OWNER_BOUNDS = {
    "min_cancel_time": ("P365D", "P1Y", "P365DT1S"),
    "min_booking_time": ("P365D", "P1Y", "P365DT1S"),
    "max_booking_time": ("P3650D", "P10Y", "P3650DT1S"),
}


@pytest.mark.parametrize("field", sorted(RESOURCE_BOUNDS))
async def test_resource_durations(api: Api, field: str) -> None:
    largest, shown, refused = RESOURCE_BOUNDS[field]
    for value in (refused, "P10000Y", "P999999999D"):
        assert_422(
            await api.post("/v1/resources", {"name": "R", "timezone": "UTC", field: value}), field
        )
    r = await api.resource(**{field: largest})
    assert r[field] == shown
    assert_422(
        await api.put(f"/v1/resources/{r['resource_id']}/availability", {field: "P10000Y"}), field
    )
    assert (await api.get(f"/v1/resources/{r['resource_id']}")).json()[field] == shown


@pytest.mark.parametrize("field", sorted(GROUP_OWNER_BOUNDS))
async def test_class_durations(api: Api, made: dict[str, Any], field: str) -> None:
    largest, shown, refused = GROUP_OWNER_BOUNDS[field]
    body = {
        "graph": "group_owner",
        "resource_id": made["resource"]["resource_id"],
        "max_seats": 3,
        "start_time": "2030-01-01T10:00:00Z",
        "end_time": "2030-01-01T11:00:00Z",
    }
    for value in (refused, "P10000Y"):
        assert_422(await api.post("/v1/bookings", {**body, field: value}), field)
    assert (await api.book(**body, **{field: largest}))[field] == shown


async def test_payment_timeout(api: Api, made: dict[str, Any]) -> None:
    body = {
        "graph": "instant_payment",
        "resource_id": made["resource"]["resource_id"],
        "client_id": made["client"]["client_id"],
        "start_time": "2030-01-01T10:00:00Z",
        "end_time": "2030-01-01T11:00:00Z",
    }
    for value in ("P10000Y", "P30DT1S", "PT0S"):
        assert_422(
            await api.post("/v1/bookings", {**body, "payment_timeout": value}), "payment_timeout"
        )
    b = await api.book(**body, payment_timeout="P30D")
    assert b["payment_due_at"] == "2024-05-31T09:00:00Z"


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01"])
async def test_exception_dates(api: Api, day: str) -> None:
    body = {"name": "R", "timezone": "UTC", "exceptions": [{"date": day, "hours": []}]}
    assert_422(await api.post("/v1/resources", body), "exceptions.0.date")


async def test_search_step_and_duration(api: Api, made: dict[str, Any]) -> None:
    window = {
        "resource_id": made["resource"]["resource_id"],
        "start": "2024-06-01T00:00:00Z",
        "end": "2024-06-02T00:00:00Z",
    }
    assert_422(await api.get("/v1/availability", **window, duration="P10000Y"), "duration")
    assert_422(await api.get("/v1/availability", **window, duration="PT1H", step="P10000Y"), "step")


@pytest.mark.parametrize("at", [YEAR_1, YEAR_9999])
async def test_a_forged_cursor_is_400(api: Api, made: dict[str, Any], at: str) -> None:
    raw = f'["{at}", "{made["booking"]["booking_id"]}"]'.encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    for path in ("/v1/bookings", "/v1/events", "/v1/resources", "/v1/clients"):
        r = await api.get(path, cursor=cursor)
        assert (r.status_code, r.json()["code"]) == (400, "bad_request"), (path, r.text)


@pytest.mark.parametrize("value", [YEAR_1, YEAR_9999])
async def test_the_timekit_adapter(api: Api, made: dict[str, Any], value: str) -> None:
    headers = {"Authorization": f"Bearer {api.secret_key}"}
    rid = made["resource"]["resource_id"]
    booking = {
        "resource_id": rid,
        "graph": "instant",
        "start": value,
        "end": "2024-06-02T10:00:00Z",
        "customer": {"name": "Marty", "email": "marty@example.com"},
    }
    r = await api.http.post("/v2/bookings", json=booking, headers=headers)
    assert r.status_code == 422, r.text
    assert "start" in r.json()["errors"]
    search = {"resources": [rid], "from": value, "to": "2024-06-02T10:00:00Z", "length": "1 hour"}
    r = await api.http.post("/v2/availability", json=search, headers=headers)
    assert r.status_code == 422, r.text
    assert "from" in r.json()["errors"]
    far = {**search, "from": "now", "to": "999999 weeks"}
    r = await api.http.post("/v2/availability", json=far, headers=headers)
    assert r.status_code == 422, r.text
    assert "to" in r.json()["errors"]
    fine = {**search, "from": "2024-06-01T00:00:00Z"}
    for field, value in (
        ("timeslot_increments", "999999 weeks"),
        ("timeslot_increments", "30 seconds"),
        ("buffer", "999999 weeks"),
        ("buffer", "8 days"),
    ):
        r = await api.http.post("/v2/availability", json={**fine, field: value}, headers=headers)
        assert r.status_code == 422, (field, value, r.text)
        assert field in r.json()["errors"], r.text
    r = await api.http.post(
        "/v2/availability",
        json={**fine, "timeslot_increments": "1 day", "buffer": "7 days"},
        headers=headers,
    )
    assert r.status_code == 200, r.text


async def test_a_year_in_a_duration_is_365_days_in_and_out(api: Api) -> None:
    """docs/api.md: answers write 365 days as `P1Y`, and `P4Y` given is 1,460 days, not four
    calendar years: from 2024-05-01T09:00Z (the test clock) the limit is 2028-04-30T09:00Z, a
    day before a calendar reading across 29 February 2028."""
    res = await api.resource()
    path = f"/v1/resources/{res['resource_id']}/availability"
    for given, shown in (("P400D", "P1Y35D"), ("P1Y35D", "P1Y35D"), ("P1460D", "P4Y")):
        r = await api.put(path, {"max_advance": given})
        assert r.status_code == 200, r.text
        assert r.json()["max_advance"] == shown
    r = await api.put(path, {"max_advance": "P4Y"})
    assert r.status_code == 200, r.text
    customer = {"name": "Ann", "email": "ann@example.com"}
    late = {"start_time": "2028-04-30T12:00:00Z", "end_time": "2028-04-30T13:00:00Z"}
    r = await api.post(
        "/v1/bookings", {"resource_id": res["resource_id"], "customer": customer, **late}
    )
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "too_far_ahead"
    assert "P1460D" in r.json()["detail"]
    await api.book(
        resource_id=res["resource_id"],
        customer=customer,
        start_time="2028-04-30T08:00:00Z",
        end_time="2028-04-30T09:00:00Z",
    )
