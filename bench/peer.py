"""A real peer, side by side: django-appointment against slotgraph, on the same data, in one run.

`python -m bench peer` installs django-appointment (pinned below) into its own virtual environment
(bench/.peer-venv, git-ignored; none of its code is in this repository) and runs it in a subprocess
(bench/peer_django.py, Django on a SQLite file), while slotgraph runs as the real `slotgraph serve`
on SQLite too. Both get the same data: staff members (our resources, Europe/Oslo) open 00:00-23:59
every day, a 15-minute grid and 30-minute slots, and the same appointments (our bookings):
  one200  - 1 staff x 31 days, 200 appointments of 15 minutes at random quarter-hours
  one2000 - the same with 2,000 appointments
  many    - 100 staff x 7 days, 20 appointments of 45 minutes each at random hours, `mode=any`
The window avoids a DST change (the peer keeps naive local times) and no appointment crosses
midnight (the peer keeps a date and two times of day). Its slot function answers one staff member
on one date, so a search is one call per staff member per date; its starts are combined as our
`mode=any` answer is (each start with the staff free then) inside the timed loop.

Timed in the same run, alternating, RUNS times: our server time (`Server-Timing`, inside the
server, no network), the peer's slot function in-process (`get_available_slots_for_staff`), and
its AJAX view (`ajax/available_slots/`, through Django's test client: the whole request handling
in-process, no network). Booking: our `POST /v1/bookings` (server time) against the peer's two
booking views (request form, then client information) as a signed-in client. Both counts of free
slots are compared, and each side is asked to book a time that overlaps a booking it has.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.harness import Figure, auth, one_server

PEER = "django-appointment==3.12.0"
PEER_PINS = [PEER, "Django==5.2.19", "phonenumbers==9.0.43", "pillow==12.3.0"]
VENV = Path(__file__).parent / ".peer-venv"
WORKER = Path(__file__).parent / "peer_django.py"
ZONE = ZoneInfo("Europe/Oslo")
FIRST_DAY = date(2031, 1, 6)  # a Monday, weeks away from a DST change
HOURS = ("00:00", "23:59")
RUNS = 5
BOOKINGS_PER_RUN = 10
CLIENT = " client"  # the key of our client's id among the resources' ids


def _python() -> Path:
    """The peer's interpreter, installing the pinned peer on first use."""
    python = VENV / "bin" / "python"
    marker = VENV / "installed.txt"
    if not python.exists() or not marker.exists() or marker.read_text() != "\n".join(PEER_PINS):
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PINS], check=True)
        marker.write_text("\n".join(PEER_PINS))
    return python


class Peer:
    """The subprocess: one JSON command per line, one JSON answer per line."""

    def __init__(self, work: str) -> None:
        cmd = [str(_python()), str(WORKER), work]
        if hasattr(os, "sched_setaffinity"):
            cmd = ["taskset", "-c", "0", *cmd]  # the core our server is pinned to
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.version = self._read()["ready"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"peer: {answer['error']}")
        return answer

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(cmd) + "\n")
        return self._read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def _local(day: date, at: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(at), ZONE)


def _data(rng: random.Random) -> dict[str, list[tuple[str, str, str]]]:
    """Appointments per staff member: (local date, start, end), the same for both sides."""

    def quarters(n: int) -> list[tuple[str, str, str]]:
        # not the day's last quarter-hour: the peer cannot store one that ends at midnight
        picks = rng.sample([k for k in range(31 * 96) if k % 96 != 95], n)
        return [_span(k // 96, (k % 96) * 15, 15) for k in picks]

    staff = {"one200": quarters(200), "one2000": quarters(2000), "book": []}
    for i in range(100):
        staff[f"many{i}"] = [_span(h // 24, (h % 24) * 60, 45) for h in rng.sample(range(168), 20)]
    return staff


def _span(day: int, minute: int, length: int) -> tuple[str, str, str]:
    start = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time())
    start += timedelta(minutes=minute)
    end = start + timedelta(minutes=length)
    return start.date().isoformat(), start.strftime("%H:%M"), end.strftime("%H:%M")


async def _load_ours(
    http: httpx.AsyncClient, base: str, staff: dict[str, list[tuple[str, str, str]]]
) -> dict[str, str]:
    hours = {d: [list(HOURS)] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    ids = {}
    for name in staff:
        r = await http.post(
            f"{base}/v1/resources",
            headers=auth(),
            json={"name": name, "timezone": "Europe/Oslo", "weekly_hours": hours},
        )
        assert r.status_code == 201, r.text
        ids[name] = str(r.json()["resource_id"])
    r = await http.post(
        f"{base}/v1/clients", headers=auth(), json={"name": "Bench", "email": "b@example.com"}
    )
    ids[CLIENT] = str(r.json()["client_id"])
    gate = asyncio.Semaphore(8)

    async def book(name: str, day: str, s: str, e: str) -> None:
        async with gate:
            d = date.fromisoformat(day)
            body = {
                "resource_id": ids[name],
                "client_id": ids[CLIENT],
                "start_time": _local(d, s).isoformat(),
                "end_time": _local(d, e).isoformat(),
            }
            r = await http.post(f"{base}/v1/bookings", headers=auth(), json=body)
            assert r.status_code == 201, r.text

    await asyncio.gather(*(book(n, *span) for n, spans in staff.items() for span in spans))
    return ids


def _scenarios() -> dict[str, tuple[list[str], int]]:
    """name -> (staff, days)"""
    return {
        "one200": (["one200"], 31),
        "one2000": (["one2000"], 31),
        "many": ([f"many{i}" for i in range(100)], 7),
    }


async def _ours(
    http: httpx.AsyncClient, base: str, ids: dict[str, str], staff: list[str], days: int
) -> tuple[float, int, int]:
    begin = _local(FIRST_DAY, "00:00")
    params: dict[str, Any] = {
        "resource_id": [ids[s] for s in staff],
        "start": begin.isoformat(),
        "end": _local(FIRST_DAY + timedelta(days=days), "00:00").isoformat(),
        "duration": "PT30M",
        "step": "PT15M",
        "mode": "any",
        "limit": 5000 if len(staff) == 1 else 1000,
    }
    r = await http.get(f"{base}/v1/availability", params=params, headers=auth())
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    ms = float(r.headers["server-timing"].split("dur=")[1])
    return ms, len(data), sum(len(s["resource_ids"]) for s in data)


async def _book_ours(
    http: httpx.AsyncClient, base: str, ids: dict[str, str], day: date, s: str, e: str
) -> tuple[float, int]:
    body = {
        "resource_id": ids["book"],
        "client_id": ids[CLIENT],
        "start_time": _local(day, s).isoformat(),
        "end_time": _local(day, e).isoformat(),
    }
    r = await http.post(f"{base}/v1/bookings", headers=auth(), json=body)
    return float(r.headers["server-timing"].split("dur=")[1]), r.status_code


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    del sqlite  # both sides run on SQLite here, always
    runs = 2 if quick else RUNS
    staff = _data(random.Random(15))
    results: dict[str, list[float]] = {}
    checks: dict[str, tuple[int, int]] = {}

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory() as work:
        peer = Peer(work)
        try:
            loaded = peer.ask(op="load", staff=staff, hours=list(HOURS), step=15, duration=30)
            print(
                f"peer: django-appointment on Django {peer.version}, {loaded['appointments']:,}"
                " appointments",
                file=sys.stderr,
            )
            async with one_server(True) as (base, _), httpx.AsyncClient(timeout=120) as http:
                ids = await _load_ours(http, base, staff)
                await _compare(http, base, peer, ids, runs, add, checks)
                overlap = await _overlap(http, base, peer, ids)
        finally:
            peer.close()
    for name, (ours_n, peer_n) in checks.items():
        print(f"{name}: slots ours / peer (pairs): {ours_n} / {peer_n}", file=sys.stderr)
    print(overlap, file=sys.stderr)
    figures = [Figure(k, v, "x" if k.endswith("(x)") else "ms") for k, v in results.items()]
    return figures


async def _compare(
    http: httpx.AsyncClient,
    base: str,
    peer: Peer,
    ids: dict[str, str],
    runs: int,
    add: Any,
    checks: dict[str, tuple[int, int]],
) -> None:
    scenarios = _scenarios()
    booked = 0
    for run_no in range(runs + 1):  # the first round warms both up and is not counted
        for name, (staff, days) in scenarios.items():
            dates = [(FIRST_DAY + timedelta(days=d)).isoformat() for d in range(days)]
            ours, slots, pairs = await _ours(http, base, ids, staff, days)
            fn = peer.ask(op="slots", staff=staff, dates=dates, via="function")
            view = peer.ask(op="slots", staff=staff, dates=dates, via="view")
            checks[name] = (pairs, int(fn["pairs"]))
            if slots != fn["slots"] or pairs != fn["pairs"] or fn["pairs"] != view["pairs"]:
                print(
                    f"{name}: the answers differ: ours {slots}/{pairs}, peer function "
                    f"{fn['slots']}/{fn['pairs']}, view {view['slots']}/{view['pairs']}",
                    file=sys.stderr,
                )
            if run_no == 0:
                continue
            add(f"{name}: slotgraph, server time", ours)
            add(f"{name}: peer, its slot function (one call per staff per date)", fn["ms"])
            add(f"{name}: peer, its AJAX view (one request per staff per date)", view["ms"])
            add(f"{name}: peer function / slotgraph (x)", fn["ms"] / ours)
            add(f"{name}: peer view / slotgraph (x)", view["ms"] / ours)
        ours_ms, peer_ms = [], []
        for _ in range(BOOKINGS_PER_RUN):  # fresh, free half-hours on the staff member "book"
            day = FIRST_DAY + timedelta(days=booked // 40)
            minute = (booked % 40) * 30
            s = f"{minute // 60:02d}:{minute % 60:02d}"
            e = f"{(minute + 30) // 60:02d}:{(minute + 30) % 60:02d}"
            booked += 1
            ms, status = await _book_ours(http, base, ids, day, s, e)
            assert status == 201, status
            got = peer.ask(op="book", staff="book", date=day.isoformat(), start=s, end=e)
            assert got["created"] == 1, got
            ours_ms.append(ms)
            peer_ms.append(got["ms"])
        if run_no == 0:
            continue
        ours_b, peer_b = statistics.median(ours_ms), statistics.median(peer_ms)
        add("book: slotgraph POST /v1/bookings, server time (median of 10)", ours_b)
        add("book: peer, request form + client form views (median of 10)", peer_b)
        add("book: peer / slotgraph (x)", peer_b / ours_b)


async def _overlap(http: httpx.AsyncClient, base: str, peer: Peer, ids: dict[str, str]) -> str:
    """Each side books 10:00-10:30 on a free day, then 10:15-10:45 on the same staff member."""
    day = FIRST_DAY + timedelta(days=30)
    lines = []
    _, first = await _book_ours(http, base, ids, day, "10:00", "10:30")
    _, second = await _book_ours(http, base, ids, day, "10:15", "10:45")
    lines.append(f"overlap, slotgraph: 10:00-10:30 -> {first}, then 10:15-10:45 -> {second}")
    a = peer.ask(op="book", staff="book", date=day.isoformat(), start="10:00", end="10:30")
    b = peer.ask(op="book", staff="book", date=day.isoformat(), start="10:15", end="10:45")
    lines.append(
        f"overlap, peer: 10:00-10:30 -> created {a['created']} ({a['status']}), then "
        f"10:15-10:45 -> created {b['created']} ({b['status']}); appointments overlapping "
        f"10:15-10:45 now: {b['overlapping_now']}"
    )
    return "\n".join(lines)
