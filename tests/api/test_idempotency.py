"""Idempotency-Key: a retry gets the first answer; a different request with the key is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.services.idempotency import _lock_keys
from tests.api.conftest import Api


async def send(
    api: Api, method: str, path: str, body: Any = None, *, key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await api.http.request(method, path, json=body, headers=headers)


async def booking_body(api: Api) -> dict[str, str]:
    resource, client = await api.resource(), await api.client()
    return {
        "resource_id": resource["resource_id"],
        "client_id": client["client_id"],
        "start_time": "2024-06-03T10:00:00Z",
        "end_time": "2024-06-03T11:00:00Z",
    }


async def count_bookings(api: Api) -> int:
    return len((await api.get("/v1/bookings")).json()["data"])


async def test_a_retry_replays_the_first_answer(api: Api) -> None:
    body = await booking_body(api)
    first = await send(api, "POST", "/v1/bookings", body, key="k-1")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await send(api, "POST", "/v1/bookings", body, key="k-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["content-type"] == "application/json"
    assert again.headers["idempotent-replayed"] == "true"
    assert await count_bookings(api) == 1
    # Without the key the same body is a new request (and the slot is taken).
    assert (await send(api, "POST", "/v1/bookings", body, key=None)).status_code == 409


async def test_the_same_key_for_another_request_is_422(api: Api) -> None:
    body = await booking_body(api)
    assert (await send(api, "POST", "/v1/bookings", body, key="k-2")).status_code == 201
    other = {**body, "start_time": "2024-06-04T10:00:00Z", "end_time": "2024-06-04T11:00:00Z"}
    r = await send(api, "POST", "/v1/bookings", other, key="k-2")
    assert r.status_code == 422
    assert r.json()["code"] == "idempotency_key_reused"
    # Another path with the key is another request too.
    r = await send(api, "POST", "/v1/clients", {"name": "X"}, key="k-2")
    assert r.json()["code"] == "idempotency_key_reused"
    assert await count_bookings(api) == 1


async def test_an_error_is_replayed_too(api: Api) -> None:
    body = await booking_body(api)
    taken = await api.book(**body)
    refused = await send(api, "POST", "/v1/bookings", body, key="k-3")
    assert refused.status_code == 409
    assert refused.json()["code"] == "slot_unavailable"
    assert (await api.delete(f"/v1/bookings/{taken['booking_id']}")).status_code == 200
    # The slot is free now, but the key's answer was the refusal: a retry gets it again.
    again = await send(api, "POST", "/v1/bookings", body, key="k-3")
    assert again.status_code == 409
    assert again.json() == refused.json()
    assert again.headers["content-type"] == "application/problem+json"
    assert await count_bookings(api) == 1


async def test_answers_are_kept_24_hours(api: Api) -> None:
    first = await send(api, "POST", "/v1/clients", {"name": "Ann"}, key="k-4")
    api.clock.advance(timedelta(hours=23, minutes=59))
    kept = await send(api, "POST", "/v1/clients", {"name": "Ann"}, key="k-4")
    assert kept.json() == first.json()
    api.clock.advance(timedelta(minutes=2))
    fresh = await send(api, "POST", "/v1/clients", {"name": "Ann"}, key="k-4")
    assert fresh.status_code == 201
    assert fresh.json()["client_id"] != first.json()["client_id"]
    assert "idempotent-replayed" not in fresh.headers


async def test_keys_belong_to_one_app(api: Api, other_api: Api) -> None:
    mine = await send(api, "POST", "/v1/clients", {"name": "Mine"}, key="shared")
    theirs = await send(other_api, "POST", "/v1/clients", {"name": "Theirs"}, key="shared")
    assert mine.status_code == theirs.status_code == 201
    assert theirs.json()["name"] == "Theirs"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/resources", {"name": "Room", "timezone": "UTC"}),
        ("POST", "/v1/clients", {"name": "Bo"}),
        ("POST", "/v1/webhooks", {"url": "https://example.com/hook"}),
        ("PUT", "/v1/resources/{resource_id}", {"name": "Renamed"}),
        ("POST", "/v1/resources/{resource_id}/blocks", None),
        ("PUT", "/v1/bookings/{booking_id}", {"details": "more"}),
        ("PUT", "/v1/bookings/{booking_id}/confirm", None),
        ("DELETE", "/v1/bookings/{booking_id}", None),
    ],
)
async def test_every_change_accepts_a_key(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    booking_fields = await booking_body(api)
    booking = await api.book(graph="confirm_decline", **booking_fields)
    path = path.format(resource_id=booking["resource_id"], booking_id=booking["booking_id"])
    if path.endswith("/blocks"):
        body = {"start_time": "2024-06-05T10:00:00Z", "end_time": "2024-06-05T11:00:00Z"}
    first = await send(api, method, path, body, key=f"every-{method}-{path}")
    assert first.status_code < 300, first.text
    again = await send(api, method, path, body, key=f"every-{method}-{path}")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"


async def test_a_key_must_be_short_and_printable(api: Api) -> None:
    r = await send(api, "POST", "/v1/clients", {"name": "A"}, key="x" * 256)
    assert r.status_code == 400
    assert "Idempotency-Key" in r.json()["detail"]
    assert (await send(api, "POST", "/v1/clients", {"name": "A"}, key="x" * 255)).status_code == 201


async def test_without_a_key_in_the_request_401_comes_first(api: Api) -> None:
    r = await api.http.post("/v1/clients", json={"name": "A"}, headers={"Idempotency-Key": "n"})
    assert r.status_code == 401


@pytest.mark.parametrize("path", ["/v1/clients", "/v1/bookings"])
async def test_a_key_held_by_a_running_request_is_409_in_flight(
    api: Api, engine: AsyncEngine, path: str
) -> None:
    if api.backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time: a second request waits, then replays")
    body: dict[str, str] = {"name": "A"}
    if path == "/v1/bookings":  # the create looks the key up in its own read
        body = await booking_body(api)
    app_id = (await api.get("/v1/app")).json()["app_id"]
    import uuid

    k1, k2 = _lock_keys(uuid.UUID(app_id), "busy")
    async with engine.connect() as held, held.begin():
        # What a running request with the key holds until it commits.
        await held.exec_driver_sql(f"SELECT pg_advisory_xact_lock({k1}, {k2})")
        r = await send(api, "POST", path, body, key="busy")
    assert r.status_code == 409
    assert r.json()["code"] == "idempotency_key_in_flight"
    after = await send(api, "POST", path, body, key="busy")  # the 409 was not kept
    assert after.status_code == 201


async def test_a_keyed_booking_with_an_inline_customer_creates_the_client_once(api: Api) -> None:
    # The customer is created under a savepoint of its own inside the keyed request's
    # transaction (services/clients.py); the key's answer commits with both.
    resource = await api.resource()
    body = {
        "resource_id": resource["resource_id"],
        "start_time": "2024-06-03T10:00:00Z",
        "end_time": "2024-06-03T11:00:00Z",
        "customer": {"name": "Ann", "email": "ann-key@example.com"},
    }
    first = await send(api, "POST", "/v1/bookings", body, key="k-customer")
    assert first.status_code == 201, first.text
    again = await send(api, "POST", "/v1/bookings", body, key="k-customer")
    assert again.json() == first.json()
    clients = (await api.get("/v1/clients")).json()["data"]
    assert [c["email"] for c in clients].count("ann-key@example.com") == 1
    assert await count_bookings(api) == 1


async def test_a_refusal_leaves_nothing_behind_but_its_stored_answer(api: Api) -> None:
    # The service fails inside the keyed transaction and rolls it back whole; the answer is
    # stored in a new one, and the inline customer the failed request created is gone too.
    body = await booking_body(api)
    await api.book(**body)
    del body["client_id"]
    body["customer"] = {"name": "Bo", "email": "bo-key@example.com"}  # type: ignore[assignment]
    refused = await send(api, "POST", "/v1/bookings", body, key="k-refused")
    assert refused.status_code == 409, refused.text
    again = await send(api, "POST", "/v1/bookings", body, key="k-refused")
    assert (again.status_code, again.json()) == (409, refused.json())
    emails = [c["email"] for c in (await api.get("/v1/clients")).json()["data"]]
    assert "bo-key@example.com" not in emails


async def test_a_keyed_booking_over_an_overdue_payment_hold_takes_the_slot(api: Api) -> None:
    # On PostgreSQL the constraint refuses the first try (the unpaid hold is still in the table),
    # which rolls the keyed transaction back; the retry begins it again, times the hold out, and
    # commits the booking with its stored answer.
    body = await booking_body(api)
    unpaid = await api.book(graph="instant_payment", payment_timeout="PT5M", **body)
    api.clock.advance(timedelta(minutes=6))
    first = await send(api, "POST", "/v1/bookings", body, key="k-overdue")
    assert first.status_code == 201, first.text
    again = await send(api, "POST", "/v1/bookings", body, key="k-overdue")
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    old = (await api.get(f"/v1/bookings/{unpaid['booking_id']}")).json()
    assert old["status"] not in ("tentative", "confirmed")  # timed out by the retry
    assert await count_bookings(api) == 2


async def test_a_retry_after_the_start_replays_the_booking(api: Api) -> None:
    # The public key may not book a start that has passed (409 in_the_past): a retry of a
    # create it made before the start gets that create's answer, not the refusal.
    resource = await api.resource()
    body = {
        "resource_id": resource["resource_id"],
        "customer": {"name": "Ann", "email": "ann@example.com"},
        "start_time": "2024-05-01T10:00:00Z",  # in an hour
        "end_time": "2024-05-01T11:00:00Z",
    }
    public = api.as_key(api.public_key)
    first = await send(public, "POST", "/v1/bookings", body, key="k-late")
    assert first.status_code == 201, first.text
    api.clock.advance(timedelta(hours=2))  # past the start; the answer is kept 24 h
    again = await send(public, "POST", "/v1/bookings", body, key="k-late")
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # Without the key (or with another) it is a new request, and the start has passed.
    refused = await send(public, "POST", "/v1/bookings", body, key="k-late-2")
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == "The start time has passed."
    assert await count_bookings(api) == 1
