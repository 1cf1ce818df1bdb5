"""Bookings after the fact (issue 9, item 1).

The secret key may record a booking that started in the past (a walk-in, an import, a
correction); the public key never may. `min_notice` has no default; when a resource sets one it
applies to every request, and its error names the earliest allowed start.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.worker import Worker
from tests.api.conftest import TEST_SETTINGS, Api

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def test_the_seed_example_is_booked_after_the_fact(api: Api) -> None:
    api.clock.now = NOW  # 2024-05-18 is long past
    resource, client = await api.resource(), await api.client()
    body = {
        "resource_id": resource["resource_id"],
        "start_time": "2024-05-18T10:00:00Z",
        "end_time": "2024-05-18T11:00:00Z",
        "client_id": client["client_id"],
        "details": "Meeting regarding project updates",
    }
    r = await api.post("/v1/bookings", body)
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["start_time"]) == ("confirmed", "2024-05-18T10:00:00Z")
    # The overlap guarantee holds in the past as in the future.
    again = await api.post("/v1/bookings", body)
    assert (again.status_code, again.json()["code"]) == (409, "slot_unavailable")


async def test_min_notice_has_no_default(api: Api) -> None:
    resource = await api.resource()
    assert resource["min_notice"] is None
    rules = (await api.get(f"/v1/resources/{resource['resource_id']}/availability")).json()
    assert rules["min_notice"] is None
    set_ = await api.put(
        f"/v1/resources/{resource['resource_id']}/availability", {"min_notice": "PT0S"}
    )
    assert set_.json()["min_notice"] == "PT0S"
    unset = await api.put(
        f"/v1/resources/{resource['resource_id']}/availability", {"min_notice": None}
    )
    assert unset.json()["min_notice"] is None


async def test_the_public_key_never_books_a_start_that_has_passed(api: Api) -> None:
    api.clock.now = NOW
    public = api.as_key(api.public_key)
    plain = await api.resource()
    strict = await api.resource(weekly_hours={"mon": [["09:00", "10:00"]]}, min_notice="PT1H")
    for resource in (plain, strict):  # whatever the resource's rules
        r = await public.post(
            "/v1/bookings",
            {
                "resource_id": resource["resource_id"],
                "customer": {"name": "Ada", "email": "ada@example.com"},
                "start_time": "2026-11-29T11:59:00Z",
                "end_time": "2026-11-29T13:00:00Z",
            },
        )
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "in_the_past"
        assert r.json()["detail"] == "The start time has passed."
    now = await public.post(
        "/v1/bookings",
        {
            "resource_id": plain["resource_id"],
            "customer": {"name": "Ada", "email": "ada@example.com"},
            "start_time": "2026-11-29T12:00:00Z",
            "end_time": "2026-11-29T13:00:00Z",
        },
    )
    assert now.status_code == 201, now.text
    listed = (await api.get("/v1/bookings")).json()["data"]
    assert [b["booking_id"] for b in listed] == [now.json()["booking_id"]]


async def test_a_set_notice_applies_to_the_secret_key_and_names_the_earliest_start(
    api: Api,
) -> None:
    # The clock reads 2024-05-01T09:00:00.250Z: the earliest start is rounded up to a second.
    api.clock.now = api.clock.now + timedelta(milliseconds=250)
    resource = await api.resource(min_notice="PT2H")
    client = await api.client()
    body = {
        "resource_id": resource["resource_id"],
        "client_id": client["client_id"],
        "start_time": "2024-04-30T10:00:00Z",
        "end_time": "2024-04-30T11:00:00Z",
    }
    r = await api.post("/v1/bookings", body)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "too_soon"
    assert r.json()["earliest_start"] == "2024-05-01T11:00:01Z"
    assert "2024-05-01T11:00:01Z" in r.json()["detail"]
    ok = await api.post("/v1/bookings", {**body, "override_rules": True})
    assert ok.status_code == 201, ok.text


async def test_the_rules_apply_to_past_times(api: Api) -> None:
    api.clock.now = NOW
    resource = await api.resource(
        timezone="UTC", weekly_hours={"mon": [["09:00", "17:00"]]}, buffer_after="PT30M"
    )
    client = await api.client()

    async def book(start: str, end: str) -> Any:
        return await api.post(
            "/v1/bookings",
            {
                "resource_id": resource["resource_id"],
                "client_id": client["client_id"],
                "start_time": start,
                "end_time": end,
            },
        )

    sunday = await book("2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z")
    assert sunday.json()["code"] == "outside_availability"
    assert (await book("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z")).status_code == 201
    buffered = await book("2026-11-23T11:15:00Z", "2026-11-23T12:00:00Z")  # inside buffer_after
    assert buffered.json()["code"] == "slot_unavailable"
    block = await api.post(
        f"/v1/resources/{resource['resource_id']}/blocks",
        {"start_time": "2026-11-23T14:00:00Z", "end_time": "2026-11-23T15:00:00Z"},
    )
    assert block.status_code == 201, block.text
    blocked = await book("2026-11-23T14:30:00Z", "2026-11-23T15:30:00Z")
    assert blocked.json()["code"] == "slot_unavailable"


async def test_search_offers_past_starts_to_the_secret_key_only(api: Api) -> None:
    api.clock.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday, noon
    resource = await api.resource(
        timezone="UTC", weekly_hours={"mon": [["10:00", "14:00"]]}, slot_step="PT1H"
    )
    params = {
        "resource_id": resource["resource_id"],
        "start": "2026-11-23T00:00:00Z",
        "end": "2026-11-24T00:00:00Z",
        "duration": "PT1H",
    }
    secret = (await api.get("/v1/availability", **params)).json()["data"]
    public = (await api.as_key(api.public_key).get("/v1/availability", **params)).json()["data"]
    assert [s["start_time"] for s in secret] == [
        "2026-11-23T10:00:00Z",
        "2026-11-23T11:00:00Z",
        "2026-11-23T12:00:00Z",
        "2026-11-23T13:00:00Z",
    ]
    assert [s["start_time"] for s in public] == ["2026-11-23T12:00:00Z", "2026-11-23T13:00:00Z"]


async def test_timers_treat_a_past_booking_like_any_other(api: Api, engine: AsyncEngine) -> None:
    api.clock.now = NOW
    resource, client = await api.resource(), await api.client()

    async def book(start: str, end: str, **extra: Any) -> dict[str, Any]:
        return await api.book(
            resource_id=resource["resource_id"],
            client_id=client["client_id"],
            start_time=start,
            end_time=end,
            **extra,
        )

    ended_long_ago = await book("2026-11-29T09:00:00Z", "2026-11-29T10:00:00Z")
    ended_recently = await book("2026-11-29T10:30:00Z", "2026-11-29T11:30:00Z")
    not_auto = await book("2026-11-28T09:00:00Z", "2026-11-28T10:00:00Z", auto_complete=False)
    request = await book("2026-11-27T09:00:00Z", "2026-11-27T10:00:00Z", graph="confirm_decline")
    assert {b["status"] for b in (ended_long_ago, ended_recently, not_auto)} == {"confirmed"}
    worker = Worker(engine, TEST_SETTINGS, clock=api.clock, jitter=lambda: 0.0, worker_id="t")
    await worker.run_once()
    expected = {
        ended_long_ago["booking_id"]: "completed",
        ended_recently["booking_id"]: "confirmed",  # ended 30 minutes ago: not yet
        not_auto["booking_id"]: "confirmed",
        request["booking_id"]: "expired",
    }
    for booking_id, status in expected.items():
        history = (await api.get(f"/v1/bookings/{booking_id}/history")).json()["data"]
        assert history[-1]["to"] == status, history
        assert (await api.get(f"/v1/bookings/{booking_id}")).json()["status"] == status
