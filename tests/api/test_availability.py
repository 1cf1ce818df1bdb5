"""Availability through HTTP: rules, blocks, buffers, search, pools; search and booking agree."""

from __future__ import annotations

import gc
import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import T0, Api, Clock, make_api
from tests.conftest import clean

WEEKDAYS_9_17 = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
# The clock starts at 2024-05-01T09:00Z, a Wednesday.


async def book(api: Api, resource: dict[str, Any], start: str, end: str, **kw: Any) -> Any:
    client = await api.client()
    body = {
        "resource_id": resource["resource_id"],
        "client_id": client["client_id"],
        "start_time": start,
        "end_time": end,
        **kw,
    }
    return await api.post("/v1/bookings", body)


async def slots(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = await api.get("/v1/availability", **params)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def test_rules_are_part_of_the_resource(api: Api) -> None:
    r = await api.resource(
        timezone="Europe/Oslo",
        weekly_hours=WEEKDAYS_9_17,
        exceptions=[{"date": "2024-05-17", "hours": []}],
        buffer_after="PT10M",
        min_notice="PT2H",
        slot_step="PT30M",
    )
    assert r["weekly_hours"]["mon"] == [["09:00", "17:00"]]
    assert (r["buffer_after"], r["min_notice"], r["slot_step"]) == ("PT10M", "PT2H", "PT30M")
    path = f"/v1/resources/{r['resource_id']}/availability"
    rules = (await api.get(path)).json()
    assert rules["exceptions"] == [{"date": "2024-05-17", "hours": []}]
    changed = (await api.put(path, {"max_advance": "P30D"})).json()
    assert (changed["max_advance"], changed["slot_step"]) == ("P30D", "PT30M")
    for bad, field in [
        ({"weekly_hours": {"mon": [["09:00", "08:00"]]}}, "weekly_hours"),
        ({"weekly_hours": {"monday": []}}, "weekly_hours"),
        ({"weekly_hours": {"mon": [["9", "10"]]}}, "weekly_hours"),
        ({"slot_step": "PT0S"}, "slot_step"),
        ({"buffer_before": "-PT5M"}, "buffer_before"),
        ({"exceptions": [{"date": "2024-05-17", "hours": []}] * 2}, "exceptions"),
    ]:
        resp = await api.put(path, bad)
        assert resp.status_code == 422, bad
        assert resp.json()["errors"][0]["field"].startswith(field)


async def test_bookings_that_break_rules_are_refused(api: Api) -> None:
    r = await api.resource(
        timezone="UTC",
        weekly_hours=WEEKDAYS_9_17,
        min_notice="PT2H",
        max_advance="P14D",
        min_duration="PT30M",
        max_duration="PT2H",
    )
    cases = [
        ("2024-05-01T09:00:00Z", "2024-05-01T10:00:00Z", "too_soon"),
        ("2024-05-30T09:00:00Z", "2024-05-30T10:00:00Z", "too_far_ahead"),
        ("2024-05-02T09:00:00Z", "2024-05-02T09:15:00Z", "duration_out_of_range"),
        ("2024-05-02T09:00:00Z", "2024-05-02T12:00:00Z", "duration_out_of_range"),
        ("2024-05-02T16:30:00Z", "2024-05-02T17:30:00Z", "outside_availability"),
        ("2024-05-04T10:00:00Z", "2024-05-04T11:00:00Z", "outside_availability"),  # Saturday
        ("2024-05-02T10:05:00Z", "2024-05-02T11:05:00Z", "outside_availability"),  # off grid
    ]
    for start, end, code in cases:
        resp = await book(api, r, start, end)
        assert (resp.status_code, resp.json()["code"]) == (409, code), (start, resp.text)
    assert (await book(api, r, "2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")).status_code == 201
    # An operator may squeeze someone in; it is recorded. Double booking is never overridden.
    ok = await book(api, r, "2024-05-04T10:00:00Z", "2024-05-04T11:00:00Z", override_rules=True)
    assert ok.status_code == 201
    history = (await api.get(f"/v1/bookings/{ok.json()['booking_id']}/history")).json()["data"]
    assert history[0]["meta"] == {"override_rules": True}
    again = await book(api, r, "2024-05-04T10:30:00Z", "2024-05-04T11:00:00Z", override_rules=True)
    assert again.json()["code"] == "slot_unavailable"
    client = await api.client()
    resp = await api.as_key(api.public_key).post(
        "/v1/bookings",
        {
            "resource_id": r["resource_id"],
            "client_id": client["client_id"],
            "override_rules": True,
            "start_time": "2024-05-04T12:00:00Z",
            "end_time": "2024-05-04T13:00:00Z",
        },
    )
    assert resp.status_code == 403
    # A modification is checked too.
    resp = await api.put(
        f"/v1/bookings/{ok.json()['booking_id']}",
        {"start_time": "2024-05-04T12:00:00Z", "end_time": "2024-05-04T13:00:00Z"},
    )
    assert resp.json()["code"] == "outside_availability"


async def test_buffers_keep_time_free_around_bookings(api: Api) -> None:
    r = await api.resource(timezone="UTC", buffer_before="PT15M", buffer_after="PT30M")
    assert (await book(api, r, "2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")).status_code == 201
    # After 11:00 the resource keeps 30 min; a new booking also needs 15 min before it.
    late = await book(api, r, "2024-05-02T11:30:00Z", "2024-05-02T12:00:00Z")
    assert late.json()["code"] == "slot_unavailable"
    assert (await book(api, r, "2024-05-02T11:45:00Z", "2024-05-02T12:00:00Z")).status_code == 201
    early = await book(api, r, "2024-05-02T09:00:00Z", "2024-05-02T09:30:00Z")
    assert early.json()["code"] == "slot_unavailable"  # its 30-minute buffer reaches 10:00 - 15
    free = await slots(
        api,
        resource_id=r["resource_id"],
        start="2024-05-02T08:00:00Z",
        end="2024-05-02T10:00:00Z",
        duration="PT30M",
    )
    # A 30-minute booking at s holds [s - 15 min, s + 60 min): it must end by 09:45.
    assert [s["start_time"][11:16] for s in free] == ["08:00", "08:15", "08:30", "08:45"]


async def test_search_one_resource_in_local_time(api: Api) -> None:
    r = await api.resource(
        timezone="Europe/Oslo", weekly_hours={"thu": [["09:00", "12:00"]]}, slot_step="PT30M"
    )
    await book(api, r, "2024-05-02T08:00:00Z", "2024-05-02T08:30:00Z")  # 10:00-10:30 Oslo
    got = await slots(
        api,
        resource_id=r["resource_id"],
        start="2024-05-01T00:00:00Z",
        end="2024-05-08T00:00:00Z",
        duration="PT45M",
        timezone="Europe/Oslo",
    )
    assert [(s["start_time"], s["end_time"]) for s in got] == [
        ("2024-05-02T09:00:00+02:00", "2024-05-02T09:45:00+02:00"),
        ("2024-05-02T10:30:00+02:00", "2024-05-02T11:15:00+02:00"),
        ("2024-05-02T11:00:00+02:00", "2024-05-02T11:45:00+02:00"),
        ("2024-05-09T09:00:00+02:00", "2024-05-09T09:45:00+02:00"),
    ][:3]
    assert got[0]["resource_ids"] == [r["resource_id"]]
    first = await slots(
        api,
        resource_id=r["resource_id"],
        start="2024-05-01T00:00:00Z",
        end="2024-08-01T00:00:00Z",
        duration="PT45M",
        limit=1,
    )
    assert first[0]["start_time"] == "2024-05-02T07:00:00Z"
    dates = (
        await api.get(
            "/v1/availability/dates",
            resource_id=r["resource_id"],
            start="2024-05-01T00:00:00Z",
            end="2024-05-31T00:00:00Z",
            duration="PT45M",
            timezone="Europe/Oslo",
        )
    ).json()["data"]
    assert dates == ["2024-05-02", "2024-05-09", "2024-05-16", "2024-05-23", "2024-05-30"]


async def test_search_any_and_all(api: Api) -> None:
    a = await api.resource(
        name="Dentist",
        timezone="UTC",
        weekly_hours={"thu": [["09:00", "11:00"]]},
        slot_step="PT60M",
    )
    b = await api.resource(
        name="Room", timezone="UTC", weekly_hours={"thu": [["10:00", "12:00"]]}, slot_step="PT60M"
    )
    params = {
        "resource_id": [b["resource_id"], a["resource_id"]],
        "start": "2024-05-02T00:00:00Z",
        "end": "2024-05-03T00:00:00Z",
        "duration": "PT1H",
    }
    anyone = await slots(api, **params)
    assert [(s["start_time"][11:13], s["resource_ids"]) for s in anyone] == [
        ("09", [a["resource_id"]]),
        ("10", [b["resource_id"], a["resource_id"]]),
        ("11", [b["resource_id"]]),
    ]
    both = await slots(api, **params, mode="all")
    assert [s["start_time"][11:13] for s in both] == ["10"]
    # Dates in mode=all: every Thursday shares 10:00 (read a day at a time, combine.free_dates)
    month = {**params, "end": "2024-05-17T00:00:00Z"}
    found = await api.get("/v1/availability/dates", **month, mode="all")
    assert found.json()["data"] == ["2024-05-02", "2024-05-09", "2024-05-16"]


async def test_search_validation(api: Api) -> None:
    r = await api.resource(timezone="UTC")
    base = {
        "resource_id": r["resource_id"],
        "start": "2024-05-02T00:00:00Z",
        "end": "2024-05-03T00:00:00Z",
        "duration": "PT1H",
    }
    for change, field in [
        ({"end": "2024-08-04T00:00:00Z"}, "end"),
        ({"duration": "P2D"}, "duration"),
        ({"duration": "PT0S"}, "duration"),
        ({"start": "2024-05-02T00:00:00"}, "start"),
        ({"resource_id": "00000000-0000-0000-0000-000000000000"}, "resource_id"),
        ({"mode": "some"}, "mode"),
        ({"timezone": "Mars/Base"}, "timezone"),
    ]:
        resp = await api.get("/v1/availability", **{**base, **change})
        assert resp.status_code == 422, (change, resp.text)
        assert field in [e["field"] for e in resp.json()["errors"]]
    # The public key may search (a booking widget does).
    assert (await api.as_key(api.public_key).get("/v1/availability", **base)).status_code == 200


async def test_groups_with_seats_and_an_open_window(api: Api) -> None:
    r = await api.resource(timezone="UTC")
    full = await api.book(
        graph="group_owner",
        resource_id=r["resource_id"],
        max_seats=1,
        start_time="2024-05-02T10:00:00Z",
        end_time="2024-05-02T11:00:00Z",
    )
    client = await api.client()
    await api.book(
        graph="group_customer", owner_booking_id=full["booking_id"], client_id=client["client_id"]
    )
    open_ = await api.book(
        graph="group_owner",
        resource_id=r["resource_id"],
        max_seats=8,
        start_time="2024-05-02T12:00:00Z",
        end_time="2024-05-02T13:00:00Z",
    )
    await api.book(
        graph="group_owner",
        resource_id=r["resource_id"],
        max_seats=8,
        max_booking_time="P1D",
        start_time="2024-05-09T12:00:00Z",
        end_time="2024-05-09T13:00:00Z",
    )
    got = (
        await api.get(
            "/v1/availability/groups",
            resource_id=r["resource_id"],
            start="2024-05-01T00:00:00Z",
            end="2024-05-31T00:00:00Z",
        )
    ).json()["data"]
    assert [(g["booking_id"], g["seats_left"]) for g in got] == [(open_["booking_id"], 8)]


async def test_pools(api: Api) -> None:
    a, b, c = [await api.resource(name=n, timezone="UTC") for n in "ABC"]
    client = await api.client()
    ids = [a["resource_id"], b["resource_id"], c["resource_id"]]

    def at(hour: int, **kw: Any) -> dict[str, Any]:
        return {
            "client_id": client["client_id"],
            "start_time": f"2024-05-02T{hour:02d}:00:00Z",
            "end_time": f"2024-05-02T{hour:02d}:30:00Z",
            **kw,
        }

    first = await api.book(**at(10, resource_ids=ids))
    assert (first["resource_id"], first["resource_ids"]) == (a["resource_id"], [a["resource_id"]])
    second = await api.book(**at(10, resource_ids=ids))
    assert second["resource_id"] == b["resource_id"]
    # least_busy: A and B have a booking today, C none.
    third = await api.book(**at(12, resource_ids=ids, assign="least_busy"))
    assert third["resource_id"] == c["resource_id"]
    await api.book(**at(10, resource_ids=ids))
    none = await api.post("/v1/bookings", at(10, resource_ids=ids))
    assert none.json()["code"] == "slot_unavailable"
    # all: the dentist and the room together, or nothing.
    both = await api.book(**at(14, resource_ids=[a["resource_id"], b["resource_id"]], assign="all"))
    assert both["resource_ids"] == [a["resource_id"], b["resource_id"]]
    for rid in (a["resource_id"], b["resource_id"]):
        taken = await api.post("/v1/bookings", at(14, resource_id=rid))
        assert taken.json()["code"] == "slot_unavailable"
    clash = await api.post(
        "/v1/bookings", at(10, resource_ids=[c["resource_id"], a["resource_id"]], assign="all")
    )
    assert clash.json()["code"] == "slot_unavailable"
    moved = await api.put(
        f"/v1/bookings/{both['booking_id']}",
        {"start_time": "2024-05-02T15:00:00Z", "end_time": "2024-05-02T15:30:00Z"},
    )
    assert moved.status_code == 200, moved.text
    assert (await api.post("/v1/bookings", at(14, resource_id=a["resource_id"]))).status_code == 201
    await api.delete(f"/v1/bookings/{both['booking_id']}")
    assert (await api.post("/v1/bookings", at(15, resource_id=b["resource_id"]))).status_code == 201
    bad = await api.post("/v1/bookings", at(16, resource_ids=ids, resource_id=ids[0]))
    assert bad.status_code == 422


# The UTC midnight two days before each zone's autumn change (the window covers the change day).
FOLD_DAYS = {
    "Europe/Oslo": datetime(2027, 10, 29, tzinfo=UTC),
    "America/New_York": datetime(2027, 11, 5, tzinfo=UTC),
    "Australia/Lord_Howe": datetime(2027, 4, 2, tzinfo=UTC),
}


@pytest.mark.slow  # property test through the API
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 10_000))
async def test_search_and_booking_agree(engine: AsyncEngine, seed: int) -> None:
    rng = random.Random(seed)
    await clean(engine)
    clock = Clock(T0)
    http, created = await make_api(engine, clock)
    async with http:
        api = Api(http, created.secret_key, created.public_key, clock, engine.dialect.name)
        zone = rng.choice(["UTC", "Europe/Oslo", "America/New_York", "Australia/Lord_Howe"])
        # Either ordinary days, or the autumn change (a repeated wall time) and the days around it.
        start = rng.choice([T0, FOLD_DAYS.get(zone, T0)])
        hours = {
            d: [[f"{h:02d}:00", f"{h + rng.randint(1, 6):02d}:{rng.choice(['00', '30'])}"]]
            for d in ("wed", "thu", "fri", "sat", "sun")
            for h in [rng.randint(0, 14)]
        }
        notice = rng.choice([{}, {"min_notice": "PT0S"}, {"min_notice": "PT3H"}])  # {}: none
        r = await api.resource(
            timezone=zone,
            weekly_hours=hours,
            buffer_after=rng.choice(["PT0S", "PT15M"]),
            slot_step=rng.choice(["PT15M", "PT30M"]),
            **notice,
        )
        # The window starts a day in the past: the secret key may book there (unless a notice
        # is set), the public key never; each key is offered what it may book.
        clock.now = start + timedelta(days=1)
        user = rng.choice([api, api.as_key(api.public_key)])
        client = await api.client()
        customer = {"name": client["name"], "email": client["email"]}
        window = (start, start + timedelta(days=3))
        for _ in range(rng.randint(0, 6)):  # some existing bookings, made with override
            s = start + timedelta(minutes=15 * rng.randint(0, 4 * 72))
            await book(
                api, r, s.isoformat(), (s + timedelta(minutes=30)).isoformat(), override_rules=True
            )
        duration = timedelta(minutes=rng.choice([30, 45, 60]))
        found = await slots(
            user,
            resource_id=r["resource_id"],
            start=window[0].isoformat(),
            end=window[1].isoformat(),
            duration=f"PT{duration.seconds // 60}M",
        )
        offered = {datetime.fromisoformat(s["start_time"]) for s in found}
        # Every candidate on a 15-minute grid: bookable iff offered. (Each booking is cancelled
        # again, so the next candidate sees the same calendar.)
        candidates = [window[0] + timedelta(minutes=15 * k) for k in range(4 * 72 - 4)]
        for s in rng.sample(candidates, 40) + sorted(offered)[:20]:
            # The public key books with an inline customer; its email matches the client.
            who = {"client_id": client["client_id"]} if user is api else {"customer": customer}
            body = {
                "resource_id": r["resource_id"],
                **who,
                "start_time": s.isoformat(),
                "end_time": (s + duration).isoformat(),
            }
            resp = await user.post("/v1/bookings", body)
            assert (resp.status_code == 201) == (s in offered), (s, user.key[:3], resp.text)
            if resp.status_code == 201:
                await api.delete(f"/v1/bookings/{resp.json()['booking_id']}")
            else:
                assert resp.json()["code"] in {
                    "slot_unavailable",
                    "outside_availability",
                    "too_soon",
                    "in_the_past",
                }


@pytest.mark.parametrize("zone", ["Europe/Oslo", "America/New_York"])
async def test_dst_day_search(api: Api, zone: str) -> None:
    day = "2025-03-30" if zone == "Europe/Oslo" else "2025-03-09"  # spring-forward Sundays
    r = await api.resource(
        timezone=zone, weekly_hours={"sun": [["13:00", "15:00"]]}, slot_step="PT60M"
    )
    got = await slots(
        api,
        resource_id=r["resource_id"],
        start=f"{day}T00:00:00Z",
        end=f"{day}T23:59:00Z",
        duration="PT1H",
        timezone=zone,
    )
    assert [s["start_time"][11:] for s in got] == (
        ["13:00:00+02:00", "14:00:00+02:00"]
        if zone == "Europe/Oslo"
        else ["13:00:00-04:00", "14:00:00-04:00"]
    )


@pytest.mark.parametrize(
    ("zone", "day", "hours", "step", "expected"),
    [
        # 03:00 CEST -> 02:00 CET: 02:00-03:00 local happens twice (00:00Z and 01:00Z).
        (
            "Europe/Oslo",
            "2027-10-31",
            ["01:00", "05:00"],
            "PT60M",
            ["23:00", "00:00", "01:00", "02:00", "03:00"],
        ),
        # 02:00 +11:00 -> 01:30 +10:30: 01:30-02:00 local happens twice (14:30Z and 15:00Z).
        (
            "Australia/Lord_Howe",
            "2027-04-04",
            ["01:00", "04:00"],
            "PT30M",
            ["14:00", "14:30", "15:00", "15:30", "16:00", "16:30", "17:00"],
        ),
    ],
)
async def test_the_repeated_autumn_hour_is_offered_and_bookable(
    api: Api, zone: str, day: str, hours: list[str], step: str, expected: list[str]
) -> None:
    r = await api.resource(timezone=zone, weekly_hours={"sun": [hours]}, slot_step=step)
    start = datetime.fromisoformat(f"{day}T00:00:00Z") - timedelta(days=1)
    got = await slots(
        api,
        resource_id=r["resource_id"],
        start=start.isoformat(),
        end=(start + timedelta(days=2)).isoformat(),
        duration=step,
    )
    assert [s["start_time"][11:16] for s in got] == expected
    # Each one, the second occurrence of the repeated wall time included, can be booked.
    for s in got:
        resp = await book(api, r, s["start_time"], s["end_time"])
        assert resp.status_code == 201, (s, resp.text)
    # An opening boundary inside the fold still means its first occurrence.
    fold_start = {"Europe/Oslo": "02:30", "Australia/Lord_Howe": "01:45"}[zone]
    late = await api.resource(timezone=zone, weekly_hours={"sun": [[fold_start, hours[1]]]})
    first = await slots(
        api,
        resource_id=late["resource_id"],
        start=start.isoformat(),
        end=(start + timedelta(days=2)).isoformat(),
        duration="PT15M",
        limit=1,
    )
    opens = {"Europe/Oslo": "00:30", "Australia/Lord_Howe": "14:45"}[zone]
    assert first[0]["start_time"][11:16] == opens


async def test_search_bounds(api: Api) -> None:
    """limit defaults to 500 and is at most 5,000; an answer lists at most 100,000 resource ids;
    a search considers at most 1,000,000 start times. Each refusal is a 422 naming its bound."""
    r = await api.resource(timezone="UTC", slot_step="PT1M")
    week = {
        "resource_id": r["resource_id"],
        "start": "2024-05-02T00:00:00Z",
        "end": "2024-05-09T00:00:00Z",
        "duration": "PT30M",
    }
    assert len(await slots(api, **week)) == 500
    assert len(await slots(api, **week, limit=5000)) == 5000
    for change, field, words in [
        ({"limit": 5001}, "limit", "5000"),
        ({"limit": 0}, "limit", "1"),
    ]:
        resp = await api.get("/v1/availability", **{**week, **change})
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"].endswith(field)
        assert words in resp.text
    many = [
        (await api.resource(timezone="UTC", slot_step="PT1M"))["resource_id"] for _ in range(25)
    ]
    resp = await api.get("/v1/availability", **{**week, "resource_id": many, "limit": 4001})
    assert resp.status_code == 422, resp.text
    assert "100,000" in resp.json()["detail"]
    assert resp.json()["errors"][0]["field"] == "limit"
    # The largest answer the bounds allow: 4,000 slots x 25 resources, a few MB.
    resp = await api.get("/v1/availability", **{**week, "resource_id": many, "limit": 4000})
    assert resp.status_code == 200, resp.text
    assert sum(len(s["resource_ids"]) for s in resp.json()["data"]) == 100_000
    assert len(resp.content) < 5_000_000
    # 8 resources x 93 days of one-minute starts is more than a search may consider.
    quarter = {**week, "end": "2024-08-03T00:00:00Z", "resource_id": many[:8]}
    resp = await api.get("/v1/availability", **quarter)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] == "step"
    assert "1,000,000" in resp.json()["detail"]
    assert (await api.get("/v1/availability", **{**quarter, "step": "PT5M"})).status_code == 200
    assert (await api.get("/v1/availability/dates", **quarter)).status_code == 422


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow  # 2,000 searches
async def test_memory_stays_flat_over_searches_with_distinct_windows(api: Api) -> None:
    """2,000 searches, each with a window no other search used: the process does not grow.

    (Each new window used to keep its whole grid, about 7 MB at one-minute steps over 93 days, in
    a cache of 256 entries.)"""
    r = await api.resource(timezone="Europe/Oslo", slot_step="PT1M")
    base = datetime(2024, 5, 2, tzinfo=UTC)

    async def search(k: int) -> None:
        start = base + timedelta(minutes=k)
        resp = await api.get(
            "/v1/availability",
            resource_id=r["resource_id"],
            start=start.isoformat(),
            end=(start + timedelta(days=93)).isoformat(),
            duration="PT30M",
            limit=10,
        )
        assert resp.status_code == 200, resp.text

    for k in range(50):  # warm up: pools, caches of fixed size, compiled statements
        await search(k)
    gc.collect()
    before = _rss()
    for k in range(50, 2050):
        await search(k)
        if k % 100 == 0:
            assert _rss() - before < 20_000_000, (k, (_rss() - before) / 1e6)
    gc.collect()
    assert _rss() - before < 20_000_000


async def test_an_unpaid_hold_blocks_search_until_its_deadline(api: Api) -> None:
    r = await api.resource(timezone="UTC", slot_step="PT1H")
    client = await api.client()
    window = {
        "resource_id": r["resource_id"],
        "start": "2024-05-02T10:00:00Z",
        "end": "2024-05-02T13:00:00Z",
        "duration": "PT1H",
    }
    await api.book(
        graph="instant_payment",
        resource_id=r["resource_id"],
        client_id=client["client_id"],
        start_time="2024-05-02T11:00:00Z",
        end_time="2024-05-02T12:00:00Z",
    )
    starts = [s["start_time"] for s in await slots(api, **window)]
    assert starts == ["2024-05-02T10:00:00Z", "2024-05-02T12:00:00Z"]
    api.clock.advance(timedelta(minutes=4, seconds=59))
    assert len(await slots(api, **window)) == 2
    api.clock.advance(timedelta(seconds=1))  # the payment deadline: the hold holds nothing
    starts = [s["start_time"] for s in await slots(api, **window)]
    assert starts == ["2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z", "2024-05-02T12:00:00Z"]


async def test_holds_and_durations_with_fractions_of_a_second(api: Api) -> None:
    """Exact to the microsecond: PostgreSQL's search widens holds to whole seconds only for a
    whole-second duration, where that forbids no other start (services/availability.py)."""
    r = await api.resource(timezone="UTC", slot_step="PT1M")
    blocks = f"/v1/resources/{r['resource_id']}/blocks"
    half = {"start_time": "2024-05-02T10:00:00.500Z", "end_time": "2024-05-02T10:30:00.500Z"}
    assert (await api.post(blocks, half)).status_code == 201
    window = {"start": "2024-05-02T09:58:00Z", "end": "2024-05-02T10:33:00Z"}

    async def starts(duration: str) -> list[str]:
        found = await slots(api, resource_id=r["resource_id"], duration=duration, **window)
        return [s["start_time"][11:19] for s in found]

    # [10:00:00, 10:00:00.5) ends as the block begins; [10:30:00, 10:30:00.5) is inside it
    assert await starts("PT0.5S") == ["09:58:00", "09:59:00", "10:00:00", "10:31:00", "10:32:00"]
    assert await starts("PT1M") == ["09:58:00", "09:59:00", "10:31:00", "10:32:00"]
