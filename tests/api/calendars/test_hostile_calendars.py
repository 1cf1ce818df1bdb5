"""A calendar an app connects is written by whoever runs it: recurrences that repeat without end,
served by a real Radicale, on both backends. Each pull ends in bounded work, what it could not
read is named in `last_error`, and the rest of the calendar still becomes busy time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from slotgraph.calendars import pull, remote
from slotgraph.services import calendar_connections, calendar_pulled
from slotgraph.worker import Worker
from tests.api.calendars.conftest import busy, connect, vevent
from tests.api.conftest import Api
from tests.hostile import chunked, fixed, serving
from tests.radicale import Radicale

MB = 1024 * 1024


async def _synced(api: Api, worker: Worker, resource: dict[str, str]) -> tuple[dict, float]:
    """One pull; the calendar's state after it, and the CPU seconds the process spent on it."""
    cpu = time.process_time()
    assert await worker.calendars.run_once() == 1
    spent = time.process_time() - cpu
    state = (await api.get(f"/v1/resources/{resource['resource_id']}/calendar")).json()
    return state, spent


async def test_a_rule_that_repeats_every_minute_is_not_expanded(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    # Before: 527,000 occurrences in the year ahead, expanded on the worker's event loop (about
    # 20 s of CPU; FREQ=SECONDLY never ended), then cut to 2,000 blocks.
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    calendar.add_event(vevent("appointment", ":20240502T100000Z", ":20240502T110000Z"))
    calendar.add_event(
        vevent("every-minute", ":20240501T000000Z", ":20240501T000030Z", "RRULE:FREQ=MINUTELY")
    )
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    state, spent = await _synced(cal_api, worker, resource)
    assert spent < 3.0, spent
    assert "repeat too often" in state["last_error"], state
    assert state["counts"]["pulled_blocks"] == 1
    assert await busy(cal_api, resource, "2024-05-01T00:00:00Z", "2024-05-03T00:00:00Z") == [
        ("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")
    ]


async def test_a_rule_with_a_count_is_as_long_as_its_count(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    # A series of three hourly meetings is three occurrences: dateutil stops at COUNT (0.001 s
    # of CPU for FREQ=SECONDLY;COUNT=10). Before: counted as every hour of the year ahead
    # (8,752 steps > 5,000), the whole object was not read, and its meetings were free time.
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    calendar.add_event(
        vevent("hourly", ":20240502T090000Z", ":20240502T093000Z", "RRULE:FREQ=HOURLY;COUNT=3")
    )
    calendar.add_event(
        vevent("a-minute", ":20240503T090000Z", ":20240503T090010Z", "RRULE:FREQ=MINUTELY;COUNT=2")
    )
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    state, _ = await _synced(cal_api, worker, resource)
    assert state["last_error"] is None, state
    assert await busy(cal_api, resource, "2024-05-01T00:00:00Z", "2024-05-04T00:00:00Z") == [
        ("2024-05-02T09:00:00Z", "2024-05-02T09:30:00Z"),
        ("2024-05-02T10:00:00Z", "2024-05-02T10:30:00Z"),
        ("2024-05-02T11:00:00Z", "2024-05-02T11:30:00Z"),
        ("2024-05-03T09:00:00Z", "2024-05-03T09:00:10Z"),
        ("2024-05-03T09:01:00Z", "2024-05-03T09:01:10Z"),
    ]


async def test_a_pull_expands_at_most_its_budget(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    # Each daily event since 1980 is about 16,500 steps of the rule: 40 of them are more than a
    # pull expands (500,000). Before: every one, 40 x 367 blocks.
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    for i in range(40):
        calendar.add_event(
            vevent(
                f"daily-{i:02}",
                f":19800101T0000{i:02}Z",
                f":19800101T0001{i:02}Z",
                "RRULE:FREQ=DAILY",
            )
        )
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    state, _ = await _synced(cal_api, worker, resource)
    assert "the rest of its objects were not read" in state["last_error"], state
    assert 0 < state["counts"]["pulled_blocks"] < 40 * 367
    assert state["counts"]["pulled_blocks"] % 367 == 0


async def test_connecting_to_a_server_that_answers_badly_is_a_422(cal_api: Api) -> None:
    # The probe runs in the request. Before: not XML was lxml's error, a 500; 64 MB was read
    # whole (and then that same 500).
    resource = await cal_api.resource()
    path = f"/v1/resources/{resource['resource_id']}/calendar"
    for answer, says in ((fixed(b"<<not xml"), "not XML"), (chunked(64 * MB), "more than")):
        with serving(answer) as peer:
            r = await cal_api.put(path, {"url": peer.url, "username": "u", "password": "p"})
        assert (r.status_code, r.json()["code"]) == (422, "calendar_unreachable"), r.text
        assert says in r.json()["detail"]
        assert peer.sent < 48 * MB


async def test_an_app_connects_at_most_its_calendars(
    cal_api: Api, radicale: Radicale, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bound is 1,000 (a connect probes the server: 1,000 take a minute); here it is 2.
    # Before: no bound (100 events against 1,000 calendar targets: 0.71 s of CPU per fan-out).
    monkeypatch.setattr(calendar_connections, "MAX_CALENDARS", 2, raising=False)
    calendar = radicale.new_calendar()
    first, second, third = [await cal_api.resource() for _ in range(3)]
    for resource in (first, second):
        assert (await connect(cal_api, calendar, resource)).status_code == 201
    refused = await connect(cal_api, calendar, third)
    assert (refused.status_code, refused.json()["code"]) == (409, "limit_reached"), refused.text
    assert "at most 2 connected calendars" in refused.json()["detail"]
    assert (await connect(cal_api, calendar, first, push=False)).status_code == 200  # a change
    gone = await cal_api.delete(f"/v1/resources/{first['resource_id']}/calendar")
    assert gone.status_code == 204
    assert (await connect(cal_api, calendar, third)).status_code == 201


async def test_a_pull_is_expanded_off_the_event_loop(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    # 30 daily events since 1980, within the pull's budget (each about 16,500 steps), shown as
    # free: seconds of expansion, and no block to write. Before, it
    # ran on the event loop (serve's, for every app's requests), inside the sync's transaction:
    # the loop did not turn for 4.1 s.
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    for i in range(30):
        calendar.add_event(
            vevent(
                f"d-{i:02}",
                f":19800101T0000{i:02}Z",
                f":19800101T0001{i:02}Z",
                "RRULE:FREQ=DAILY",
                "TRANSP:TRANSPARENT",
            )
        )
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    gaps: list[float] = []
    syncing = asyncio.create_task(worker.calendars.run_once())
    while not syncing.done():  # the loop's pulse: how long each turn waits for the next
        before = time.monotonic()
        await asyncio.sleep(0.01)
        gaps.append(time.monotonic() - before)
    assert await syncing == 1
    state = (await cal_api.get(f"/v1/resources/{resource['resource_id']}/calendar")).json()
    assert (state["last_error"], state["counts"]["pulled_blocks"]) == (None, 0)
    # On the loop, one turn waited for the whole expansion (nearly all of the sync's seconds); off
    # it, the loop turns throughout (its longest wait under 0.5 s on a machine not loaded). A
    # share of the sync, not seconds, so that a loaded machine cannot fail it (1.61 s once at load
    # 12) nor a fast one pass a sync done on the loop.
    assert max(gaps) < sum(gaps) / 4, (sum(gaps), sorted(gaps)[-5:])


async def test_past_its_bound_an_object_keeps_its_earliest_busy_times_and_says_so(
    cal_api: Api, radicale: Radicale, worker: Worker
) -> None:
    # Eight 10-minute slots a day (08:00 to 15:00 UTC) from 1 May 2024, and the one of 1 March
    # 2025 at 09:00 moved to 8 May 2024, 16:30-17:00: 2,929 busy times within the horizon (1 May
    # 2024 to 2 May 2025, 08:00), at most 2,000 kept. The earliest 2,000 are the 1,992 of 1 May to
    # 4 January, the moved one and seven of 5 January. Before: the first 2,000 in the library's
    # order (the moved one where its RECURRENCE-ID is, in March), so 8 May 16:30 was free, and
    # last_error said nothing.
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    series = vevent(
        "office-hours",
        ":20240501T080000Z",
        ":20240501T081000Z",
        "RRULE:FREQ=DAILY;BYHOUR=8,9,10,11,12,13,14,15",
    )
    moved = vevent("office-hours", ":20240508T163000Z", ":20240508T170000Z")
    moved = moved.replace("DTSTART", "RECURRENCE-ID:20250301T090000Z\r\nDTSTART", 1)
    calendar.add_event(series.replace("END:VCALENDAR\r\n", moved[moved.index("BEGIN:VEVENT") :]))
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    state, _ = await _synced(cal_api, worker, resource)
    slots = [(f"T{h:02}:00:00Z", f"T{h:02}:10:00Z") for h in range(8, 16)]
    may_8 = [(f"2024-05-08{s}", f"2024-05-08{e}") for s, e in slots]
    assert await busy(cal_api, resource, "2024-05-08T00:00:00Z", "2024-05-09T00:00:00Z") == [
        *may_8,
        ("2024-05-08T16:30:00Z", "2024-05-08T17:00:00Z"),
    ]
    assert await busy(cal_api, resource, "2025-01-05T00:00:00Z", "2025-01-07T00:00:00Z") == [
        (f"2025-01-05{s}", f"2025-01-05{e}") for s, e in slots[:7]
    ]
    assert state["counts"]["pulled_blocks"] == 2_000
    assert state["last_error"].endswith(
        ".ics: 929 busy times after 2025-01-05T14:00Z were left out (at most 2,000 per calendar "
        "object, the earliest kept)"
    ), state


async def _may_and_september(api: Api, resource: dict[str, str]) -> list[tuple[str, str]]:
    early = await busy(api, resource, "2024-05-01T00:00:00Z", "2024-05-10T00:00:00Z")
    return early + await busy(api, resource, "2024-09-01T00:00:00Z", "2024-10-10T00:00:00Z")


async def test_past_the_blocks_a_calendar_keeps_the_nearest_are_kept_and_said_so(
    cal_api: Api, radicale: Radicale, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection keeps at most 50,000 blocks; here 5. Five weekly meetings from September
    # ("far.ics") and tomorrow's appointment ("near.ics"). Before, the objects filled the room
    # in their hrefs' order: the far ones took it, tomorrow was free, and the blocks kept were
    # never given up for a nearer one that came later.
    monkeypatch.setattr(calendar_pulled, "MAX_BLOCKS", 5)
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    calendar.add_event(
        vevent("far", ":20240902T100000Z", ":20240902T110000Z", "RRULE:FREQ=WEEKLY;COUNT=5")
    )
    calendar.add_event(vevent("near", ":20240502T100000Z", ":20240502T110000Z"))
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    state, _ = await _synced(cal_api, worker, resource)
    september = [(f"2024-09-{d:02}T10:00:00Z", f"2024-09-{d:02}T11:00:00Z") for d in (2, 9, 16, 23)]
    may = [("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z")]
    assert await _may_and_september(cal_api, resource) == [*may, *september]
    assert state["counts"]["pulled_blocks"] == 5
    assert state["last_error"] == (
        "1 busy times from 2024-09-30T10:00Z on were left out (at most 5 per calendar, the "
        "earliest kept)"
    ), state
    # A nearer appointment in a later, incremental sync takes the place of the farthest block.
    calendar.add_event(vevent("nearer", ":20240503T100000Z", ":20240503T110000Z"))
    path = f"/v1/resources/{resource['resource_id']}/calendar/sync"
    assert (await cal_api.post(path)).status_code == 202
    state, _ = await _synced(cal_api, worker, resource)
    may.append(("2024-05-03T10:00:00Z", "2024-05-03T11:00:00Z"))
    assert await _may_and_september(cal_api, resource) == [*may, *september[:3]]
    assert state["counts"]["pulled_blocks"] == 5
    assert state["last_error"].startswith("1 busy times from 2024-09-23T10:00Z on"), state


async def test_a_pull_reads_at_most_its_events(
    cal_api: Api, radicale: Radicale, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pull reads at most 20,000 events (about 5 s of CPU); here 10. Of twelve single
    # meetings, ten are read and two are not, and last_error says so. Before: only recurrences
    # were counted, so a calendar of single events was read whole, up to 32 MB (about 2.5 s of
    # CPU a MB).
    monkeypatch.setattr(pull, "MAX_EVENTS_PER_PULL", 10)
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    for hour in range(8, 20):
        calendar.add_event(
            vevent(f"at-{hour}", f":20240502T{hour:02}0000Z", f":20240502T{hour:02}3000Z")
        )
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    state, _ = await _synced(cal_api, worker, resource)
    assert state["counts"]["pulled_blocks"] == 10, state
    assert state["last_error"].endswith(
        ".ics: this calendar is larger than a pull reads: more than 4,000,000 bytes or 10 events "
        "in all; the rest of its objects were not read"
    ), state


def test_a_pull_reads_at_most_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # At most 4,000,000 bytes of objects a pull (about 8 s of CPU for single events); here the
    # size of two of these three objects. The first two are read, the third is not (what the
    # worker runs in its CalDAV thread: calendar_pulled.expand).
    objects = {
        f"/cal/at-{h}.ics": vevent(f"at-{h}", f":20240502T{h}0000Z", f":20240502T{h}3000Z")
        for h in (10, 11, 12)
    }
    two = 2 * len(objects["/cal/at-10.ics"])
    monkeypatch.setattr(pull, "MAX_BYTES_PER_PULL", two)
    pulled = remote.Pulled("token", True, objects, set())
    found = calendar_pulled.expand(pulled, timezone="UTC", now=datetime(2024, 5, 1, 9, tzinfo=UTC))
    assert [len(busy) for busy in found.wanted.values()] == [1, 1]
    assert found.unread == {"/cal/at-12.ics"}  # not read: kept as it is
    assert found.errors == [
        f"/cal/at-12.ics: this calendar is larger than a pull reads: more than {two:,} bytes or "
        "20,000 events in all; the rest of its objects were not read"
    ]


def test_a_pull_counts_events_however_their_lines_are_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each object holds one VEVENT whose BEGIN line RFC 5545 lets a server write otherwise: with
    # a parameter, folded, in lower case; icalendar reads each as an event. Counted as
    # `BEGIN:VEVENT` lines only, a calendar written so was read whole past the events' bound
    # (here 2): [1, 1, 1, 1] and no error before.
    monkeypatch.setattr(pull, "MAX_EVENTS_PER_PULL", 2)
    written = {
        "param": "BEGIN;X-A=1:VEVENT",
        "folded": "BEGIN:VEV\r\n\r\n ENT",
        "lower": "begin:vevent",
        "quoted": 'BEGIN;X-A="a:b":VEVENT',
    }
    objects = {
        f"/cal/at-{h}.ics": vevent(f"at-{h}", f":20240502T{h}0000Z", f":20240502T{h}3000Z").replace(
            "BEGIN:VEVENT", begin
        )
        for h, begin in zip((10, 11, 12, 13), written.values(), strict=True)
    }
    pulled = remote.Pulled("token", True, objects, set())
    found = calendar_pulled.expand(pulled, timezone="UTC", now=datetime(2024, 5, 1, 9, tzinfo=UTC))
    assert [len(busy) for busy in found.wanted.values()] == [1, 1]
    assert found.unread == {"/cal/at-12.ics", "/cal/at-13.ics"}  # not read: kept as they are
    assert [e.split(":", 1)[0] for e in found.errors] == ["/cal/at-12.ics", "/cal/at-13.ics"]


def test_an_object_of_blank_lines_is_counted_in_one_pass() -> None:
    # The events' count unfolds the text first. Its fold pattern was tried at every line break
    # of a run, so an object of nothing but blank lines (1 MB, the largest object a pull reads)
    # took hours of CPU in the worker's CalDAV thread before being refused by the parser: this
    # test did not end. Now the count is one pass (about 30 ms a MB).
    budget = pull.Budget()
    budget.take("\r\n" * (pull.MAX_OBJECT_BYTES // 2))
    assert budget.events == pull.MAX_EVENTS_PER_PULL


async def test_what_a_pull_did_not_read_stays_busy(
    cal_api: Api, radicale: Radicale, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twelve meetings, read while a pull reads them all; then a full sync (the daily one) that
    # reads ten. The other two objects were not read, so nothing is known of them: their busy
    # time stays. Before, the full sync counted them gone, and a calendar larger than a pull
    # reads lost the busy time of its last objects at every full sync.
    resource = await cal_api.resource()
    calendar = radicale.new_calendar()
    for hour in range(8, 20):
        calendar.add_event(
            vevent(f"at-{hour}", f":20240502T{hour:02}0000Z", f":20240502T{hour:02}3000Z")
        )
    assert (await connect(cal_api, calendar, resource)).status_code == 201
    state, _ = await _synced(cal_api, worker, resource)
    assert (state["counts"]["pulled_blocks"], state["last_error"]) == (12, None), state
    monkeypatch.setattr(pull, "MAX_EVENTS_PER_PULL", 10)
    cal_api.clock.advance(timedelta(hours=24))
    state, _ = await _synced(cal_api, worker, resource)
    assert "the rest of its objects were not read" in state["last_error"], state
    assert state["counts"]["pulled_blocks"] == 12, state
    day = await busy(cal_api, resource, "2024-05-02T00:00:00Z", "2024-05-03T00:00:00Z")
    assert day == [(f"2024-05-02T{h:02}:00:00Z", f"2024-05-02T{h:02}:30:00Z") for h in range(8, 20)]


def test_an_object_larger_than_any_pull_is_refused_and_the_rest_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An object of more events than a pull reads (here 3; in production 20,000 bare VEVENTs fit
    # in 0.5 MB) is refused on its own, and the objects after it are read. Before, it spent the
    # budget of every pull that met it: the rest of the calendar was never read, and read in
    # turns each turn would have begun with it.
    monkeypatch.setattr(pull, "MAX_EVENTS_PER_PULL", 3)
    crowd = vevent("crowd", ":20240502T090000Z", ":20240502T093000Z").replace(
        "END:VCALENDAR", "BEGIN:VEVENT\r\nEND:VEVENT\r\n" * 3 + "END:VCALENDAR"
    )
    objects = {
        "/cal/a.ics": vevent("a", ":20240502T100000Z", ":20240502T103000Z"),
        "/cal/b.ics": crowd,
        "/cal/c.ics": vevent("c", ":20240502T110000Z", ":20240502T113000Z"),
    }
    pulled = remote.Pulled("token", True, objects, set())
    found = calendar_pulled.expand(pulled, timezone="UTC", now=datetime(2024, 5, 1, 9, tzinfo=UTC))
    assert {href: len(busy) for href, busy in found.wanted.items()} == {
        "/cal/a.ics": 1,
        "/cal/b.ics": 0,
        "/cal/c.ics": 1,
    }
    assert (found.unread, found.resume) == (frozenset(), None)
    assert found.errors == [
        "/cal/b.ics: more than a pull reads on its own: over 4,000,000 bytes or 3 events"
    ]
