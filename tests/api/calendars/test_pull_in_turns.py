"""A calendar larger than a pull reads is read in turns, against a real Radicale on both backends:
a pull whose budget runs out (here 5 events) leaves the rest of its objects as they were, and
the next pulls go on from where it stopped, in the order of the objects' URLs, until one has
read to the end; then the pulls go on incrementally, and nothing that changed meanwhile is lost.
Before, the token moved on past the objects left unread: a moved event among them kept its old
time busy until the daily full sync, which read in the server's order and left the same objects
unread again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from caldav.collection import Calendar

from slotgraph.calendars import pull
from slotgraph.services.calendar_sync import TURNS
from slotgraph.worker import Worker
from tests.api.calendars.conftest import busy, connect, vevent
from tests.api.conftest import Api
from tests.radicale import Radicale

HOURS = range(8, 20)  # twelve meetings, each its own calendar object
DAY = ("2024-05-02T00:00:00Z", "2024-05-04T00:00:00Z")


def meeting(hour: int, day: int = 2) -> str:
    return vevent(f"at-{hour}", f":2024050{day}T{hour:02}0000Z", f":2024050{day}T{hour:02}3000Z")


def times(day: int, hours: Any) -> list[tuple[str, str]]:
    return [(f"2024-05-0{day}T{h:02}:00:00Z", f"2024-05-0{day}T{h:02}:30:00Z") for h in hours]


async def twelve_meetings(api: Api, radicale: Radicale) -> tuple[dict[str, Any], Calendar]:
    """A resource connected to a new calendar of the twelve meetings (`HOURS`, on the 2nd)."""
    resource = await api.resource()
    calendar = radicale.new_calendar()
    for hour in HOURS:
        calendar.add_event(meeting(hour))
    assert (await connect(api, calendar, resource)).status_code == 201
    return resource, calendar


async def pulled(api: Api, worker: Worker, resource: dict[str, Any]) -> dict[str, Any]:
    """The next pull, when its interval has passed; the calendar's state after it."""
    api.clock.advance(timedelta(minutes=5))
    assert await worker.calendars.run_once() == 1
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    return dict((await api.get(path)).json())


async def test_a_first_sync_larger_than_a_pull_is_read_in_turns(
    cal_api: Api, radicale: Radicale, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull, "MAX_EVENTS_PER_PULL", 5)
    resource, calendar = await twelve_meetings(cal_api, radicale)
    state = await pulled(cal_api, worker, resource)
    assert state["counts"]["pulled_blocks"] == 5
    assert state["last_error"].startswith(TURNS), state
    first = await busy(cal_api, resource, *DAY)
    # One of those read in the first turn moves now: seen once the sweep is done, from the
    # token stored when it began (a sweep's pulls do not read again what they read).
    start = first[0][0]
    hour = int(start[11:13])
    moved = calendar.event_by_uid(f"at-{hour}")
    moved.data = meeting(hour, day=3)
    moved.save()
    state = await pulled(cal_api, worker, resource)
    assert state["counts"]["pulled_blocks"] == 10
    assert state["last_error"].startswith(TURNS), state
    state = await pulled(cal_api, worker, resource)
    assert (state["counts"]["pulled_blocks"], state["last_error"]) == (12, None), state
    assert await busy(cal_api, resource, *DAY) == times(2, HOURS)  # the move not seen yet
    state = await pulled(cal_api, worker, resource)  # incremental, from the sweep's token
    assert (state["counts"]["pulled_blocks"], state["last_error"]) == (12, None), state
    others = [h for h in HOURS if h != hour]
    assert await busy(cal_api, resource, *DAY) == [*times(2, others), *times(3, [hour])]


async def test_changes_larger_than_a_pull_are_all_seen_within_a_few_pulls(
    cal_api: Api, radicale: Radicale, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource, calendar = await twelve_meetings(cal_api, radicale)
    state = await pulled(cal_api, worker, resource)
    assert (state["counts"]["pulled_blocks"], state["last_error"]) == (12, None), state
    # Every meeting moves a day on, and one is cancelled, between two pulls of 5 events.
    monkeypatch.setattr(pull, "MAX_EVENTS_PER_PULL", 5)
    for hour in HOURS:
        moved = calendar.event_by_uid(f"at-{hour}")
        moved.data = meeting(hour, day=3)
        moved.save()
    calendar.event_by_uid("at-19").delete()
    state = await pulled(cal_api, worker, resource)
    assert state["last_error"].startswith(TURNS), state
    now = await busy(cal_api, resource, *DAY)
    assert len(now) == 11  # 5 moved, 6 not yet read; the cancelled one is gone at once
    assert sum(start.startswith("2024-05-03") for start, _ in now) == 5
    for _ in range(2):
        state = await pulled(cal_api, worker, resource)
    # Before: 6 stayed on the 2nd until the daily full sync, which read 5 objects again in the
    # server's order.
    assert (state["counts"]["pulled_blocks"], state["last_error"]) == (11, None), state
    assert await busy(cal_api, resource, *DAY) == times(3, range(8, 19))
    state = await pulled(cal_api, worker, resource)
    assert (state["counts"]["pulled_blocks"], state["last_error"]) == (11, None), state
