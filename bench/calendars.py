"""CalDAV pull: a calendar of 2,000 events (200 of them weekly recurring) into blocks.

A real Radicale server (tests/radicale.py) holds the calendar; slotgraph pulls it through its own
worker code (`CalendarSyncer.run_once`, in this process), so every figure includes the CalDAV
round trips, the iCalendar parsing and recurrence expansion, and the one transaction that writes
the blocks. Figures:

  full pull             - the first sync: every object fetched, ~12,000 blocks written
  incremental, 20 changed - 10 events moved and 10 deleted in the calendar, then a sync
  incremental, nothing  - a sync when nothing changed (the steady state every 5 minutes)
  availability, 0 / with blocks - GET /v1/availability of that resource over 31 days
                          (30-minute slots), server time (Server-Timing), before the calendar is
                          connected and after the pull: the pull's effect on search latency.
  CalDAV turn, N waiting - CPU of one call's end and the next call's start in the CalDAV
                          threads' bookkeeping (calendars/threads.py, no thread run), with N
                          calls of one app waiting behind its share (`turn_us`).

Ratios are against a baseline of the same run: the incremental syncs against the full pull, the
availability with blocks against the same search with none.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from tests.radicale import PASSWORD, USER, running_radicale

from bench.harness import Figure, database
from slotgraph.api.app import create_app
from slotgraph.calendars import threads
from slotgraph.db.engine import create_engine, session_factory
from slotgraph.db.migrate import migrate
from slotgraph.services import apps
from slotgraph.settings import Settings
from slotgraph.worker import Worker

NOW = datetime(2031, 3, 1, 8, tzinfo=UTC)  # the clock: the calendar's events lie ahead of it
SINGLE, RECURRING = 1_800, 200


def _calendar_text() -> str:
    """1,800 one-off events over the next year, 200 weekly series (one year each)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//slotgraph bench//EN"]

    def event(uid: str, start: datetime, *extra: str) -> None:
        lines.extend(
            [
                "BEGIN:VEVENT",
                f"UID:{uid}",
                "DTSTAMP:20310101T000000Z",
                f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
                f"DTEND:{start + timedelta(minutes=45):%Y%m%dT%H%M%SZ}",
                "SUMMARY:private",
                *extra,
                "END:VEVENT",
            ]
        )

    for i in range(SINGLE):
        event(f"single-{i}", NOW + timedelta(days=i % 365, hours=i % 9))
    for i in range(RECURRING):
        event(f"weekly-{i}", NOW + timedelta(days=i % 7, hours=9 + i % 8), "RRULE:FREQ=WEEKLY")
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


async def _availability_ms(http: httpx.AsyncClient, resource_id: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        r = await http.get(
            "/v1/availability",
            params={
                "resource_id": resource_id,
                "start": (NOW + timedelta(days=1)).isoformat(),
                "end": (NOW + timedelta(days=32)).isoformat(),
                "duration": "PT30M",
            },
        )
        assert r.status_code == 200, r.text
        out.append(float(r.headers["server-timing"].split("dur=")[1]))
    return out


async def _timed_sync(worker: Worker) -> float:
    began = time.perf_counter()
    assert await worker.calendars.run_once() == 1
    return (time.perf_counter() - began) * 1000


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    runs = 2 if quick else 3
    full: list[float] = []
    changed: list[float] = []
    unchanged: list[float] = []
    blocks: list[float] = []
    search_empty: list[float] = []
    search_full: list[float] = []
    text = _calendar_text()
    with tempfile.TemporaryDirectory() as tmp, running_radicale(Path(tmp)) as radicale:
        for n in range(runs):
            async with database(sqlite) as url:
                engine = create_engine(url)
                await migrate(engine)
                clock = _Clock()
                settings = Settings(
                    run_worker=False,
                    webhook_allow_private_networks=True,
                    encryption_key=Fernet.generate_key().decode(),
                )
                async with session_factory(engine)() as session:
                    created = await apps.create_tenant(session, name="bench", now=clock())
                app = create_app(settings, engine=engine, clock=clock)
                headers = {"Authorization": f"Bearer {created.secret_key}"}
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://bench",
                    headers=headers,
                    timeout=600,
                ) as http:
                    r = await http.post("/v1/resources", json={"name": "Dr", "timezone": "UTC"})
                    resource_id = r.json()["resource_id"]
                    search_empty += await _availability_ms(http, resource_id, 5)
                    calendar_url = f"{radicale.url}{USER}/bench-{n}/"
                    async with httpx.AsyncClient(auth=(USER, PASSWORD), timeout=600) as dav:
                        put = await dav.put(
                            calendar_url, content=text, headers={"content-type": "text/calendar"}
                        )
                        assert put.status_code in (200, 201), put.text
                    r = await http.put(
                        f"/v1/resources/{resource_id}/calendar",
                        json={
                            "url": calendar_url,
                            "username": USER,
                            "password": PASSWORD,
                            "push": False,
                        },
                    )
                    assert r.status_code == 201, r.text
                    worker = Worker(engine, settings, clock=clock, worker_id="bench")
                    full.append(await _timed_sync(worker))
                    state = (await http.get(f"/v1/resources/{resource_id}/calendar")).json()
                    blocks.append(state["counts"]["pulled_blocks"])
                    search_full += await _availability_ms(http, resource_id, 5)
                    # 20 changed (10 moved, 10 deleted), then a sync
                    await asyncio.to_thread(_change, calendar_url)
                    clock.advance(settings.calendar_sync_interval)
                    changed.append(await _timed_sync(worker))
                    clock.advance(settings.calendar_sync_interval)
                    unchanged.append(await _timed_sync(worker))
                await engine.dispose()
    base_full = statistics.median(full)
    base_search = statistics.median(search_empty)
    idle = [await turn_us(0) for _ in range(runs)]
    crowded = [await turn_us(10_000) for _ in range(runs)]
    return [
        Figure("pulled blocks (occurrences of 2,000 events)", blocks, "blocks"),
        Figure("full pull", full, "ms"),
        Figure("incremental pull, 20 events changed", changed, "ms"),
        Figure("incremental pull, nothing changed", unchanged, "ms"),
        Figure("incremental (20 changed) / full", [c / base_full for c in changed], "x"),
        Figure("availability, 31 days, no blocks", search_empty, "ms"),
        Figure("availability, 31 days, after the pull", search_full, "ms"),
        Figure(
            "availability after the pull / without blocks",
            [s / base_search for s in search_full],
            "x",
        ),
        Figure("CalDAV turn, none waiting (CPU)", idle, "us"),
        Figure("CalDAV turn, 10,000 of one app waiting (CPU)", crowded, "us"),
        Figure(
            "CalDAV turn, 10,000 waiting / none",
            [c / statistics.median(idle) for c in crowded],
            "x",
        ),
    ]


async def turn_us(waiting: int, turns: int = 3_000) -> float:
    """CPU microseconds per turn: a call ends and its app's next call starts, while app A has
    `waiting` calls queued behind its share (2 running) and 6 other apps hold the other slots.
    Before the heaps (calendars/threads.py), each start walked every waiting call."""
    lanes = threads._Lanes()
    for _ in range(waiting + 2):
        lanes.enter("A")
    running = [lanes.enter(f"B{i}") for i in range(6)]
    started = time.process_time()
    for k in range(turns):
        lanes.end(running.pop(0))
        running.append(lanes.enter(f"B{k % 6}"))
    return (time.process_time() - started) / turns * 1e6


def _change(calendar_url: str) -> None:
    """Move 10 events by an hour and delete 10, as a calendar program would."""
    from caldav.davclient import DAVClient

    client = DAVClient(url=calendar_url, username=USER, password=PASSWORD, enable_rfc6764=False)
    calendar = client.calendar(url=calendar_url)
    for i in range(10):
        event = calendar.event_by_uid(f"single-{i}")
        vevent = event.icalendar_component
        vevent["DTSTART"].dt += timedelta(hours=1)
        vevent["DTEND"].dt += timedelta(hours=1)
        event.save()
        calendar.event_by_uid(f"single-{100 + i}").delete()


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
