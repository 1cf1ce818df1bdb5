"""`calendar.disconnected`, on both backends, against a real Radicale and a real webhook receiver:
every disconnect is a signed webhook event, and its public payload carries public fields only.

Before, it was written only with `remove_pushed`, never sent to webhooks ("every state change
fires a signed webhook"), and `GET /v1/events` showed `push_target_id`, the id of an internal
delivery target."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from slotgraph.db.migrate import migrate
from slotgraph.worker import Worker
from tests.api.calendars.conftest import disconnected, drain, in_calendar, pushed_one
from tests.api.conftest import Api
from tests.radicale import Radicale
from tests.receiver import Receiver, running_receiver

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.mark.parametrize("remove_pushed", [True, False])
async def test_a_disconnect_is_a_signed_webhook_event(
    cal_api: Api, radicale: Radicale, worker: Worker, receiver: Receiver, remove_pushed: bool
) -> None:
    r = await cal_api.post("/v1/webhooks", {"url": receiver.url, "events": ["calendar.*"]})
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    calendar = radicale.new_calendar()
    resource, _ = await pushed_one(cal_api, worker, calendar)
    # booking.* is not calendar.*; the connect is (test_calendar_state_events.py)
    assert [r.json["type"] for r in receiver.requests] == ["calendar.connected"]
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    flag = "true" if remove_pushed else "false"
    assert (await cal_api.delete(f"{path}?remove_pushed={flag}")).status_code == 204
    await drain(worker)

    ended = ["calendar.removal_succeeded"] if remove_pushed else []  # the removal's end
    assert sorted(r.json["type"] for r in receiver.requests[1:]) == [
        "calendar.disconnected",
        *ended,
    ]
    (received,) = [r for r in receiver.requests if r.json["type"] == "calendar.disconnected"]
    Webhook(secret).verify(received.body, received.headers)  # raises if not signed with it
    assert received.json["type"] == "calendar.disconnected"
    assert received.json["data"] == {
        "resource_id": resource["resource_id"],
        "remove_pushed": remove_pushed,
    }
    assert len(in_calendar(calendar)) == (0 if remove_pushed else 1)


async def test_the_events_list_shows_no_internal_ids(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    resource, calendar, booking = await disconnected(cal_api, worker, radicale)
    async with engine.begin() as conn:  # read while the removal is queued: its rows exist
        internal = {  # as the API writes them (SQLite's column holds 32 hex digits, no dashes)
            str(uuid.UUID(str(i)))
            for (i,) in await conn.execute(
                text(
                    "SELECT id FROM webhook_endpoints UNION ALL SELECT id FROM deliveries"
                    " UNION ALL SELECT id FROM calendar_connections"
                )
            )
        }
    assert len(internal) >= 4  # the push target, the removal's, a delivery each, the connection

    r = await cal_api.get("/v1/events", type="calendar.disconnected")
    assert r.status_code == 200, r.text
    (event,) = r.json()["data"]
    assert event["payload"]["data"] == {
        "resource_id": resource["resource_id"],
        "remove_pushed": True,
    }
    shown = set(UUID.findall((await cal_api.get("/v1/events")).text))
    assert booking["booking_id"] in shown
    assert shown & internal == set()
    await drain(worker)
    assert in_calendar(calendar) == {}  # the worker still found the pushes it removes


async def test_an_upgrade_takes_the_internal_id_out_of_the_events_already_written(
    cal_api: Api, engine: AsyncEngine, radicale: Radicale, worker: Worker
) -> None:
    # A removal queued by the code before migration 0017: its event carries push_target_id,
    # and the stopped push target has let go of the connection. The upgrade takes the id out
    # of the event and ties the target to the hidden connection again (the removal waits for
    # its pushes in flight through it).
    resource, calendar, _ = await disconnected(cal_api, worker, radicale)
    stopped = (
        "SELECT id, calendar_id FROM webhook_endpoints WHERE description LIKE 'calendar push%'"
    )
    try:
        await migrate(engine, "0016")
        async with engine.begin() as conn:
            (target, tied) = (await conn.execute(text(stopped))).one()
            assert tied is None  # let go, as the code before 0017 left it
            (event_id, payload) = (
                await conn.execute(
                    text("SELECT id, payload FROM events WHERE type = 'calendar.disconnected'")
                )
            ).one()
            old = orjson.loads(payload)
            old["data"]["push_target_id"] = str(uuid.UUID(str(target)))
            await conn.execute(
                text("UPDATE events SET payload = :p WHERE id = :e"),
                {"p": orjson.dumps(old).decode(), "e": event_id},
            )
    finally:
        await migrate(engine, "head")

    r = await cal_api.get("/v1/events", type="calendar.disconnected")
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["payload"]["data"] == {
        "resource_id": resource["resource_id"],
        "remove_pushed": True,
    }
    async with engine.begin() as conn:
        (_, tied) = (await conn.execute(text(stopped))).one()
        (hidden,) = (await conn.execute(text("SELECT id FROM calendar_connections"))).one()
    assert tied is not None
    assert uuid.UUID(str(tied)) == uuid.UUID(str(hidden))
    await drain(worker)
    assert in_calendar(calendar) == {}
