"""Errors a person can act on: each says what was wrong and what to do, as a new user meets them."""

from __future__ import annotations

import shlex
import subprocess
import sys

import httpx
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.settings import Settings
from tests.api.conftest import Api


async def test_a_body_that_is_not_json_is_415(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.key}"}
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
        r = await api.http.post("/v1/clients", content=b'{"name": "Ann"}', headers=sent)
        assert r.status_code == 415, (content_type, r.text)
        body = r.json()
        assert body["code"] == "unsupported_media_type"
        assert "Content-Type: application/json" in body["detail"]
    ok = await api.http.post(
        "/v1/clients",
        content=b'{"name": "Ann"}',
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201


async def test_a_missing_body_is_still_422(api: Api) -> None:
    r = await api.http.post("/v1/clients", headers={"Authorization": f"Bearer {api.key}"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == ""


async def test_every_field_error_at_once_without_the_value_error_prefix(api: Api) -> None:
    r = await api.post(
        "/v1/resources",
        {"name": "", "timezone": "Mars/Olympus", "slot_step": "PT7S", "email": "nope"},
    )
    assert r.status_code == 422
    errors = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert set(errors) == {"name", "timezone", "slot_step", "email"}
    assert errors["timezone"] == "unknown IANA time zone 'Mars/Olympus'"
    assert errors["email"] == "not an email address"
    assert "Value error" not in r.text


async def test_an_id_that_is_not_a_uuid_is_404(api: Api) -> None:
    for path in ("/v1/bookings/42", "/v1/bookings/abc/history", "/v1/resources/x"):
        r = await api.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["code"] == "not_found"
    assert (await api.get("/v1/bookings/42")).json()["detail"] == "No booking '42'."
    r = await api.put("/v1/bookings/not-a-uuid/confirm")
    assert r.status_code == 404


async def test_a_path_without_v1_names_the_right_one(api: Api) -> None:
    r = await api.get("/bookings")
    assert r.status_code == 404
    assert r.json()["detail"] == "No route /bookings; the API lives under /v1: /v1/bookings."
    r = await api.get("/resources/0b7e3c4e-0000-7000-8000-000000000000/blocks")
    assert "/v1/resources/0b7e3c4e-0000-7000-8000-000000000000/blocks" in r.json()["detail"]
    r = await api.get("/nothing-here")
    assert r.status_code == 404
    assert "/v1" not in r.json()["detail"]


async def test_the_root_says_where_the_api_and_the_pages_are(api: Api) -> None:
    """`make serve` prints `Uvicorn running on http://127.0.0.1:8000`, and a browser opened
    there (with no key) read `"detail": "Not Found"` and nothing more."""
    r = await api.http.get("/")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == (
        "Nothing is served at /: the API lives under /v1 (its reference: /docs), booking pages "
        "at /book/{slug}."
    )


async def test_a_private_webhook_url_names_the_setting(engine: AsyncEngine, api: Api) -> None:
    strict = create_app(Settings(run_worker=False), engine=engine, clock=api.clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=strict), base_url="http://test"
    ) as http:
        r = await http.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook"},
            headers={"Authorization": f"Bearer {api.key}"},
        )
    assert r.status_code == 422
    assert "SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true" in r.text


async def test_times_in_error_messages_are_utc_with_z(api: Api) -> None:
    resource, client = await api.resource(), await api.client()
    owner = await api.book(
        graph="group_owner",
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-05-01T12:00:00+02:00",
        end_time="2024-05-01T13:00:00+02:00",
        max_seats=3,
        min_booking_time="PT2H",
    )
    r = await api.post(
        "/v1/bookings",
        {
            "graph": "group_customer",
            "owner_booking_id": owner["booking_id"],
            "client_id": client["client_id"],
        },
    )
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["detail"] == "Seats for this class could be booked until 2024-05-01T08:00:00Z."
    assert body["closes_at"] == "2024-05-01T08:00:00Z"


async def test_a_booking_names_every_unknown_id_at_once(api: Api) -> None:
    ghost = "01a228c9-0000-7000-8000-000000000000"
    r = await api.post(
        "/v1/bookings",
        {
            "resource_id": ghost,
            "client_id": ghost,
            "start_time": "2024-06-03T10:00:00Z",
            "end_time": "2024-06-03T11:00:00Z",
        },
    )
    assert r.status_code == 422
    errors = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert errors == {"client_id": "no such client", "resource_id": f"no such resource: {ghost}"}


async def test_an_instant_booking_reads_right(api: Api) -> None:
    resource, client = await api.resource(), await api.client()
    booking = await api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-06-03T10:00:00Z",
        end_time="2024-06-03T11:00:00Z",
    )
    r = await api.put(f"/v1/bookings/{booking['booking_id']}/confirm")
    assert r.status_code == 409
    assert r.json()["detail"].startswith(
        "Action 'confirm' is not allowed on an instant booking in state 'confirmed'"
    )


async def test_a_missing_encryption_key_says_how_to_make_one(api: Api) -> None:
    """docs/calendars.md's connect on a fresh `make serve` (no SLOTGRAPH_ENCRYPTION_KEY) answered
    "SLOTGRAPH_ENCRYPTION_KEY is not set. Calendar passwords are stored encrypted." and no more;
    the command it names now makes a key that Fernet takes."""
    resource = await api.resource()
    body = {"url": "https://cal.example/dav/", "username": "anna", "password": "secret"}
    r = await api.put(f"/v1/resources/{resource['resource_id']}/calendar", body)
    assert (r.status_code, r.json()["code"]) == (409, "encryption_key_missing")
    detail = r.json()["detail"]
    assert detail.startswith("Calendar passwords are stored encrypted: SLOTGRAPH_ENCRYPTION_KEY")
    assert "restart them" in detail
    argv = shlex.split(detail.split("`")[1])
    assert argv[:2] == ["python", "-c"]
    Fernet(_printed(argv[1:]))  # a key it takes


def _printed(args: list[str]) -> str:
    """What `python <args>` prints, run by this Python (a shell's `python` may be none)."""
    made = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True)
    return made.stdout.strip()


async def test_an_unknown_key_says_where_keys_come_from(api: Api) -> None:
    """README's tour answers 401 when `serve` made its app before the tour's key was set; the
    answer said "Unknown API key." and no more (serve's own message is on its terminal)."""
    r = await api.http.get("/v1/resources", headers={"Authorization": "Bearer sk_tour"})
    assert (r.status_code, r.json()["code"]) == (401, "unauthenticated")
    assert r.json()["detail"] == (
        "Unknown API key. Keys are shown once: by `slotgraph serve` on its first start (which "
        "alone reads SLOTGRAPH_BOOTSTRAP_SECRET_KEY), and by `slotgraph apps create NAME`."
    )


async def test_a_city_for_a_zone_names_the_zone_meant(api: Api) -> None:
    """`"timezone": "Oslo"` (README's tour has Europe/Oslo) was "unknown IANA time zone 'Oslo'"
    and no more; on /v2 as on /v1 (one message)."""
    r = await api.post("/v1/resources", {"name": "Dr. Berg", "timezone": "Oslo"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["message"] == (
        "unknown IANA time zone 'Oslo'; did you mean 'Europe/Oslo'?"
    )
    r = await api.post("/v1/clients", {"name": "Bo", "timezone": "new york"})
    assert r.json()["errors"][0]["message"] == (
        "unknown IANA time zone 'new york'; did you mean 'America/New_York'?"
    )
    auth = httpx.BasicAuth("", api.key)
    r = await api.http.get("/v2/resources", headers={"Timekit-Timezone": "Berlin"}, auth=auth)
    assert r.status_code == 422
    assert r.json()["errors"]["Timekit-Timezone"] == [
        "unknown IANA time zone 'Berlin'; did you mean 'Europe/Berlin'?"
    ]


async def test_a_time_without_an_offset_says_how_to_write_one(api: Api) -> None:
    """README's tour: "naive times are refused"; the answer was pydantic's "Input should have
    timezone info", which does not say what to add."""
    resource = await api.resource()
    r = await api.post(
        "/v1/bookings",
        {
            "resource_id": resource["resource_id"],
            "start_time": "2030-05-18T10:00:00",
            "end_time": "2030-05-18T11:00:00Z",
            "customer": {"name": "Bo", "email": "bo@example.com"},
        },
    )
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {
            "field": "start_time",
            "loc": ["body", "start_time"],
            "message": "Input should have timezone info: add an offset, like "
            "2030-05-18T10:00:00Z or 2030-05-18T12:00:00+02:00",
            "type": "timezone_aware",
        }
    ]
