"""Every error on /v2 takes the Timekit adapter's shape (docs/migrating-from-timekit.md):
`{"error": "...", "code": "..."}` as `application/json`, with the same status, `code` and headers
(`Retry-After`) as on /v1. Before, the errors no route raised (no database, a fault, a deadlock)
came in /v1's problem+json on /v2 too, and a 503 there had no `Retry-After`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.db.engine import create_engine
from tests.api.conftest import TEST_SETTINGS, Api
from tests.api.test_operations import unreachable_url
from tests.api.test_timekit import basic, resource, v2


def assert_timekit(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["code"] == code
    assert isinstance(body["error"], str)
    assert body["error"]
    assert "type" not in body  # no problem+json fields
    assert "status" not in body
    return dict(body)


async def test_no_database_on_v2_is_503_in_timekit_shape(api: Api, tmp_path: Path) -> None:
    gone = create_engine(unreachable_url(api.backend, tmp_path))
    app = create_app(TEST_SETTINGS, engine=gone, clock=api.clock)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            v2 = await http.get("/v2/resources", headers=basic(api.key))
            v1 = await http.get("/v1/resources", headers={"Authorization": f"Bearer {api.key}"})
    finally:
        await gone.dispose()
    assert_timekit(v2, 503, "database_unavailable")
    assert v2.headers["retry-after"] == "5"
    assert v1.status_code == 503, v1.text  # /v1 keeps problem+json
    assert v1.headers["content-type"] == "application/problem+json"
    assert v1.headers["retry-after"] == "5"


class Deadlock(Exception):
    sqlstate = "40P01"  # what asyncpg's DeadlockDetectedError carries


async def _fault() -> None:
    raise RuntimeError("kaboom")


async def _deadlock() -> None:
    raise DBAPIError("UPDATE bookings ...", None, Deadlock())


@pytest.mark.parametrize(
    ("endpoint", "status", "code"),
    [(_fault, 500, "internal_error"), (_deadlock, 409, "concurrent_update")],
    ids=["fault", "deadlock"],
)
async def test_errors_no_route_raised_take_the_shape_of_their_api(
    engine: AsyncEngine, api: Api, endpoint: Any, status: int, code: str
) -> None:
    app = create_app(TEST_SETTINGS, engine=engine, clock=api.clock)
    app.add_api_route("/v2/fails", endpoint)
    app.add_api_route("/v1/fails", endpoint)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        v2 = await http.get("/v2/fails")
        v1 = await http.get("/v1/fails")
    assert_timekit(v2, status, code)
    assert v1.status_code == status, v1.text
    assert v1.headers["content-type"] == "application/problem+json"
    assert v1.json()["code"] == code


async def test_a_long_zone_on_v2_is_422_in_timekit_shape(api: Api) -> None:
    headers = {**basic(api.public_key), "Timekit-Timezone": "A" * 3000}
    body = assert_timekit(
        await api.http.get("/v2/resources", headers=headers), 422, "validation_error"
    )
    assert list(body["errors"]) == ["Timekit-Timezone"]


async def test_a_422_on_v2_names_every_wrong_field_at_once(api: Api) -> None:
    """As on /v1: a client learns of every wrong field from one answer. Before, the adapter
    parsed the times one by one and stopped at the first: a start and an end both wrong (and a
    customer's email with them) were three round trips."""
    res = await resource(api)
    times = {"start": "soon", "end": "2024-05-06T11:00:00"}
    r = await v2(
        api,
        "POST",
        "/bookings",
        {
            "resource_id": res["id"],
            **times,
            "customer": {"name": "Marty", "email": "not an address"},
        },
    )
    body = assert_timekit(r, 422, "validation_error")
    assert sorted(body["errors"]) == ["customer.email", "end", "start"]
    assert body["errors"]["start"] == [
        "'soon' is not a timestamp such as 2024-05-18T10:00:00+02:00"
    ]
    assert body["errors"]["end"] == ["the timestamp needs an offset, e.g. +02:00 or Z"]
    r = await v2(api, "POST", "/availability", {"resources": [res["id"]], "from": "x", "to": "y"})
    assert sorted(assert_timekit(r, 422, "validation_error")["errors"]) == ["from", "to"]
    made = await v2(
        api,
        "POST",
        "/bookings",
        {
            "resource_id": res["id"],
            "start": "2024-05-06T10:00:00+02:00",
            "end": "2024-05-06T11:00:00+02:00",
            "customer": {"name": "Marty", "email": "marty@example.com"},
        },
    )
    assert made.status_code == 201, made.text
    r = await v2(api, "POST", f"/bookings/{made.json()['data']['id']}/reschedule", times)
    assert sorted(assert_timekit(r, 422, "validation_error")["errors"]) == ["end", "start"]


async def test_a_422_of_the_availability_search_names_timekits_fields(api: Api) -> None:
    """The search's own checks (services/availability.py) name slotgraph's fields; /v2 answers
    with the ones its client sent. Before: `end` for `to` and `duration` for `length`, names
    that are not in a Timekit query."""
    res = await resource(api)
    query = {
        "resources": [res["id"]],
        "from": "2024-05-10T00:00:00Z",
        "to": "2024-05-09T00:00:00Z",
        "length": "2 hours",
    }
    r = await v2(api, "POST", "/availability", query)
    body = assert_timekit(r, 422, "validation_error")
    assert body["errors"] == {"to": ["must be after start"], "length": ["must fit in the window"]}
    r = await v2(api, "POST", "/availability", {**query, "to": "2024-05-10T01:00:00Z"})
    assert assert_timekit(r, 422, "validation_error")["errors"] == {
        "length": ["must fit in the window"]
    }


async def test_every_wrong_constraint_and_time_is_named_in_one_422(api: Api) -> None:
    """As /v1 names every wrong rule: the constraints stopped at the first wrong one, and a
    body's type error (a resource_id that is no id) hid its times' errors."""
    res = await resource(api)
    query = {"resources": [res["id"]], "from": "2024-05-06T00:00:00Z", "to": "2024-05-07T00:00:00Z"}
    constraints = [
        {"allow_moon": {}},
        {"allow_hours": {"start": 25, "end": "late"}},
        {"allow_day": {"day": "Monday"}},
        {"block_day_and_time": {"day": "Caturday", "start": 9, "end": 8}},
        {"block_period": {"start": "soon", "end": "later"}},
    ]
    r = await v2(api, "POST", "/availability", {**query, "constraints": constraints})
    assert sorted(assert_timekit(r, 422, "validation_error")["errors"]) == [
        "constraints.0",
        "constraints.1.allow_hours.end",
        "constraints.1.allow_hours.start",
        "constraints.3.block_day_and_time.day",
        "constraints.3.block_day_and_time.end",
        "constraints.4.block_period.end",
        "constraints.4.block_period.start",
    ]
    body = {
        "resource_id": "not-an-id",
        "start": "soon",
        "end": "2024-05-06T11:00:00",
        "customer": {"name": "Marty", "email": "marty@example.com"},
    }
    r = await v2(api, "POST", "/bookings", body)
    errors = assert_timekit(r, 422, "validation_error")["errors"]
    assert sorted(errors) == ["end", "resource_id", "start"]
    assert errors["end"] == ["the timestamp needs an offset, e.g. +02:00 or Z"]


async def test_extra_customer_fields_too_large_are_named_customer(api: Api) -> None:
    """A customer's fields beyond name, email, phone and timezone are kept in the booking's
    meta (docs/migrating-from-timekit.md); too many of them made a 422 naming `meta`, which the
    client had not sent. A `meta` of the client's own too large is still `meta`."""
    res = await resource(api)
    body = {
        "resource_id": res["id"],
        "start": "2024-05-06T10:00:00+02:00",
        "end": "2024-05-06T10:30:00+02:00",
        "customer": {"name": "Ann", "email": "ann@example.com"},
    }
    many = {**body["customer"], **{f"field{i}": "v" * 5 for i in range(2000)}}
    r = await v2(api, "POST", "/bookings", {**body, "customer": many}, key=api.public_key)
    assert list(assert_timekit(r, 422, "validation_error")["errors"]) == ["customer"]
    big = {"notes": "n" * 20_000}
    r = await v2(api, "POST", "/bookings", {**body, "meta": big}, key=api.public_key)
    assert list(assert_timekit(r, 422, "validation_error")["errors"]) == ["meta"]
    r = await v2(
        api, "POST", "/bookings", {**body, "meta": big, "customer": many}, key=api.public_key
    )
    assert list(assert_timekit(r, 422, "validation_error")["errors"]) == ["meta"]
