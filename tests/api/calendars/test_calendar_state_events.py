"""A calendar connection's other state changes, on both backends, against a real Radicale and a
real webhook receiver: connecting, a removal's end, a pull going `failing` and `ok` again each
fire one signed webhook event, with public fields only.

Before, only the disconnect did (`calendar.disconnected`, test_calendar_events.py): a connect
was silent, a removal's end was a log line of the worker, and a calendar that stopped syncing
was seen only by polling `GET /v1/resources/{id}/calendar`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from slotgraph.domain.deliveries import MAX_ATTEMPTS
from slotgraph.worker import Worker
from tests.api.calendars.conftest import connect, disconnected, drain, in_calendar
from tests.api.calendars.test_calendar_events import UUID
from tests.api.conftest import Api
from tests.radicale import PASSWORD, Radicale
from tests.receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


async def _subscribed(api: Api, receiver: Receiver, *events: str) -> str:
    """A webhook endpoint for `events` at the receiver; its secret."""
    r = await api.post("/v1/webhooks", {"url": receiver.url, "events": list(events)})
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


def _received(receiver: Receiver, secret: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of each request received, each checked to be signed with `secret`."""
    for received in receiver.requests:
        Webhook(secret).verify(received.body, received.headers)  # raises if not signed with it
    return [(r.json["type"], r.json["data"]) for r in receiver.requests]


async def _listed(api: Api, *types: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of the events of `types` as `GET /v1/events` shows them, oldest first."""
    r = await api.get("/v1/events", type=list(types))
    assert r.status_code == 200, r.text
    return [(e["type"], e["payload"]["data"]) for e in r.json()["data"]]


async def _internal_ids(engine: AsyncEngine) -> set[str]:
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                "SELECT id FROM webhook_endpoints UNION ALL SELECT id FROM deliveries"
                " UNION ALL SELECT id FROM calendar_connections"
            )
        )
        # as the API writes them (SQLite's column holds 32 hex digits, no dashes)
        return {str(uuid.UUID(str(i))) for (i,) in rows}


async def test_connecting_a_calendar_is_a_signed_webhook_event(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker, receiver: Receiver
) -> None:
    secret = await _subscribed(cal_api, receiver, "calendar.connected")
    resource = await cal_api.resource()
    first, second = radicale.new_calendar(), radicale.new_calendar()
    assert (await connect(cal_api, first, resource, pull=False)).status_code == 201
    assert (await connect(cal_api, second, resource, push=False)).status_code == 200  # replaced
    internal = await _internal_ids(engine)  # the connection, its push target, the endpoint
    await drain(worker)

    rid = resource["resource_id"]
    received = sorted(_received(receiver, secret), key=lambda e: e[1]["replaced"])
    assert received == [  # two events without a booking: in either order
        (
            "calendar.connected",
            {
                "resource_id": rid,
                "url": str(first.url),
                "push": True,
                "pull": False,
                "replaced": False,
            },
        ),
        (
            "calendar.connected",
            {
                "resource_id": rid,
                "url": str(second.url),
                "push": False,
                "pull": True,
                "replaced": True,
            },
        ),
    ]
    r = await cal_api.get("/v1/events", type="calendar.connected")
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2
    shown = set(UUID.findall(r.text))
    assert rid in shown
    assert len(internal) >= 3
    assert shown & internal == set()
    assert PASSWORD not in r.text


async def test_a_removal_done_is_a_signed_webhook_event(
    cal_api: Api, radicale: Radicale, worker: Worker, receiver: Receiver
) -> None:
    secret = await _subscribed(
        cal_api, receiver, "calendar.removal_succeeded", "calendar.removal_failed"
    )
    resource, calendar, _ = await disconnected(cal_api, worker, radicale)
    await drain(worker)
    assert in_calendar(calendar) == {}
    expected = [("calendar.removal_succeeded", {"resource_id": resource["resource_id"]})]
    assert _received(receiver, secret) == expected
    assert await _listed(cal_api, "calendar.removal_succeeded") == expected


async def test_a_removal_whose_last_attempt_failed_is_a_signed_webhook_event(
    cal_api: Api, radicale: Radicale, worker: Worker, receiver: Receiver
) -> None:
    secret = await _subscribed(
        cal_api, receiver, "calendar.removal_succeeded", "calendar.removal_failed"
    )
    resource, calendar, _ = await disconnected(cal_api, worker, radicale)
    radicale.set_password("changed on the server")
    try:
        for attempt in range(MAX_ATTEMPTS):
            await drain(worker)
            if attempt < MAX_ATTEMPTS - 1:
                assert receiver.requests == []  # retries left: not the end yet
            cal_api.clock.advance(timedelta(hours=11))  # past the next retry's wait
        await drain(worker)
    finally:
        radicale.set_password(PASSWORD)
    assert len(in_calendar(calendar)) == 1  # left in the calendar
    ((kind, data),) = _received(receiver, secret)
    assert kind == "calendar.removal_failed"
    assert set(data) == {"resource_id", "error"}
    assert data["resource_id"] == resource["resource_id"]
    assert "refused the username or password" in data["error"]


async def test_a_calendar_that_stops_syncing_and_recovers_fires_one_event_each(
    cal_api: Api, radicale: Radicale, worker: Worker, receiver: Receiver
) -> None:
    secret = await _subscribed(
        cal_api, receiver, "calendar.sync_failing", "calendar.sync_recovered"
    )
    resource = await cal_api.resource()
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await connect(cal_api, radicale.new_calendar(), resource)).status_code == 201
    assert await worker.calendars.run_once() == 1  # ok
    cal_api.clock.advance(timedelta(minutes=10))  # due again
    radicale.set_password("changed on the server")
    try:
        assert await worker.calendars.run_once() == 1
        failing = (await cal_api.get(path)).json()
        assert (failing["status"], failing["failures"]) == ("failing", 1)
        cal_api.clock.advance(timedelta(seconds=30))
        assert await worker.calendars.run_once() == 1  # failing still: no second event
        assert (await cal_api.get(path)).json()["failures"] == 2
    finally:
        radicale.set_password(PASSWORD)
    await drain(worker)
    rid = resource["resource_id"]
    assert _received(receiver, secret) == [
        (
            "calendar.sync_failing",
            {
                "resource_id": rid,
                "error": failing["last_error"],
                "next_sync_at": "2024-05-01T09:10:30Z",  # 30 s after the failure at 09:10
            },
        )
    ]
    assert "refused the username or password" in failing["last_error"]

    cal_api.clock.advance(timedelta(minutes=1))
    assert await worker.calendars.run_once() == 1
    assert (await cal_api.get(path)).json()["status"] == "ok"
    cal_api.clock.advance(timedelta(minutes=10))
    assert await worker.calendars.run_once() == 1  # ok still: no second event
    await drain(worker)
    assert _received(receiver, secret)[1:] == [
        ("calendar.sync_recovered", {"resource_id": rid, "failures": 2})
    ]
    listed = await _listed(cal_api, "calendar.sync_failing", "calendar.sync_recovered")
    assert listed == _received(receiver, secret)
