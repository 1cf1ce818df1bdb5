"""CalDAV push: bookings written to the connected calendar, moved and removed; the feed reads back
as what was pushed; a push whose worker died; push failures retried and shown."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import icalendar
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.db.engine import session_factory
from slotgraph.services import deliveries, fanout
from slotgraph.worker import Worker
from tests.api.calendars.conftest import SETTINGS, connect, drain, in_calendar
from tests.api.conftest import Api
from tests.radicale import PASSWORD, Radicale, running_radicale


async def test_bookings_are_pushed_moved_and_removed(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    resource = await cal_api.resource()
    client = await cal_api.client()
    before = await cal_api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-05-02T08:00:00Z",
        end_time="2024-05-02T09:00:00Z",
    )
    calendar = radicale.new_calendar()
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    booking = await cal_api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-05-02T10:00:00Z",
        end_time="2024-05-02T11:00:00Z",
    )
    await drain(worker)
    events = in_calendar(calendar)
    assert set(events) == {before["booking_id"], booking["booking_id"]}  # backfilled, and new
    pushed = events[booking["booking_id"]]
    assert pushed.decoded("DTSTART").isoformat() == "2024-05-02T10:00:00+00:00"
    assert pushed.decoded("DTEND").isoformat() == "2024-05-02T11:00:00+00:00"
    assert (str(pushed["SUMMARY"]), int(pushed["SEQUENCE"]), str(pushed["STATUS"])) == (
        "Busy",
        0,
        "CONFIRMED",
    )
    # the feed shows the same events as the calendar
    feed_url = (await cal_api.get(f"/v1/resources/{resource['resource_id']}")).json()["feed_url"]
    feed = icalendar.Calendar.from_ical((await cal_api.http.get(feed_url)).content)
    assert {
        (str(e["UID"]), e.decoded("DTSTART"), int(e["SEQUENCE"])) for e in feed.walk("VEVENT")
    } == {(uid, e.decoded("DTSTART"), int(e["SEQUENCE"])) for uid, e in events.items()}

    moved = await cal_api.put(
        f"/v1/bookings/{booking['booking_id']}",
        {"start_time": "2024-05-02T13:00:00Z", "end_time": "2024-05-02T14:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    await drain(worker)
    again = in_calendar(calendar)[booking["booking_id"]]
    assert again.decoded("DTSTART").isoformat() == "2024-05-02T13:00:00+00:00"
    assert int(again["SEQUENCE"]) == 1

    # our own events are not busy time from outside: a pull leaves them alone
    await cal_api.post(f"/v1/resources/{resource['resource_id']}/calendar/sync")
    await drain(worker)
    state = (await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")).json()
    assert state["counts"]["pulled_blocks"] == 0
    assert (state["counts"]["pushed_events"], state["counts"]["pending_pushes"]) == (3, 0)
    assert state["last_push_error"] is None

    assert (await cal_api.delete(f"/v1/bookings/{booking['booking_id']}")).status_code == 200
    await drain(worker)
    assert set(in_calendar(calendar)) == {before["booking_id"]}
    # disconnecting with remove_pushed takes slotgraph's events out of the calendar (the
    # worker does: test_calendar_removal.py)
    r = await cal_api.delete(f"/v1/resources/{resource['resource_id']}/calendar?remove_pushed=true")
    assert r.status_code == 204
    await drain(worker)
    assert in_calendar(calendar) == {}


async def test_the_feed_reads_back_as_the_events_pushed_to_radicale(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    """What a subscriber of the feed sees and what a CalDAV client sees in the connected
    calendar are the same events: UID, times, summary, status and sequence."""
    resource = await cal_api.resource(feed_shows_details=True)
    client = await cal_api.client()
    calendar = radicale.new_calendar()
    assert (await connect(cal_api, calendar, resource, pull=False)).status_code == 201
    made = []
    for hour, details in ((8, "Check-up"), (10, None), (12, "Filling\nsecond line"), (14, None)):
        made.append(
            await cal_api.book(
                resource_id=resource["resource_id"],
                client_id=client["client_id"],
                start_time=f"2024-05-06T{hour:02d}:00:00Z",
                end_time=f"2024-05-06T{hour:02d}:45:00Z",
                **({"details": details} if details else {}),
            )
        )
    moved = await cal_api.put(
        f"/v1/bookings/{made[1]['booking_id']}",
        {"start_time": "2024-05-07T09:00:00Z", "end_time": "2024-05-07T10:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    assert (await cal_api.delete(f"/v1/bookings/{made[3]['booking_id']}")).status_code == 200
    await drain(worker)

    def seen(events: Any) -> dict[str, tuple[Any, ...]]:
        return {
            str(e["UID"]): (
                e.decoded("DTSTART"),
                e.decoded("DTEND"),
                str(e["SUMMARY"]),
                str(e["STATUS"]),
                int(e["SEQUENCE"]),
            )
            for e in events
        }

    pushed = seen(in_calendar(calendar).values())
    feed_url = (await cal_api.get(f"/v1/resources/{resource['resource_id']}")).json()["feed_url"]
    r = await cal_api.http.get(feed_url)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/calendar")
    fed = seen(icalendar.Calendar.from_ical(r.content).walk("VEVENT"))
    assert fed == pushed
    # Written out: the cancelled one left both; the moved one is at its new time, sequence 1.
    assert set(fed) == {made[i]["booking_id"] for i in (0, 1, 2)}
    assert [v[2] for _, v in sorted(fed.items(), key=lambda kv: kv[1][0])] == [
        "Check-up",
        "Filling",
        "Busy",
    ]
    assert fed[made[1]["booking_id"]][0].isoformat() == "2024-05-07T09:00:00+00:00"
    assert fed[made[1]["booking_id"]][4] == 1


async def test_a_push_whose_worker_died_is_sent_once_by_another(
    cal_api: Api, radicale: Radicale, engine: AsyncEngine
) -> None:
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    await connect(cal_api, calendar, resource)
    client = await cal_api.client()
    booking = await cal_api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-05-02T10:00:00Z",
        end_time="2024-05-02T11:00:00Z",
        notify=False,  # the calendar push only: no email deliveries beside it
    )
    sessions = session_factory(engine)
    async with sessions() as session:
        await fanout.dispatch(session, now=cal_api.clock())
    async with sessions() as session:
        (claim,) = await deliveries.claim(
            session,
            now=cal_api.clock(),
            worker_id="dying",
            lease=timedelta(seconds=SETTINGS.worker_lease_seconds),
            limit=10,
        )
    assert claim.calendar_id is not None  # claimed, then the worker is killed: never sent
    other = Worker(engine, SETTINGS, clock=cal_api.clock, worker_id="other", jitter=lambda: 0.0)
    await drain(other)
    assert in_calendar(calendar) == {}  # the lease still holds
    cal_api.clock.advance(timedelta(seconds=SETTINGS.worker_lease_seconds + 1))
    await drain(other)
    assert list(in_calendar(calendar)) == [booking["booking_id"]]
    assert len(calendar.get_events()) == 1
    state = (await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")).json()
    assert state["counts"]["pushed_events"] == 1


async def test_push_failures_are_retried_and_shown(
    cal_api: Api, worker: Worker, tmp_path: Path
) -> None:
    with running_radicale(tmp_path) as server:
        resource = await cal_api.resource()
        calendar = server.new_calendar()
        await connect(cal_api, calendar, resource, pull=False)
        server.set_password("changed")
        client = await cal_api.client()
        booking = await cal_api.book(
            resource_id=resource["resource_id"],
            client_id=client["client_id"],
            start_time="2024-05-02T10:00:00Z",
            end_time="2024-05-02T11:00:00Z",
        )
        await drain(worker)
        path = f"/v1/resources/{resource['resource_id']}/calendar"
        state = (await cal_api.get(path)).json()
        assert state["counts"]["pending_pushes"] == 1
        assert state["last_push_error"].startswith("auth:")
        server.set_password(PASSWORD)
        cal_api.clock.advance(timedelta(seconds=6))  # the first retry comes after 5 s
        await drain(worker)
        state = (await cal_api.get(path)).json()
        assert (state["counts"]["pending_pushes"], state["counts"]["pushed_events"]) == (0, 1)
        assert state["last_push_error"] is None
        assert list(in_calendar(calendar)) == [booking["booking_id"]]
