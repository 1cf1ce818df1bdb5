"""A calendar sync's lease covers the sync, on both backends: no second worker takes a sync
still in flight, and a sync that outlasts its deadline fails and lets go of its calendar.

The calendar's server is a hostile one of our own (tests/hostile.py) that holds each request
until the test lets it go (an event, not a sleep); the workers run on the test clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.worker import Worker
from tests.api.calendars.conftest import SETTINGS, connect
from tests.api.conftest import Api
from tests.hostile import holding, seen
from tests.radicale import Radicale

BOUND = 15.0  # seconds a worker's round may take here (about 0.1 s when nothing waits)


async def _moved_to(engine: AsyncEngine, url: str) -> None:
    """The calendar moves to `url` (connected on Radicale first: a connect checks the server)."""
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE calendar_connections SET url = :url"), {"url": url})


async def test_a_second_worker_does_not_take_a_sync_still_in_flight(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # Before: the sync's lease was the deliveries' 60 s, and a pull may take 300 s. A minute
    # into a slow pull, the second worker claimed the same calendar and pulled it again (its
    # request reached the server, and its round waited for the server as well).
    resource = await cal_api.resource()
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await connect(cal_api, radicale.new_calendar(), resource)).status_code == 201
    second = Worker(engine, SETTINGS, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w2")
    with holding() as (peer, release):
        await _moved_to(engine, peer.url)
        first = asyncio.create_task(worker.calendars.run_once())
        await seen(peer, 1, BOUND)  # the first worker's pull is at the server
        cal_api.clock.advance(timedelta(seconds=SETTINGS.worker_lease_seconds + 1))
        assert await asyncio.wait_for(second.calendars.run_once(), BOUND) == 0
        cal_api.clock.advance(timedelta(seconds=SETTINGS.calendar_sync_seconds - 60))
        assert await asyncio.wait_for(second.calendars.run_once(), BOUND) == 0
        assert len(peer.requests) == 1, peer.requests
        release.set()
        assert await asyncio.wait_for(first, BOUND) == 1
    state = (await cal_api.get(path)).json()
    assert (state["status"], state["failures"]) == ("failing", 1)
    assert "not XML" in state["last_error"]


async def test_a_worker_that_died_mid_sync_has_its_calendar_taken_once_the_lease_ends(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale
) -> None:
    resource = await cal_api.resource()
    assert (await connect(cal_api, radicale.new_calendar(), resource)).status_code == 201
    dying = Worker(engine, SETTINGS, clock=cal_api.clock, worker_id="dying")
    assert len(await dying.calendars._claim(4)) == 1  # claimed, then the worker died
    other = Worker(engine, SETTINGS, clock=cal_api.clock, worker_id="other")
    lease = SETTINGS.calendar_sync_seconds + SETTINGS.worker_lease_seconds
    cal_api.clock.advance(timedelta(seconds=lease - 1))
    assert await asyncio.wait_for(other.calendars.run_once(), BOUND) == 0
    cal_api.clock.advance(timedelta(seconds=2))
    assert await asyncio.wait_for(other.calendars.run_once(), BOUND) == 1
    state = (await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")).json()
    assert (state["status"], state["failures"]) == ("ok", 0)


async def test_a_sync_that_outlasts_its_deadline_fails_and_lets_go_of_the_calendar(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale
) -> None:
    # Before: a sync had no deadline of its own (only each CalDAV call's 300 s, once it had a
    # thread), so no lease could cover it; the round waited for the server here.
    settings = SETTINGS.model_copy(update={"calendar_sync_seconds": 1.0})
    worker = Worker(engine, settings, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w1")
    resource = await cal_api.resource()
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await connect(cal_api, radicale.new_calendar(), resource)).status_code == 201
    with holding() as (peer, _):
        await _moved_to(engine, peer.url)
        assert await asyncio.wait_for(worker.calendars.run_once(), BOUND) == 1
        state = (await cal_api.get(path)).json()
        assert (state["status"], state["failures"]) == ("failing", 1)
        assert "took longer than 1 s" in state["last_error"]
        assert state["next_sync_at"] == "2024-05-01T09:00:30Z"  # retried in 30 s, not leased
        assert len(peer.requests) == 1
