"""One app's slow CalDAV server does not stall another app's calendars, on both backends.

App A's calls go to a hostile server of our own (tests/hostile.py) that holds each request
until the test lets it go (an event, not a sleep); meanwhile app B connects a calendar on a
real Radicale and the worker pulls it. The CalDAV threads are 8 for every app together
(`remote.THREADS`); one app holds at most `remote.PER_APP` of them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph import syncer
from slotgraph.calendars import remote
from slotgraph.services import calendar_connections
from slotgraph.worker import Worker
from tests.api.calendars.conftest import SETTINGS, busy, connect, vevent
from tests.api.conftest import Api, make_api
from tests.hostile import holding, seen
from tests.radicale import Radicale

BOUND = 15.0  # seconds B's connect and pull may take while A's calls are held (about 0.2 s)


@asynccontextmanager
async def _other_app(api: Api, engine: AsyncEngine) -> AsyncIterator[Api]:
    http, created = await make_api(engine, api.clock, SETTINGS)
    async with http:
        yield Api(http, created.secret_key, created.public_key, api.clock, api.backend)


async def test_a_slow_server_of_one_app_leaves_threads_for_the_others(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # Before: A's 10 connects took all 8 CalDAV threads (each call may take 300 s), and B's
    # connect waited for one of them: B did not finish within the bound.
    async with _other_app(cal_api, engine) as other:
        calendar = radicale.new_calendar()
        calendar.add_event(vevent("b-meeting", ":20240502T100000Z", ":20240502T110000Z"))
        b_resource = await other.resource()
        with holding() as (peer, release):
            a_resources = [await cal_api.resource() for _ in range(remote.THREADS + 2)]
            body = {"url": peer.url, "username": "u", "password": "p"}
            a_connects = [
                asyncio.create_task(cal_api.put(f"/v1/resources/{r['resource_id']}/calendar", body))
                for r in a_resources
            ]
            await seen(peer, remote.PER_APP, BOUND)
            r = await asyncio.wait_for(connect(other, calendar, b_resource), BOUND)
            assert r.status_code == 201, r.text
            assert await asyncio.wait_for(worker.calendars.run_once(), BOUND) == 1
            assert await busy(
                other, b_resource, "2024-05-02T00:00:00Z", "2024-05-03T00:00:00Z"
            ) == [("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")]
            # A's connects waited for their own turn, 2 at a time: the others never reached it
            assert len(peer.requests) == remote.PER_APP, peer.requests
            release.set()
            answers = await asyncio.wait_for(asyncio.gather(*a_connects), 4 * BOUND)
        assert {(a.status_code, a.json()["code"]) for a in answers} == {
            (422, "calendar_unreachable")
        }


async def test_a_connect_waits_for_the_server_at_most_its_deadline(
    cal_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check runs inside the request. Before: up to the 300 s of a sync, plus the time queued
    # for a thread. 20 s by default; 1 s here (the server holds until the test ends).
    monkeypatch.setattr(calendar_connections, "PROBE_SECONDS", 1.0, raising=False)
    resource = await cal_api.resource()
    with holding() as (peer, _):
        body = {"url": peer.url, "username": "u", "password": "p"}
        r = await asyncio.wait_for(
            cal_api.put(f"/v1/resources/{resource['resource_id']}/calendar", body), BOUND
        )
        assert (r.status_code, r.json()["code"]) == (422, "calendar_unreachable"), r.text
        assert "did not answer within 1 s" in r.json()["detail"]
        assert len(peer.requests) == 1


async def test_one_apps_due_calendars_on_a_slow_server_leave_room_for_the_others(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # A's 4 calendars are due before B's. Before: the worker's round took those 4 (its
    # CONCURRENT_SYNCS) and waited for all of them, so B's pull waited for A's server (up to
    # 300 s a call): B had no busy time within the bound. Now a sync is a task of its own and
    # the worker claims at most remote.PER_APP of one app's calendars.
    a_urls = []
    for _ in range(syncer.CONCURRENT_SYNCS):
        calendar = radicale.new_calendar()
        r = await connect(cal_api, calendar, await cal_api.resource())
        assert r.status_code == 201, r.text
        a_urls.append(str(calendar.url))
    cal_api.clock.advance(timedelta(seconds=1))
    async with _other_app(cal_api, engine) as other:
        calendar = radicale.new_calendar()
        calendar.add_event(vevent("b-meeting", ":20240502T100000Z", ":20240502T110000Z"))
        b_resource = await other.resource()
        assert (await connect(other, calendar, b_resource)).status_code == 201
        with holding() as (peer, release):
            await _move(engine, a_urls, peer.url)  # A's calendars: to a server that holds
            stop = asyncio.Event()
            with _pulled(b_resource) as b_pulled:
                loop = asyncio.create_task(worker.calendars.run(stop))
                try:
                    await seen(peer, remote.PER_APP, BOUND)
                    await asyncio.wait_for(b_pulled.wait(), BOUND)
                    assert await busy(
                        other, b_resource, "2024-05-02T00:00:00Z", "2024-05-03T00:00:00Z"
                    ) == [("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")]
                    # A's other 2 due calendars were not claimed: no request of theirs
                    assert len(peer.requests) == remote.PER_APP, peer.requests
                finally:
                    stop.set()
                    release.set()
                    await asyncio.wait_for(loop, 4 * BOUND)


SLOW_APPS = 5  # each with PER_APP due calendars: more slow syncs than CalDAV threads and slots
# B's pull takes about 4 s; the bound is wide for a loaded machine (the servers hold 120 s)
MANY_BOUND = 60.0


async def test_many_apps_on_slow_servers_leave_room_for_a_normal_apps_sync(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # Five apps' servers hold every request; their 10 calendars are due before B's. Before:
    # the worker's 4 sync slots held 4 of their syncs (and the CalDAV threads 8 of their
    # calls, first come, first served) until the servers answered (up to 300 s a call), so
    # B's pull waited for them: not within the bound. Now a sync or a call in flight 2 s is
    # slow and leaves its slot, and its app's next ones wait behind the other apps': B's
    # pull ends in about 4 s (two rounds of slow syncs leaving the slots).
    assert max(remote.THREADS, syncer.CONCURRENT_SYNCS) < SLOW_APPS * remote.PER_APP
    slow_urls = []
    async with contextlib.AsyncExitStack() as apps:
        for _ in range(SLOW_APPS):
            app = await apps.enter_async_context(_other_app(cal_api, engine))
            for _ in range(remote.PER_APP):
                calendar = radicale.new_calendar()
                assert (await connect(app, calendar, await app.resource())).status_code == 201
                slow_urls.append(str(calendar.url))
        cal_api.clock.advance(timedelta(seconds=1))
        calendar = radicale.new_calendar()
        calendar.add_event(vevent("b-meeting", ":20240502T100000Z", ":20240502T110000Z"))
        b_resource = await cal_api.resource()
        assert (await connect(cal_api, calendar, b_resource)).status_code == 201
        with holding() as (peer, release):
            await _move(engine, slow_urls, peer.url)  # the slow apps' calendars
            stop = asyncio.Event()
            with _pulled(b_resource) as b_pulled:
                loop = asyncio.create_task(worker.calendars.run(stop))
                try:
                    await asyncio.wait_for(b_pulled.wait(), MANY_BOUND)
                    assert await busy(
                        cal_api, b_resource, "2024-05-02T00:00:00Z", "2024-05-03T00:00:00Z"
                    ) == [("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")]
                    # every slow app has a sync at its server (B's was claimed after
                    # them), more than the worker's slots at once; none twice
                    await seen(peer, SLOW_APPS, BOUND)
                    assert SLOW_APPS <= len(peer.requests) <= len(slow_urls), peer.requests
                finally:
                    stop.set()
                    release.set()
                    await asyncio.wait_for(loop, 4 * BOUND)


async def _move(engine: AsyncEngine, urls: list[str], to: str) -> None:
    """The connections of the calendars at `urls` now point at `to` (a server that holds)."""
    async with engine.begin() as conn:
        for url in urls:
            await conn.execute(
                text("UPDATE calendar_connections SET url = :new WHERE url = :old"),
                {"new": to, "old": url},
            )


@contextmanager
def _pulled(resource: dict[str, str]) -> Iterator[asyncio.Event]:
    """An event set when the worker logs the pull of `resource`'s calendar."""
    loop, done = asyncio.get_running_loop(), asyncio.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if resource["resource_id"] in record.getMessage():
                loop.call_soon_threadsafe(done.set)

    logger, handler = logging.getLogger("slotgraph.calendars"), Seen()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield done
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
