"""Two-way CalDAV sync against a real Radicale server, on both backends: the Radicale server, an
API whose app has an encryption key, a worker on the test clock, and the helpers both sides use.

Events are written and read back with the `caldav` library, as a calendar program would; the
worker is driven by the test clock. Expected busy times are written out by hand.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from caldav.collection import Calendar
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.calendars import remote
from slotgraph.settings import Settings
from slotgraph.worker import Worker
from tests.api.conftest import Api, make_api
from tests.radicale import PASSWORD, USER, Radicale, running_radicale

KEY = Fernet.generate_key().decode()
SETTINGS = Settings(run_worker=False, webhook_allow_private_networks=True, encryption_key=KEY)


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    with running_radicale(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture
async def cal_api(api: Api, engine: AsyncEngine) -> AsyncIterator[Api]:
    """The `api` app's keys, served by an app that has an encryption key."""
    http, _ = await make_api(engine, api.clock, SETTINGS)
    async with http:
        yield Api(http, api.secret_key, api.public_key, api.clock, api.backend)


@pytest.fixture
def worker(cal_api: Api, engine: AsyncEngine) -> Worker:
    return Worker(engine, SETTINGS, clock=cal_api.clock, jitter=lambda: 0.0, worker_id="w1")


def vevent(uid: str, start: str, end: str, *extra: str) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//tests//radicale//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20240401T000000Z",
        f"DTSTART{start}",
        f"DTEND{end}",
        "SUMMARY:private",
        *extra,
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


async def connect(api: Api, calendar: Calendar, resource: dict[str, Any], **kw: Any) -> Any:
    body = {"url": str(calendar.url), "username": USER, "password": PASSWORD, **kw}
    return await api.put(f"/v1/resources/{resource['resource_id']}/calendar", body)


async def busy(api: Api, resource: dict[str, Any], start: str, end: str) -> list[tuple[str, str]]:
    r = await api.get(f"/v1/resources/{resource['resource_id']}/freebusy", start=start, end=end)
    assert r.status_code == 200, r.text
    return [(b["start_time"], b["end_time"]) for b in r.json()["busy"]]


async def free_at(api: Api, resource: dict[str, Any], start: str) -> bool:
    """Whether an hour starting at `start` (UTC) is offered by GET /v1/availability."""
    day = start[:10]
    r = await api.get(
        "/v1/availability",
        resource_id=resource["resource_id"],
        start=f"{day}T00:00:00Z",
        end=f"{day}T23:59:00Z",
        duration="PT1H",
    )
    assert r.status_code == 200, r.text
    return any(s["start_time"] == start for s in r.json()["data"])


async def drain(worker: Worker) -> None:
    """Worker cycles until nothing is left to do now."""
    for _ in range(20):
        if not await worker.run_once():
            return
    raise AssertionError("the worker kept finding work")


def in_calendar(calendar: Calendar) -> dict[str, Any]:
    """UID -> VEVENT of every object in the calendar, read as a calendar program would."""
    found = {}
    for obj in calendar.get_events():
        for component in obj.icalendar_instance.walk("VEVENT"):
            found[str(component["UID"])] = component
    return found


async def pushed_one(
    api: Api, worker: Worker, calendar: Calendar, **kw: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new resource connected to `calendar` (push only, unless `kw` says otherwise) and one
    booking of it pushed there by the worker: the resource and the booking."""
    resource = await api.resource()
    assert (await connect(api, calendar, resource, **({"pull": False} | kw))).status_code == 201
    booking = await api.book(
        resource_id=resource["resource_id"],
        client_id=(await api.client())["client_id"],
        start_time="2024-05-02T10:00:00Z",
        end_time="2024-05-02T11:00:00Z",
    )
    await drain(worker)
    assert set(in_calendar(calendar)) == {booking["booking_id"]}
    return resource, booking


async def disconnected(
    api: Api, worker: Worker, radicale: Radicale
) -> tuple[dict[str, Any], Calendar, dict[str, Any]]:
    """A resource whose new calendar got one booking pushed, then was disconnected with
    remove_pushed (204; the removal queued, not yet run): the resource, the calendar, the
    booking."""
    calendar = radicale.new_calendar()
    resource, booking = await pushed_one(api, worker, calendar)
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    assert (await api.delete(f"{path}?remove_pushed=true")).status_code == 204
    return resource, calendar, booking


GATE_SECONDS = 15.0  # how long a gated PUT waits for its release at most


@contextmanager
def gated_puts(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Every push's PUT waits for `release`, once it has set `entered` (in its CalDAV thread)."""
    entered, release = threading.Event(), threading.Event()
    put = remote.put_event

    def gated(*args: Any, **kwargs: Any) -> str:
        entered.set()
        assert release.wait(GATE_SECONDS)
        return put(*args, **kwargs)

    monkeypatch.setattr(remote, "put_event", gated)
    try:
        yield entered, release
    finally:
        release.set()


async def removal_attempts(engine: AsyncEngine) -> list[tuple[int | None, str | None]]:
    """The removal's attempts as logged: (status code, error), in order."""
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                "SELECT a.status_code, a.error FROM delivery_attempts a"
                " JOIN events e ON e.id = a.event_id"
                " WHERE e.type = 'calendar.disconnected' ORDER BY a.attempt"
            )
        )
        return [(code, error) for code, error in rows]
