"""Availability search, measured server-side (Server-Timing), against the naive way.

Scenarios (the targets of the availability issue, on PostgreSQL):
  one   - 1 resource, 31 days, 30-minute duration, 15-minute step, 2,000 existing bookings (< 20 ms)
  many  - 100 resources, 7 days, mode=any, 20 bookings each (< 150 ms)
  first - limit=1, the resource booked solid for 60 days: the first free slot is day 60 (< 50 ms)
Each is measured with 10,000 bookings in the table (the scenarios' own plus bookings on other
resources), then again after adding bookings on other resources until the table holds 1,000,000
(--quick: 100,000): growth should stay within 1.5x. The speed-up over naive is taken in both
phases; issue 15's figure is the first's, which a quick run and a full run measure alike (the
fill comes after it).

Baseline, on the same data, in the same run: the naive way (one query per day per resource, then
a loop over the day's candidate starts), as Easy!Appointments and LibreBooking do, measured in
this process with asyncpg (so it has no HTTP or auth overhead that ours has). Each of our
requests is followed at once by one naive run, and each ratio is taken within such a pair: on a
shared machine whose load moves from second to second, a pair sees the same moment. Both are
measured warm: each scenario runs 60 times before its pairs (PostgreSQL's kept plans, on every
connection of the pool) and the naive way once.

Each search is also measured in CPU (Linux, PostgreSQL on this machine): ours is the server's
processes' and its pool's PostgreSQL backends' run time over the request, the naive way's this
process's and its connection's backend's (schedstat, to the nanosecond). Wall times follow the
machine's load and its moment; CPU per search tells a slower run from a run that waited.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench.harness import (
    Figure,
    auth,
    cpu_ms,
    database,
    descendants,
    free_port,
    start,
    stop,
    wait_ready,
)
from bench.rows import BOOKING_HOLDS, BOOKINGS, insert_sql

DAY0 = datetime(2031, 3, 3, tzinfo=UTC)  # far enough ahead of now for notice rules not to matter
RUNS = 7
WARM_UP = 60


async def _timed(http: httpx.AsyncClient, url: str, params: dict[str, Any]) -> tuple[float, int]:
    r = await http.get(url, params=params, headers=auth())
    assert r.status_code == 200, r.text
    header = r.headers["server-timing"]
    return float(header.split("dur=")[1]), len(r.json()["data"])


def _booking_sql(times: dict[str, str], source: str | None = None) -> str:
    """Instant bookings of app $1 on resource $2 at `times`; the models fill the other columns."""
    return insert_sql(
        BOOKINGS,
        {
            "app_id": "$1",
            "graph": "'instant'",
            "status": "'confirmed'",
            "resource_id": "$2",
            "created_at": "now()",
            "updated_at": "now()",
            **times,
        },
        source,
    )


# The holds of resource $1's bookings that have none yet, exactly over their time.
_HOLDS_OF_NEW_BOOKINGS = insert_sql(
    BOOKING_HOLDS,
    {
        "booking_id": "b.id",
        "resource_id": "b.resource_id",
        "start_time": "b.start_time",
        "end_time": "b.end_time",
        "active": "true",
    },
    "FROM bookings b LEFT JOIN booking_holds h ON h.booking_id = b.id "
    "WHERE b.resource_id = $1 AND h.id IS NULL",
)


async def _bulk(
    conn: asyncpg.Connection, app_id: str, resource: str, spans: list[tuple[datetime, datetime]]
) -> None:
    await conn.executemany(
        _booking_sql({"start_time": "$3", "end_time": "$4"}),
        [(app_id, resource, s, e) for s, e in spans],
    )
    await conn.execute(_HOLDS_OF_NEW_BOOKINGS, resource)


async def _filler(
    conn: asyncpg.Connection, app_id: str, resource_ids: list[str], total: int
) -> None:
    """Bookings on other resources, spread over years, until the table holds `total`."""
    have = await conn.fetchval("SELECT count(*) FROM bookings")
    need = total - have
    if need <= 0:
        return
    per = need // len(resource_ids) + 1
    for rid in resource_ids:
        # hourly, after what the resource already has: a second fill does not overlap the first
        offset = await conn.fetchval("SELECT count(*) FROM bookings WHERE resource_id = $1", rid)
        await conn.execute(
            _booking_sql(
                {
                    "start_time": "$3::timestamptz + g * interval '1 hour'",
                    "end_time": "$3::timestamptz + g * interval '1 hour' + interval '30 minutes'",
                },
                "FROM generate_series($5::bigint, $5::bigint + $4 - 1) g",
            ),
            app_id,
            rid,
            DAY0 - timedelta(days=2 * 365),
            per,
            offset,
        )
        await conn.execute(_HOLDS_OF_NEW_BOOKINGS, rid)
    await conn.execute("ANALYZE")


async def _naive(
    conn: asyncpg.Connection,
    resources: list[str],
    start: datetime,
    days: int,
    duration: timedelta,
    step: timedelta,
    limit: int | None = None,
) -> int:
    """One query per day per resource, then check every candidate start against that day."""
    found = 0
    for day in range(days):
        lo = start + timedelta(days=day)
        for rid in resources:
            rows = await conn.fetch(
                "SELECT start_time, end_time FROM bookings WHERE resource_id = $1 AND status IN "
                "('confirmed', 'paid', 'tentative') AND start_time < $3 AND end_time > $2",
                rid,
                lo,
                lo + timedelta(days=1),
            )
            t = lo
            while t + duration <= lo + timedelta(days=1):
                if all(not (s < t + duration and t < e) for s, e in rows):
                    found += 1
                    if limit and found >= limit:
                        return found
                t += step
    return found


@dataclass
class Loaded:
    """The scenarios' resources and query parameters, loaded into a database."""

    app_id: str
    one: str
    many: list[str]
    first: str
    fillers: list[str]
    scenarios: dict[str, dict[str, Any]]


async def load(conn: asyncpg.Connection, http: httpx.AsyncClient, base: str) -> Loaded:
    """Resources through the API, their bookings with plain SQL; 10,000 bookings in all."""
    rng = random.Random(7)

    async def resource(name: str) -> str:
        r = await http.post(
            f"{base}/v1/resources", headers=auth(), json={"name": name, "timezone": "Europe/Oslo"}
        )
        return str(r.json()["resource_id"])

    one = await resource("one")
    quarter = timedelta(minutes=15)
    picks = rng.sample(range(31 * 96), 2000)
    app_id = str(await conn.fetchval("SELECT app_id FROM resources LIMIT 1"))
    await _bulk(conn, app_id, one, [(DAY0 + k * quarter, DAY0 + (k + 1) * quarter) for k in picks])
    many = [await resource(f"many{i}") for i in range(100)]
    for rid in many:
        spans = []
        for k in rng.sample(range(7 * 24), 20):
            s = DAY0 + timedelta(hours=k)
            spans.append((s, s + timedelta(minutes=45)))
        await _bulk(conn, app_id, rid, spans)
    first = await resource("first")
    hours = [(DAY0 + timedelta(hours=h), DAY0 + timedelta(hours=h + 1)) for h in range(60 * 24)]
    await _bulk(conn, app_id, first, hours)
    fillers = [await resource(f"filler{i}") for i in range(50)]
    await _filler(conn, app_id, fillers, 10_000)  # the small table: 10,000
    await conn.execute("ANALYZE")
    scenarios = {
        "one": {
            "resource_id": one,
            "start": DAY0.isoformat(),
            "end": (DAY0 + timedelta(days=31)).isoformat(),
            "duration": "PT30M",
            "step": "PT15M",
            "limit": 5000,
        },
        "many": {
            "resource_id": many,
            "start": DAY0.isoformat(),
            "end": (DAY0 + timedelta(days=7)).isoformat(),
            "duration": "PT30M",
            "mode": "any",
            "limit": 1000,
        },
        "first": {
            "resource_id": first,
            "start": DAY0.isoformat(),
            "end": (DAY0 + timedelta(days=90)).isoformat(),
            "duration": "PT1H",
            "limit": 1,
        },
    }
    return Loaded(app_id, one, many, first, fillers, scenarios)


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    if sqlite:
        raise SystemExit("the availability benchmark loads data with PostgreSQL SQL; drop --sqlite")
    total = 100_000 if quick else 1_000_000
    async with database(False) as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = start(["serve", "--no-worker", "--port", str(port)], url, cpu=0)
        try:
            await wait_ready(base, api)
            conn = await asyncpg.connect(url)
            async with httpx.AsyncClient(timeout=120) as http:
                loaded = await load(conn, http, base)
                small_rows = await conn.fetchval("SELECT count(*) FROM bookings")
                one, many, first = loaded.one, loaded.many, loaded.first
                scenarios = loaded.scenarios
                quarter = timedelta(minutes=15)
                results: dict[str, list[float]] = {}
                naive: dict[str, list[float]] = {}
                # CPU per search, ours (the server's processes, and the PostgreSQL backends of
                # its pool) and the naive way's (this process, and its connection's backend)
                cpu: dict[str, list[float]] = {}
                naive_pids = descendants(conn.get_server_pid())
                naive_args = {
                    "one": ([one], 31, timedelta(minutes=30), quarter, None),
                    "many": (many, 7, timedelta(minutes=30), quarter, None),
                    "first": ([first], 90, timedelta(hours=1), quarter, 1),
                }
                for phase in ("small", "large"):
                    if phase == "large":
                        await _filler(conn, loaded.app_id, loaded.fillers, total)
                    for name, params in scenarios.items():
                        # Warm up to the steady state of a server that has run for a while:
                        # PostgreSQL keeps a statement's plan only from its sixth execution on
                        # a connection, and the pool hands out its connections in turn (up
                        # to SLOTGRAPH_DB_POOL_SIZE, 10), so 6 x 10; the naive way's
                        # statements once too (asyncpg prepares each on first use).
                        for _ in range(WARM_UP):
                            await _timed(http, f"{base}/v1/availability", params)
                        await _naive(conn, naive_args[name][0], DAY0, *naive_args[name][1:])
                        server = descendants(api.pid)
                        pool = await conn.fetch(
                            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND pid <> pg_backend_pid()"
                        )
                        backends = [p for row in pool for p in descendants(row["pid"])]
                        results[f"{name}/{phase}"] = []
                        naive[f"{name}/{phase}"] = []
                        for key in ("server", "postgres", "naive"):
                            cpu[f"{name}/{phase}/{key}"] = []
                        for _ in range(RUNS):
                            s0, p0 = cpu_ms(server), cpu_ms(backends)
                            ours = (await _timed(http, f"{base}/v1/availability", params))[0]
                            s1, p1 = cpu_ms(server), cpu_ms(backends)
                            results[f"{name}/{phase}"].append(ours)
                            cpu[f"{name}/{phase}/server"].append(s1 - s0)
                            cpu[f"{name}/{phase}/postgres"].append(p1 - p0)
                            # right after ours: a pair sees the same moment of the machine
                            t0, c0 = time.perf_counter(), time.process_time()
                            n0 = cpu_ms(naive_pids)
                            await _naive(conn, naive_args[name][0], DAY0, *naive_args[name][1:])
                            naive[f"{name}/{phase}"].append((time.perf_counter() - t0) * 1000)
                            cpu[f"{name}/{phase}/naive"].append(
                                cpu_ms(naive_pids) - n0 + (time.process_time() - c0) * 1000
                            )
                rows = await conn.fetchval("SELECT count(*) FROM bookings")
            await conn.close()
        finally:
            stop(api)
    figures = []
    for name, target in (("one", 20), ("many", 150), ("first", 50)):
        small, large = results[f"{name}/small"], results[f"{name}/large"]
        figures += [
            Figure(
                f"{name}: server time with {small_rows:,} bookings, target < {target} ms",
                small,
                "ms",
            ),
            Figure(f"{name}: server time with {rows:,} bookings in the table", large, "ms"),
            Figure(
                f"{name}: growth (large / small)",
                [a / b for a, b in zip(large, small, strict=True)],
                "x",
            ),
            Figure(
                f"{name}: naive way, one query per day per resource", naive[f"{name}/small"], "ms"
            ),
            Figure(
                f"{name}: speed-up over naive",
                [n / s for n, s in zip(naive[f"{name}/small"], small, strict=True)],
                "x",
            ),
            Figure(
                f"{name}: speed-up over naive with {rows:,} bookings in the table",
                [n / s for n, s in zip(naive[f"{name}/large"], large, strict=True)],
                "x",
            ),
        ]
        figures += _cpu_figures(name, cpu, small_rows, rows)
    return figures


def _cpu_figures(
    name: str, cpu: dict[str, list[float]], small_rows: int, rows: int
) -> list[Figure]:
    """The same searches in CPU (Linux, PostgreSQL on this machine; none elsewhere): ours is the
    server's and its PostgreSQL backends', the naive way's this process's and its backend's."""
    if not any(cpu[f"{name}/small/server"]) or not any(cpu[f"{name}/small/postgres"]):
        return []
    figures = []
    for phase, count in (("small", small_rows), ("large", rows)):
        server, postgres = cpu[f"{name}/{phase}/server"], cpu[f"{name}/{phase}/postgres"]
        figures += [
            Figure(f"{name}: CPU per search with {count:,} bookings, server", server, "ms"),
            Figure(f"{name}: CPU per search with {count:,} bookings, PostgreSQL", postgres, "ms"),
        ]
    ours = [
        a + b
        for a, b in zip(cpu[f"{name}/small/server"], cpu[f"{name}/small/postgres"], strict=True)
    ]
    naive = cpu[f"{name}/small/naive"]
    return [
        *figures,
        Figure(f"{name}: naive way's CPU (this process and PostgreSQL)", naive, "ms"),
        Figure(
            f"{name}: speed-up over naive in CPU",
            [n / o for n, o in zip(naive, ours, strict=True)],
            "x",
        ),
    ]
