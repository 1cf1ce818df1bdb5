"""CalDAV pull: connecting a calendar, its private events becoming busy time, failures and
retries, a worker killed mid-sync, the encryption key, and bookings under new private time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.calendars import remote
from slotgraph.db.engine import session_factory
from slotgraph.services import calendar_sync
from slotgraph.settings import Settings
from slotgraph.syncer import check_encryption_key
from slotgraph.worker import Worker
from tests.api.calendars.conftest import KEY, SETTINGS, busy, connect, free_at, vevent
from tests.api.conftest import Api, make_api
from tests.radicale import PASSWORD, USER, Radicale, running_radicale


async def test_connect_shows_state_and_never_the_password(
    cal_api: Api, radicale: Radicale, engine: AsyncEngine
) -> None:
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    r = await connect(cal_api, calendar, resource)
    assert r.status_code == 201, r.text
    assert PASSWORD not in r.text
    state = r.json()
    assert (state["status"], state["push"], state["pull"], state["username"]) == (
        "pending",
        True,
        True,
        USER,
    )
    assert state["next_sync_at"] == "2024-05-01T09:00:00Z"
    got = await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")
    assert got.status_code == 200
    assert PASSWORD not in got.text
    async with engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT password_encrypted FROM calendar_connections"))
        ).scalar_one()
    assert PASSWORD not in stored
    assert Fernet(KEY.encode()).decrypt(stored.encode()).decode() == PASSWORD
    again = await connect(cal_api, calendar, resource, push=False)
    assert (again.status_code, again.json()["push"]) == (200, False)


async def test_connect_refuses_what_cannot_work(
    cal_api: Api, api: Api, radicale: Radicale, engine: AsyncEngine
) -> None:
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    wrong = await connect(cal_api, calendar, resource, password="wrong")
    assert (wrong.status_code, wrong.json()["code"]) == (422, "calendar_auth_failed")
    missing = await connect(cal_api, calendar, resource, url=radicale.url + f"{USER}/nope/")
    assert (missing.status_code, missing.json()["code"]) == (422, "calendar_unreachable")
    # the app without SLOTGRAPH_ENCRYPTION_KEY cannot store a password
    no_key = await connect(api, calendar, resource)
    assert (no_key.status_code, no_key.json()["code"]) == (409, "encryption_key_missing")
    # the SSRF guard of webhooks: loopback is refused unless private networks are allowed
    strict = Settings(run_worker=False, encryption_key=KEY)
    http, _ = await make_api(engine, cal_api.clock, strict)
    async with http:
        guarded = Api(http, cal_api.secret_key, cal_api.public_key, cal_api.clock, "x")
        r = await connect(guarded, calendar, resource)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "url"
    assert "non-public" in r.json()["detail"]
    assert (
        await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")
    ).status_code == 404
    public = cal_api.as_key(cal_api.public_key)
    assert (await connect(public, calendar, resource)).status_code == 403


async def test_private_events_become_busy_time_after_one_sync(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    resource = await cal_api.resource()  # Europe/Oslo, open around the clock
    calendar = radicale.new_calendar()
    calendar.add_event(vevent("appointment", ":20240502T100000Z", ":20240502T110000Z"))
    calendar.add_event(vevent("national-day", ";VALUE=DATE:20240517", ";VALUE=DATE:20240518"))
    calendar.add_event(
        vevent(
            "monday-meeting",
            ";TZID=Europe/Oslo:20240506T090000",
            ";TZID=Europe/Oslo:20240506T100000",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            "EXDATE;TZID=Europe/Oslo:20240513T090000",
        )
    )
    calendar.add_event(
        vevent("lunch-maybe", ":20240503T100000Z", ":20240503T110000Z", "TRANSP:TRANSPARENT")
    )
    assert await free_at(cal_api, resource, "2024-05-02T10:00:00Z")
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    assert await worker.calendars.run_once() == 1

    assert not await free_at(cal_api, resource, "2024-05-02T10:00:00Z")
    assert await free_at(cal_api, resource, "2024-05-02T11:00:00Z")
    assert await free_at(cal_api, resource, "2024-05-03T10:00:00Z")  # transparent
    assert await busy(cal_api, resource, "2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z") == [
        ("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z"),
        ("2024-05-06T07:00:00Z", "2024-05-06T08:00:00Z"),  # 09:00 Oslo (CEST)
        # 2024-05-13: the cancelled occurrence
        ("2024-05-16T22:00:00Z", "2024-05-17T22:00:00Z"),  # all day, Oslo's midnights
        ("2024-05-20T07:00:00Z", "2024-05-20T08:00:00Z"),
        ("2024-05-27T07:00:00Z", "2024-05-27T08:00:00Z"),
    ]
    assert await free_at(cal_api, resource, "2024-05-13T07:00:00Z")
    state = (await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")).json()
    assert (state["status"], state["last_error"], state["counts"]["pulled_blocks"]) == (
        "ok",
        None,
        5,
    )
    assert state["next_sync_at"] == "2024-05-01T09:05:00Z"  # the 5-minute default

    # moved in the calendar: the block moves; deleted: the time comes back
    moved = calendar.event_by_uid("appointment")
    moved.data = vevent("appointment", ":20240502T140000Z", ":20240502T150000Z")
    moved.save()
    calendar.event_by_uid("national-day").delete()
    r = await cal_api.post(f"/v1/resources/{resource['resource_id']}/calendar/sync")
    assert r.status_code == 202
    assert await worker.calendars.run_once() == 1
    assert await busy(cal_api, resource, "2024-05-02T00:00:00Z", "2024-05-18T00:00:00Z") == [
        ("2024-05-02T14:00:00Z", "2024-05-02T15:00:00Z"),
        ("2024-05-06T07:00:00Z", "2024-05-06T08:00:00Z"),
    ]
    assert await free_at(cal_api, resource, "2024-05-02T10:00:00Z")
    assert await free_at(cal_api, resource, "2024-05-17T10:00:00Z")
    # nothing due, nothing changed: no work, and the blocks stay as they are
    assert await worker.calendars.run_once() == 0
    cal_api.clock.advance(timedelta(minutes=5))
    assert await worker.calendars.run_once() == 1
    state = (await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")).json()
    assert state["counts"]["pulled_blocks"] == 4


async def test_disconnect_removes_pulled_blocks(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    calendar.add_event(vevent("appointment", ":20240502T100000Z", ":20240502T110000Z"))
    await connect(cal_api, calendar, resource)
    await worker.calendars.run_once()
    assert not await free_at(cal_api, resource, "2024-05-02T10:00:00Z")
    r = await cal_api.delete(f"/v1/resources/{resource['resource_id']}/calendar")
    assert r.status_code == 204
    assert await free_at(cal_api, resource, "2024-05-02T10:00:00Z")
    assert (
        await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")
    ).status_code == 404
    assert len(calendar.get_events()) == 1  # the calendar itself is untouched


async def test_failures_are_shown_retried_and_never_block_bookings(
    cal_api: Api, worker: Worker, tmp_path: Path
) -> None:
    with running_radicale(tmp_path) as server:
        resource = await cal_api.resource()
        calendar = server.new_calendar()
        calendar.add_event(vevent("appointment", ":20240502T100000Z", ":20240502T110000Z"))
        assert (await connect(cal_api, calendar, resource)).status_code == 201
        server.set_password("changed on the server")
        assert await worker.calendars.run_once() == 1
        path = f"/v1/resources/{resource['resource_id']}/calendar"
        state = (await cal_api.get(path)).json()
        assert (state["status"], state["failures"]) == ("failing", 1)
        assert "refused the username or password" in state["last_error"]
        assert state["next_sync_at"] == "2024-05-01T09:00:30Z"  # retried, with backoff
        assert state["last_success_at"] is None
        client = await cal_api.client()
        await cal_api.book(
            resource_id=resource["resource_id"],
            client_id=client["client_id"],
            start_time="2024-05-02T10:00:00Z",
            end_time="2024-05-02T11:00:00Z",
        )
        assert await worker.calendars.run_once() == 0  # not due yet
        cal_api.clock.advance(timedelta(seconds=30))
        assert await worker.calendars.run_once() == 1
        state = (await cal_api.get(path)).json()
        assert (state["failures"], state["next_sync_at"]) == (2, "2024-05-01T09:01:30Z")
    # the server is gone now: unreachable
    cal_api.clock.advance(timedelta(minutes=1))
    assert await worker.calendars.run_once() == 1
    state = (await cal_api.get(path)).json()
    assert state["failures"] == 3
    assert "Could not reach the server" in state["last_error"]
    assert state["next_sync_at"] == "2024-05-01T09:03:30Z"  # 30 s, 1 min, 2 min


async def test_a_worker_killed_mid_sync_loses_and_duplicates_nothing(
    cal_api: Api, radicale: Radicale, engine: AsyncEngine
) -> None:
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    calendar.add_event(vevent("appointment", ":20240502T100000Z", ":20240502T110000Z"))
    await connect(cal_api, calendar, resource)
    sessions = session_factory(engine)
    lease = timedelta(seconds=SETTINGS.worker_lease_seconds)

    async def claim(worker_id: str) -> list[calendar_sync.SyncJob]:
        async with sessions() as session:
            return await calendar_sync.claim_due(
                session,
                now=cal_api.clock(),
                worker_id=worker_id,
                lease=lease,
                limit=4,
                encryption_key=KEY,
            )

    (dying,) = await claim("dying")
    pulled = remote.pull(
        dying.account, dying.sync_token, allow_private=True
    )  # fetched, then killed: never applied
    assert await claim("other") == []  # the lease holds
    cal_api.clock.advance(lease + timedelta(seconds=1))
    other = Worker(engine, SETTINGS, clock=cal_api.clock, worker_id="other")
    assert await other.calendars.run_once() == 1
    # the dead worker's result, arriving late, is refused: the connection is no longer its own
    async with sessions() as session:
        late = await calendar_sync.apply(
            session,
            job=dying,
            pulled=pulled,
            now=cal_api.clock(),
            worker_id="dying",
            interval=SETTINGS.calendar_sync_interval,
        )
    assert late is None
    assert await busy(cal_api, resource, "2024-05-02T00:00:00Z", "2024-05-03T00:00:00Z") == [
        ("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")
    ]
    r = await cal_api.get(f"/v1/resources/{resource['resource_id']}/blocks")
    assert len(r.json()["data"]) == 1


async def test_sync_now_while_a_sync_runs_keeps_that_one_and_runs_again_next_round(
    cal_api: Api, radicale: Radicale, engine: AsyncEngine
) -> None:
    """The docs' order: connect (a first sync is due at once), then "sync now". Before, the
    second bumped the connection's version, so the sync in flight applied nothing and kept its
    lease: nothing was pulled for 60 s (the worker's lease), not the next round (5 s)."""
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    calendar.add_event(vevent("appointment", ":20240502T100000Z", ":20240502T110000Z"))
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    await connect(cal_api, calendar, resource)
    async with session_factory(engine)() as session:
        (running,) = await calendar_sync.claim_due(
            session,
            now=cal_api.clock(),
            worker_id="first",
            lease=timedelta(seconds=SETTINGS.worker_lease_seconds),
            limit=4,
            encryption_key=KEY,
        )
    pulled = remote.pull(running.account, running.sync_token, allow_private=True)
    # Meanwhile the dentist adds an appointment and asks for a sync.
    calendar.add_event(vevent("added", ":20240502T120000Z", ":20240502T130000Z"))
    cal_api.clock.advance(timedelta(seconds=1))
    assert (await cal_api.post(f"{path}/sync")).status_code == 202
    async with session_factory(engine)() as session:
        report = await calendar_sync.apply(
            session,
            job=running,
            pulled=pulled,
            now=cal_api.clock(),
            worker_id="first",
            interval=SETTINGS.calendar_sync_interval,
        )
    assert report is not None  # the sync in flight is kept
    assert report.added == 1
    state = (await cal_api.get(path)).json()
    assert (state["last_success_at"], state["next_sync_at"]) == (
        "2024-05-01T09:00:01Z",
        "2024-05-01T09:00:01Z",  # the one asked for stays due
    )
    # The next round takes it, with no lease to wait out, and sees the added appointment.
    next_round = Worker(engine, SETTINGS, clock=cal_api.clock, worker_id="second")
    assert await next_round.calendars.run_once() == 1
    assert await busy(cal_api, resource, "2024-05-02T00:00:00Z", "2024-05-03T00:00:00Z") == [
        ("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z"),
        ("2024-05-02T12:00:00Z", "2024-05-02T13:00:00Z"),
    ]
    assert (await cal_api.get(path)).json()["next_sync_at"] == "2024-05-01T09:05:01Z"


async def test_refuses_to_start_without_the_key(
    cal_api: Api, radicale: Radicale, engine: AsyncEngine
) -> None:
    await check_encryption_key(engine, Settings())  # no connection yet: fine
    resource = await cal_api.resource()
    await connect(cal_api, radicale.new_calendar(), resource)
    with pytest.raises(SystemExit, match="SLOTGRAPH_ENCRYPTION_KEY"):
        await check_encryption_key(engine, Settings())
    other_key = Fernet.generate_key().decode()
    with pytest.raises(SystemExit, match="cannot be decrypted"):
        await check_encryption_key(engine, Settings(encryption_key=other_key))
    await check_encryption_key(engine, Settings(encryption_key=f"{other_key},{KEY}"))


async def test_a_booking_under_new_private_time_is_flagged_once(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    await connect(cal_api, calendar, resource)
    await worker.calendars.run_once()
    client = await cal_api.client()
    booking = await cal_api.book(
        resource_id=resource["resource_id"],
        client_id=client["client_id"],
        start_time="2024-05-02T12:00:00Z",
        end_time="2024-05-02T13:00:00Z",
    )
    # booked between two pulls; then a private appointment over it appears in the calendar
    calendar.add_event(vevent("dentist-own", ":20240502T123000Z", ":20240502T133000Z"))
    await cal_api.post(f"/v1/resources/{resource['resource_id']}/calendar/sync")
    assert await worker.calendars.run_once() == 1
    state = (await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")).json()
    assert state["counts"]["conflicts"] == 1
    (conflict,) = state["conflicts"]
    assert (conflict["booking_id"], conflict["calendar_uid"]) == (
        booking["booking_id"],
        "dentist-own",
    )
    assert (conflict["start_time"], conflict["end_time"]) == (
        "2024-05-02T12:30:00Z",
        "2024-05-02T13:30:00Z",
    )
    # the booking stands, and the time after it is busy
    got = await cal_api.get(f"/v1/bookings/{booking['booking_id']}")
    assert got.json()["status"] == "confirmed"
    assert not await free_at(cal_api, resource, "2024-05-02T13:00:00Z")
    # a second sync with nothing new flags nothing new
    await cal_api.post(f"/v1/resources/{resource['resource_id']}/calendar/sync")
    assert await worker.calendars.run_once() == 1
    events = await cal_api.get("/v1/events", type="calendar.conflict")
    assert [e["booking_id"] for e in events.json()["data"]] == [booking["booking_id"]]
    payload = events.json()["data"][0]["payload"]["data"]
    assert payload["block"]["calendar_uid"] == "dentist-own"


async def test_a_pulled_block_deleted_through_the_api_comes_back_at_the_next_full_sync(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    # What docs/calendars.md says of it: the calendar is the source. Deleting a pulled block
    # frees its time until its object is read again (here the daily full sync); then it is busy
    # again, and a booking made meanwhile is a conflict to decide.
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    calendar.add_event(vevent("appointment", ":20240502T100000Z", ":20240502T110000Z"))
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    assert await worker.calendars.run_once() == 1
    blocks = f"/v1/resources/{resource['resource_id']}/blocks"
    (pulled,) = (await cal_api.get(blocks)).json()["data"]
    assert pulled["reason"] == "Busy in the connected calendar"
    assert (await cal_api.delete(f"{blocks}/{pulled['block_id']}")).status_code == 204
    assert await free_at(cal_api, resource, "2024-05-02T10:00:00Z")
    booked = await cal_api.book(
        resource_id=resource["resource_id"],
        client_id=(await cal_api.client())["client_id"],
        start_time="2024-05-02T10:00:00Z",
        end_time="2024-05-02T11:00:00Z",
    )
    cal_api.clock.advance(timedelta(minutes=5))
    assert await worker.calendars.run_once() == 1  # incremental: the object did not change
    assert (await cal_api.get(blocks)).json()["data"] == []
    cal_api.clock.advance(timedelta(hours=24))
    assert await worker.calendars.run_once() == 1  # the full sync reads it again
    (back,) = (await cal_api.get(blocks)).json()["data"]
    assert (back["start_time"], back["end_time"]) == (
        "2024-05-02T10:00:00Z",
        "2024-05-02T11:00:00Z",
    )
    state = (await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")).json()
    assert [c["booking_id"] for c in state["conflicts"]] == [booked["booking_id"]]
