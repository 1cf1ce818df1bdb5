"""A booking page's render beside the availability API for the same query (issue 12).

One server process (`--no-worker --workers 1`, pinned to core 0), one request at a time
(latency, not throughput). A pool of 10 resources in Europe/Oslo, open weekdays 09:00-17:00,
with 20 bookings each over the next 4 weeks; a page (POST /v1/pages) over the pool, mode any,
30 minutes. A page shows one week (Monday to Sunday in the visitor's zone). Each round runs:
  first   - GET /book/{slug}: a visitor's first request (no cookie, the zone named so no script
            is needed): this week, or the first of the next 4 with a free time
  week    - GET /book/{slug}?week=...: each of the 4 weeks in turn
  api     - GET /v1/availability for that same week: 10 resources, PT30M, mode any
  api 4w  - GET /v1/availability for the 4 weeks in one query
All are timed server-side (the `Server-Timing: app;dur=` header: time in the app, no network)
and from the client. The figures that matter: the first render's server time (target
<= 50 ms), and the ratio page / API for the same week, per round: what the HTML costs on top of
the search.
"""

from __future__ import annotations

import statistics
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.harness import Figure, auth, cpu_ms, now, one_server

RESOURCES = 10
WEEKS = 4
TARGET_MS = 50
OSLO = ZoneInfo("Europe/Oslo")
HOURS = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


async def _timed(http: httpx.AsyncClient, url: str, **kw: Any) -> tuple[float, float]:
    """Server time and client time, in ms."""
    t = now()
    r = await http.get(url, **kw)
    took = (now() - t) * 1000
    assert r.status_code == 200, r.text[:500]
    return float(r.headers["server-timing"].split("dur=")[1]), took


def mondays() -> list[date]:
    """The Mondays of the next 4 weeks in Oslo (from next week: whole weeks, none passed)."""
    today = datetime.now(OSLO).date()
    first = today - timedelta(days=today.weekday()) + timedelta(weeks=1)
    return [first + timedelta(weeks=k) for k in range(WEEKS)]


def midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=OSLO).isoformat()


async def load(http: httpx.AsyncClient, base: str) -> tuple[str, list[str]]:
    """10 resources with their hours and 20 bookings each, and the page over them."""
    ids = []
    for i in range(RESOURCES):
        r = await http.post(
            f"{base}/v1/resources",
            headers=auth(),
            json={"name": f"Room {i + 1}", "timezone": "Europe/Oslo"},
        )
        rid = r.json()["resource_id"]
        r = await http.put(
            f"{base}/v1/resources/{rid}/availability",
            headers=auth(),
            json={"weekly_hours": HOURS},
        )
        assert r.status_code == 200, r.text
        ids.append(rid)
    weekdays = [m + timedelta(days=d) for m in mondays() for d in range(5)]  # 20 weekdays
    for i, rid in enumerate(ids):
        for k, day in enumerate(weekdays):  # one a weekday, at an hour that moves with i and k
            at = datetime(day.year, day.month, day.day, 9 + (i + k) % 8, tzinfo=OSLO)
            r = await http.post(
                f"{base}/v1/bookings",
                headers=auth(),
                json={
                    "resource_id": rid,
                    "start_time": at.isoformat(),
                    "end_time": (at + timedelta(minutes=30)).isoformat(),
                    "customer": {"name": "Bench", "email": f"b{i}-{k}@example.com"},
                },
            )
            assert r.status_code == 201, r.text
    r = await http.post(
        f"{base}/v1/pages",
        headers=auth(),
        json={
            "slug": "bench-pool",
            "title": "Rooms",
            "resource_ids": ids,
            "mode": "any",
            "durations": ["PT30M"],
            "graph": "instant",
            "timezone": "Europe/Oslo",
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["url"]), ids


def _query(ids: list[str], first: date, days: int) -> dict[str, Any]:
    return {
        "resource_id": ids,
        "start": midnight(first),
        "end": midnight(first + timedelta(days=days)),
        "duration": "PT30M",
        "mode": "any",
        "timezone": "Europe/Oslo",
        "limit": 5000,
    }


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    rounds, per_round = (3, 4) if quick else (7, 12)
    keys = ("first", "week", "api", "api4", "first_wall", "week_wall", "api_wall")
    series: dict[str, list[float]] = {k: [] for k in (*keys, "cpu_page", "cpu_api")}
    async with one_server(sqlite) as (base, api), httpx.AsyncClient(timeout=120) as http:
        path, ids = await load(http, base)
        page = base + path
        weeks = mondays()
        search = f"{base}/v1/availability"
        four = _query(ids, weeks[0], 7 * WEEKS)
        oslo = {"tz": "Europe/Oslo"}

        async def one_round(rows: dict[str, list[float]], k: int) -> None:
            async with httpx.AsyncClient(timeout=120) as visitor:  # no cookie yet
                server, wall = await _timed(visitor, page, params={"tz": "Europe/Oslo"})
            rows["first"].append(server)
            rows["first_wall"].append(wall)
            monday = weeks[k % WEEKS]
            params = {"tz": "Europe/Oslo", "week": monday.isoformat()}
            async with httpx.AsyncClient(timeout=120) as visitor:
                server, wall = await _timed(visitor, page, params=params)
            rows["week"].append(server)
            rows["week_wall"].append(wall)
            query = _query(ids, monday, 7)
            server, wall = await _timed(http, search, params=query, headers=auth())
            rows["api"].append(server)
            rows["api_wall"].append(wall)
            rows["api4"].append((await _timed(http, search, params=four, headers=auth()))[0])

        await one_round({k: [] for k in keys}, 0)  # warm up: templates, caches
        for _ in range(rounds):
            rows: dict[str, list[float]] = {k: [] for k in keys}
            for k in range(per_round):
                await one_round(rows, k)
            for key, values in rows.items():
                series[key].append(statistics.median(values))
            # CPU the server spent per request (robust to a busy machine's waits)
            for key, url, kw in (
                ("cpu_page", page, {"params": {**oslo, "week": weeks[1].isoformat()}}),
                (
                    "cpu_api",
                    search,
                    {"params": _query(ids, weeks[1], 7), "headers": auth()},
                ),
            ):
                before = cpu_ms([api.pid])
                for _ in range(per_round * 2):
                    await _timed(http, url, **kw)
                series[key].append((cpu_ms([api.pid]) - before) / (per_round * 2))
    ratio = [p / a for p, a in zip(series["week"], series["api"], strict=True)]
    return [
        Figure(
            f"page first render ({RESOURCES} resources, a week of the next {WEEKS}), server "
            f"time, target <= {TARGET_MS} ms",
            series["first"],
            "ms",
        ),
        Figure(f"page, each of the {WEEKS} weeks (?week=), server time", series["week"], "ms"),
        Figure("availability API, the same week, server time", series["api"], "ms"),
        Figure("ratio page / API, same week (server time)", ratio, "x"),
        Figure(
            f"availability API, all {WEEKS} weeks in one query, server time", series["api4"], "ms"
        ),
        Figure("page, a week: server CPU per render", series["cpu_page"], "ms"),
        Figure("availability API, the same week: server CPU per query", series["cpu_api"], "ms"),
        Figure(
            "ratio page / API, server CPU",
            [p / a for p, a in zip(series["cpu_page"], series["cpu_api"], strict=True)],
            "x",
        ),
        Figure(
            "page first render, client time (new connection, loopback)", series["first_wall"], "ms"
        ),
        Figure("page, a given week, client time (new connection)", series["week_wall"], "ms"),
        Figure(
            "availability API, the same week, client time (kept connection)",
            series["api_wall"],
            "ms",
        ),
    ]
