"""Disconnect with `remove_pushed`, on both backends, against a real Radicale: the request
answers at once, and the worker removes slotgraph's events from the calendar, with retries.
Before, the request removed them itself, for up to 300 s against a slow server."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import timedelta
from typing import Any

import niquests
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.calendars import remote
from slotgraph.domain.deliveries import MAX_ATTEMPTS, Outcome
from slotgraph.services.deliveries import Claim
from slotgraph.worker import Worker
from tests.api.calendars.conftest import (
    SETTINGS,
    connect,
    disconnected,
    drain,
    gated_puts,
    in_calendar,
    pushed_one,
    removal_attempts,
    vevent,
)
from tests.api.conftest import Api
from tests.hostile import chunked, holding, serving
from tests.radicale import PASSWORD, USER, Radicale

BOUND = 15.0  # seconds the disconnect may take while the server holds (about 0.05 s)


async def _pushed(api: Api, worker: Worker, radicale: Radicale) -> tuple[dict[str, Any], Any]:
    """A resource whose calendar has one booking pushed into it."""
    calendar = radicale.new_calendar()
    resource, _ = await pushed_one(api, worker, calendar)
    return resource, calendar


async def _a_push_leased_to_w1(
    api: Api, radicale: Radicale, worker: Worker
) -> tuple[dict[str, Any], Any, Claim]:
    """A resource connected to a new calendar (push only) and a booking of it, whose push the
    fan-out of `worker` ("w1") leased to itself and has not sent: its resource, calendar, claim."""
    resource = await api.resource()
    calendar = radicale.new_calendar()
    assert (await connect(api, calendar, resource, pull=False)).status_code == 201
    await drain(worker)
    await api.book(
        resource_id=resource["resource_id"],
        client_id=(await api.client())["client_id"],
        start_time="2024-05-02T10:00:00Z",
        end_time="2024-05-02T11:00:00Z",
    )
    _, _, born = await worker.steps.fan_out(room=10, limit=500)
    (push,) = [c for c in born if c.calendar_id is not None]
    return resource, calendar, push


async def _rows(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM calendar_connections"))).one()[0])


async def test_the_worker_removes_the_pushed_events_after_the_disconnect(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    resource, calendar = await _pushed(cal_api, worker, radicale)
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    r = await cal_api.delete(f"{path}?remove_pushed=true")
    assert r.status_code == 204, r.text
    assert (await cal_api.get(path)).status_code == 404  # disconnected at once
    assert len(in_calendar(calendar)) == 1  # the request did not talk to the server
    await drain(worker)
    assert in_calendar(calendar) == {}
    assert await _rows(engine) == 0  # nothing of the connection is kept


async def test_a_slow_server_does_not_hold_the_disconnect(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # Before: the request removed the events itself, and waited for the server (up to 300 s;
    # here it holds until the test ends): not within the bound.
    resource, _ = await _pushed(cal_api, worker, radicale)
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    with holding() as (peer, _):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE calendar_connections SET url = :u"), {"u": peer.url})
        r = await asyncio.wait_for(cal_api.delete(f"{path}?remove_pushed=true"), BOUND)
        assert r.status_code == 204, r.text
        assert peer.requests == []
        assert (await cal_api.get(path)).status_code == 404


async def test_the_removal_is_retried_and_the_resource_may_connect_again_meanwhile(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    resource, calendar = await _pushed(cal_api, worker, radicale)
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    radicale.set_password("changed on the server")
    try:
        assert (await cal_api.delete(f"{path}?remove_pushed=true")).status_code == 204
        await drain(worker)  # the first attempt: refused by the server
    finally:
        radicale.set_password(PASSWORD)
    assert len(in_calendar(calendar)) == 1
    # meanwhile the resource connects another calendar: its own, pushed to as before
    other = radicale.new_calendar()
    assert (await connect(cal_api, other, resource, pull=False)).status_code == 201
    await drain(worker)
    assert len(in_calendar(other)) == 1
    assert len(in_calendar(calendar)) == 1  # the retry is not due yet (5 s)
    cal_api.clock.advance(timedelta(seconds=6))
    await drain(worker)
    assert in_calendar(calendar) == {}  # removed on the retry
    assert len(in_calendar(other)) == 1  # the new connection's push stays
    assert (await cal_api.get(path)).json()["status"] == "pending"  # push only: no pull yet
    assert await _rows(engine) == 1


async def test_connecting_the_same_calendar_again_drops_the_removal(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # The removal would delete what the new connection pushes (the same bookings again).
    resource, calendar, _ = await disconnected(cal_api, worker, radicale)
    assert (await connect(cal_api, calendar, resource, pull=False)).status_code == 201
    await drain(worker)
    assert len(in_calendar(calendar)) == 1
    assert await _rows(engine) == 1


async def test_a_push_in_flight_at_the_disconnect_lands_before_the_removal(
    cal_api: Api,
    engine: AsyncEngine,
    radicale: Radicale,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A push claimed before the disconnect, its PUT still on its way. Before, the removal
    # listed the calendar at once (the event not there yet), and the PUT landed after it, left
    # for good. Then it waited for the pushes in flight by failing its attempt: a push held
    # past the first retry (5 s) used up two of its 8 attempts. Then it was due when the
    # leases of the pushes in flight ended (60 s), even when the push had ended long before.
    # Now it is due once the last of them is recorded, and waiting is not an attempt.
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    assert (await connect(cal_api, calendar, resource, pull=False)).status_code == 201
    await drain(worker)
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    other = Worker(engine, SETTINGS, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w2")
    with gated_puts(monkeypatch) as (entered, release):
        booking = await cal_api.book(
            resource_id=resource["resource_id"],
            client_id=(await cal_api.client())["client_id"],
            start_time="2024-05-02T10:00:00Z",
            end_time="2024-05-02T11:00:00Z",
        )
        flying = asyncio.create_task(worker.run_once())
        assert await asyncio.to_thread(entered.wait, BOUND)
        assert (await cal_api.delete(f"{path}?remove_pushed=true")).status_code == 204
        await drain(other)  # the push still in flight: the removal is not due
        cal_api.clock.advance(timedelta(seconds=6))  # past the first retry's wait
        await drain(other)
        cal_api.clock.advance(timedelta(seconds=30))
        await drain(other)
        assert await removal_attempts(engine) == []
        release.set()
        await asyncio.wait_for(flying, BOUND)
    assert set(in_calendar(calendar)) == {booking["booking_id"]}  # the push has landed
    await drain(other)  # at once: its lease had 24 s left
    assert in_calendar(calendar) == {}
    assert await removal_attempts(engine) == [(204, None)]  # one attempt, its first
    assert await _rows(engine) == 0


async def test_a_push_whose_worker_died_holds_the_removal_until_its_lease_ends(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # Nobody records a push whose worker died mid-send: it may still PUT (a thread on its way)
    # until its lease ends, so the removal waits that long, and no longer.
    resource, _, _ = await _a_push_leased_to_w1(cal_api, radicale, worker)  # then w1 died
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await cal_api.delete(f"{path}?remove_pushed=true")).status_code == 204
    other = Worker(engine, SETTINGS, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w2")
    cal_api.clock.advance(timedelta(seconds=SETTINGS.worker_lease_seconds - 1))
    await drain(other)
    assert await removal_attempts(engine) == []
    cal_api.clock.advance(timedelta(seconds=2))
    await drain(other)
    assert await removal_attempts(engine) == [(204, None)]
    assert await _rows(engine) == 0


async def test_a_disconnect_does_not_wait_for_a_claim_of_a_pending_push(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # Before, the disconnect locked every pending push of the connection (a backfill queues up
    # to 5,000, every booking change one more): its work grew with the backlog, and it waited
    # for any claim being written. PostgreSQL: another transaction holds one pending push's
    # row, as a worker's claim does until it commits; before, the disconnect waited for it
    # (here until the bound). SQLite has no row locks: a claim holds the write lock, which
    # every write waits for; there the test checks the same answers.
    resource = await cal_api.resource()
    client_id = (await cal_api.client())["client_id"]
    for day in range(2, 6):
        await cal_api.book(
            resource_id=resource["resource_id"],
            client_id=client_id,
            start_time=f"2024-05-0{day}T10:00:00Z",
            end_time=f"2024-05-0{day}T11:00:00Z",
        )
    calendar = radicale.new_calendar()
    assert (await connect(cal_api, calendar, resource, pull=False)).status_code == 201
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await cal_api.get(path)).json()["counts"]["pending_pushes"] == 4  # the backfill
    async with contextlib.AsyncExitStack() as stack:
        if cal_api.backend == "postgresql":
            claiming = await stack.enter_async_context(engine.begin())
            await claiming.execute(
                text("SELECT id FROM deliveries WHERE status = 'pending' LIMIT 1 FOR UPDATE")
            )
        r = await asyncio.wait_for(cal_api.delete(f"{path}?remove_pushed=true"), BOUND)
        assert r.status_code == 204, r.text
        assert (await cal_api.get(path)).status_code == 404
    await drain(worker)
    assert await removal_attempts(engine) == [(204, None)]  # due at once: nothing in flight
    assert in_calendar(calendar) == {}  # the pending pushes were never sent
    assert await _rows(engine) == 0


async def test_a_removal_in_flight_leaves_the_pushes_of_the_calendar_connected_again(
    cal_api: Api,
    engine: AsyncEngine,
    radicale: Radicale,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The removal has listed the calendar when the same calendar is connected again and its
    # bookings pushed anew. Before: it deleted what it had listed, the new connection's push
    # of the same object too. Now it deletes only its connection's events, as listed (ETag).
    resource, calendar = await _pushed(cal_api, worker, radicale)
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    listed, release = threading.Event(), threading.Event()
    loaded = remote._loaded

    def gated(*args: Any, **kwargs: Any) -> list[Any]:
        found = loaded(*args, **kwargs)
        if not listed.is_set():
            listed.set()
            assert release.wait(BOUND)
        return found

    monkeypatch.setattr(remote, "_loaded", gated)
    other = Worker(engine, SETTINGS, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w2")
    try:
        assert (await cal_api.delete(f"{path}?remove_pushed=true")).status_code == 204
        removing = asyncio.create_task(drain(other))
        assert await asyncio.to_thread(listed.wait, BOUND)
        assert (await connect(cal_api, calendar, resource, pull=False)).status_code == 201
        await drain(worker)  # the new connection pushes the booking again
    finally:
        release.set()
    await asyncio.wait_for(removing, BOUND)
    assert len(in_calendar(calendar)) == 1
    assert (await cal_api.get(path)).status_code == 200
    assert await _rows(engine) == 1


async def test_a_removal_attempt_ends_within_the_deliverys_lease(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # A removal (as a push) is a delivery, leased for WORKER_LEASE_SECONDS (6 s here): its
    # CalDAV call has a third of it (2 s). Before: a call's 300 s, so another worker took the
    # removal over while it ran; here the attempt read the server's 20 s answer to its end.
    resource, _ = await _pushed(cal_api, worker, radicale)
    settings = SETTINGS.model_copy(update={"worker_lease_seconds": 6.0})
    short = Worker(engine, settings, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w2")
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    with serving(chunked(400, chunk=1, every=0.05)) as peer:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE calendar_connections SET url = :u"), {"u": peer.url})
        assert (await cal_api.delete(f"{path}?remove_pushed=true")).status_code == 204
        await asyncio.wait_for(drain(short), BOUND)
        assert len(peer.requests) == 1
    async with engine.begin() as conn:
        (error,) = (
            await conn.execute(text("SELECT error FROM delivery_attempts WHERE error IS NOT NULL"))
        ).one()
    assert "took longer than 2 s" in error
    assert await _rows(engine) == 1  # kept for the retry


async def test_a_removal_whose_password_cannot_be_read_lets_the_connection_go_at_the_end(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # The worker cannot read the account (its SLOTGRAPH_ENCRYPTION_KEY unset or another):
    # each attempt fails, and after the last one the hidden connection goes (docs/calendars.md:
    # "until it succeeds or its last attempt fails"). Before, it stayed for ever, counted
    # toward the app's 1,000 connections, its removal target still enabled.
    _resource, calendar, _ = await disconnected(cal_api, worker, radicale)
    keyless = SETTINGS.model_copy(update={"encryption_key": None})
    other = Worker(engine, keyless, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w3")
    for _ in range(MAX_ATTEMPTS):
        await drain(other)
        cal_api.clock.advance(timedelta(hours=11))
    async with engine.begin() as conn:
        attempts = (await conn.execute(text("SELECT count(*) FROM delivery_attempts"))).one()[0]
    assert attempts >= MAX_ATTEMPTS  # the push, then every attempt of the removal
    assert len(in_calendar(calendar)) == 1  # never removed: the worker had no key
    assert await _rows(engine) == 0


def test_a_removal_reads_the_calendar_in_a_few_requests(
    radicale: Radicale, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A removal deletes what slotgraph pushed from a calendar that also holds the owner's own
    # events. Before, it loaded every object with a GET of its own before the first delete:
    # 200 of the owner's events were 200 requests, which against a remote server (50-150 ms
    # each) outlast a removal's deadline (a third of the lease, 20 s) at every attempt.
    calendar = radicale.new_calendar()
    for n in range(200):
        calendar.add_event(vevent(f"own-{n}", ":20240502T100000Z", ":20240502T110000Z"))
    calendar.add_event(
        vevent("pushed", ":20240503T100000Z", ":20240503T110000Z", "X-SLOTGRAPH-BOOKING-ID:b1")
    )
    requests: list[str] = []
    send = niquests.Session.send

    def counted(self: niquests.Session, request: Any, **kwargs: Any) -> Any:
        requests.append(f"{request.method} {request.url}")
        return send(self, request, **kwargs)

    monkeypatch.setattr(niquests.Session, "send", counted)
    account = remote.Account(str(calendar.url), USER, PASSWORD)
    assert remote.remove_pushed(account, allow_private=True) == 1
    assert len(requests) < 10, requests[:20]
    assert set(in_calendar(calendar)) == {f"own-{n}" for n in range(200)}


async def test_a_push_recorded_late_does_not_cut_short_a_failed_removals_backoff(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # The push in flight at the disconnect outlives its lease (its worker stalled): the removal
    # starts when the lease ends and fails at the server twice (the password changed there):
    # retried in 5 s, then in 5 min. The stalled worker then records its push. Before, that
    # made the removal due at once (its third attempt 5 min early, and so on for each push
    # recorded late); a wait for pushes is cut short, a failure's backoff is kept.
    resource, calendar, push = await _a_push_leased_to_w1(cal_api, radicale, worker)  # w1 stalls
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    other = Worker(engine, SETTINGS, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w2")
    radicale.set_password("changed on the server")
    try:
        assert (await cal_api.delete(f"{path}?remove_pushed=true")).status_code == 204
        cal_api.clock.advance(timedelta(seconds=SETTINGS.worker_lease_seconds + 1))
        await drain(other)
        cal_api.clock.advance(timedelta(seconds=6))
        await drain(other)
        refused = (None, "auth: The server refused the username or password (401/403).")
        assert await removal_attempts(engine) == [refused, refused]
        late = Outcome(None, "the calendar was disconnected", 0, None)
        await worker.steps.record([(push, late)], jitter=lambda: 0.0)
        await drain(other)
        assert len(await removal_attempts(engine)) == 2  # the next is due in 5 min
    finally:
        radicale.set_password(PASSWORD)
    cal_api.clock.advance(timedelta(minutes=5, seconds=1))
    await drain(other)
    assert (await removal_attempts(engine))[2:] == [(204, None)]
    assert in_calendar(calendar) == {}
    assert await _rows(engine) == 0
