"""Creating bookings: throughput and latency against the server's own floor, contention, growth,
and memory.

- Load: `wrk` (Debian package) with a Lua script, 2 threads, 16 connections, pinned to one core;
  the server (PostgreSQL, 2 uvicorn workers, no in-process worker) to the other where possible.
- Floor: `GET /v1/ping` on the same server, which authenticates and runs one `SELECT 1`.
- Contention: 200 simultaneous requests for one slot; the time until all are answered.
- Growth: the create p99 from a table of 10,000 bookings, then after filling it to 1,000,000
  (--quick: 100,000); the runs themselves add bookings, and the table says how many.
- Memory: the peak RSS (VmHWM) of each server process after run 1 and after run 4.
- CPU per request (PostgreSQL): of the server's processes and of the database's backends, from
  /proc around each wrk run (harness.cpu_ms, to the nanosecond), divided by the requests wrk
  made; what the ratio is made of, which the machine's load moves less than req/s.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from bench.availability import _filler
from bench.harness import (
    SECRET,
    Figure,
    auth,
    col,
    cpu_ms,
    database,
    free_port,
    start,
    stop,
    wait_ready,
)

HERE = Path(__file__).parent


def _wrk(url: str, script: str, seconds: int, env: dict[str, str]) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "10s", "-s", str(HERE / script), url]
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", "1", *cmd]
    done = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    made = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"p50_ms ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"p99_ms ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} failed requests:\n{out}\n{done.stderr}")
    return {"rps": rps, "p50": p50, "p99": p99, "requests": made}


async def _measured(
    conn: asyncpg.Connection | None,
    master: subprocess.Popen[bytes],
    script: str,
    seconds: int,
    env: dict[str, str],
) -> dict[str, float]:
    """A wrk run, and the CPU per request of the server's processes and (PostgreSQL) of the
    database's backends but this connection's, in microseconds. Backends that the pool opened
    or closed during the run are counted by what they used while both snapshots saw them."""

    async def backends() -> list[int]:
        if conn is None:
            return []
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in rows]

    server = [master.pid, *_children(master.pid)]
    database = await backends()
    before = {pid: cpu_ms([pid]) for pid in server + database}
    figures = _wrk(f"http://127.0.0.1:{env['SG_PORT']}", script, seconds, env)
    after = {pid: cpu_ms([pid]) for pid in server + await backends()}
    used = {pid: after[pid] - before[pid] for pid in after if pid in before}
    n = figures["requests"]
    figures["server_us"] = sum(used.get(pid, 0.0) for pid in server) / n * 1e3
    figures["database_us"] = sum(v for pid, v in used.items() if pid not in server) / n * 1e3
    return figures


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout.split()
    return [int(child) for child in out]


def _peak_rss_mb(master: subprocess.Popen[bytes]) -> list[float]:
    """VmHWM of the server's worker processes (children of the uvicorn master)."""
    peaks = []
    for pid in [master.pid, *_children(master.pid)]:
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            m = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
            if m:
                peaks.append(int(m.group(1)) / 1024)
    return peaks


async def _contention(base: str, resource: str, client: str, n: int) -> tuple[float, Counter[int]]:
    """200 simultaneous requests for one slot, each on a new connection.

    A fresh client per round: reusing keep-alive connections left idle for about uvicorn's 5 s
    keep-alive timeout races the server closing them (a ReadError, not a server fault).
    """
    at = f"2049-06-0{1 + n % 9}T10:00:00Z"
    body = {
        "resource_id": resource,
        "client_id": client,
        "start_time": at,
        "end_time": at.replace("10:00", "11:00"),
    }
    limits = httpx.Limits(max_connections=256)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        answers = await asyncio.gather(
            *(http.post(f"{base}/v1/bookings", json=body, headers=auth()) for _ in range(200))
        )
        return (time.perf_counter() - t0) * 1000, Counter(r.status_code for r in answers)


async def _resources(http: httpx.AsyncClient, base: str, prefix: str, n: int) -> list[str]:
    out = []
    for i in range(n):
        r = await http.post(
            f"{base}/v1/resources", headers=auth(), json={"name": f"{prefix}{i}", "timezone": "UTC"}
        )
        out.append(str(r.json()["resource_id"]))
    return out


async def run(*, sqlite: bool, quick: bool) -> list[Figure]:
    seconds = 2 if quick else 10
    runs = 5
    total = 100_000 if quick else 1_000_000
    floor: list[dict[str, float]] = []
    create: list[dict[str, float]] = []
    create_large: list[dict[str, float]] = []
    contention: list[float] = []
    rows: dict[str, int] = {}
    async with database(sqlite) as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        workers = "1" if sqlite else "2"
        api = start(["serve", "--no-worker", "--port", str(port), "--workers", workers], url, cpu=0)
        conn = None if sqlite else await asyncpg.connect(url)
        try:
            await wait_ready(base, api)
            limits = httpx.Limits(max_connections=256)
            async with httpx.AsyncClient(timeout=120, limits=limits) as http:
                resources = await _resources(http, base, "R", 16)
                client = (
                    await http.post(f"{base}/v1/clients", headers=auth(), json={"name": "Bench"})
                ).json()["client_id"]
                env = {
                    "SG_KEY": SECRET,
                    "SG_RESOURCES": ",".join(resources),
                    "SG_CLIENT": client,
                    "SG_PORT": str(port),
                }
                if conn is not None:  # growth: start from 10,000 bookings (on other resources)
                    app_id = str(await conn.fetchval("SELECT app_id FROM resources LIMIT 1"))
                    fillers = await _resources(http, base, "F", 50)
                    await _filler(conn, app_id, fillers, 10_000)
                    rows["small_start"] = await conn.fetchval("SELECT count(*) FROM bookings")
                for i in range(runs):
                    floor.append(await _measured(conn, api, "ping.lua", seconds, env))
                    create.append(
                        await _measured(conn, api, "create.lua", seconds, {**env, "SG_RUN": str(i)})
                    )
                    elapsed, statuses = await _contention(base, resources[0], client, i)
                    assert statuses == {201: 1, 409: 199}, statuses
                    contention.append(elapsed)
                rss_first = _peak_rss_mb(api)
                if conn is not None:
                    rows["small_end"] = await conn.fetchval("SELECT count(*) FROM bookings")
                    await _filler(conn, app_id, fillers, total)
                    rows["large_start"] = await conn.fetchval("SELECT count(*) FROM bookings")
                    for i in range(runs):
                        create_large.append(
                            _wrk(base, "create.lua", seconds, {**env, "SG_RUN": str(runs + i)})
                        )
                    rows["large_end"] = await conn.fetchval("SELECT count(*) FROM bookings")
            rss_last = _peak_rss_mb(api)
        finally:
            if conn is not None:
                await conn.close()
            stop(api)

    figures = [
        Figure("floor: GET /v1/ping (auth + SELECT 1), 16 connections", col(floor, "rps"), "req/s"),
        Figure("create booking, 16 connections", col(create, "rps"), "req/s"),
        Figure(
            "ratio create / floor (target >= 0.5)",
            [c / f for c, f in zip(col(create, "rps"), col(floor, "rps"), strict=True)],
            "x",
        ),
        Figure("server CPU per ping (both workers and the master)", col(floor, "server_us"), "us"),
        Figure("server CPU per create", col(create, "server_us"), "us"),
        Figure(
            "server CPU ping / create",
            [f / c for f, c in zip(col(floor, "server_us"), col(create, "server_us"), strict=True)],
            "x",
        ),
        Figure("create p50", col(create, "p50"), "ms"),
        Figure("create p99", col(create, "p99"), "ms"),
        Figure(
            "create p99 / p50 (target on SQLite <= 10)",
            [a / b for a, b in zip(col(create, "p99"), col(create, "p50"), strict=True)],
            "x",
        ),
        Figure("floor p99", col(floor, "p99"), "ms"),
        Figure("200 requests for one slot: all answered (exactly one 201)", contention, "ms"),
    ]
    if not sqlite:
        figures += [
            Figure("PostgreSQL backends' CPU per ping", col(floor, "database_us"), "us"),
            Figure("PostgreSQL backends' CPU per create", col(create, "database_us"), "us"),
            Figure(
                "server + PostgreSQL CPU ping / create",
                [
                    (f["server_us"] + f["database_us"]) / (c["server_us"] + c["database_us"])
                    for f, c in zip(floor, create, strict=True)
                ],
                "x",
            ),
        ]
    if create_large:
        figures += [
            Figure(
                f"create p99, table growing {rows['small_start']:,} -> {rows['small_end']:,}"
                " (the runs above)",
                col(create, "p99"),
                "ms",
            ),
            Figure(
                f"create p99, table growing {rows['large_start']:,} -> {rows['large_end']:,}",
                col(create_large, "p99"),
                "ms",
            ),
            Figure(
                "growth of create p99 (target <= 1.5)",
                [a / b for a, b in zip(col(create_large, "p99"), col(create, "p99"), strict=True)],
                "x",
            ),
            Figure(
                "create throughput with the large table",
                col(create_large, "rps"),
                "req/s",
            ),
        ]
    figures += [
        Figure("peak RSS per server process after run 1 (master, workers)", rss_first, "MB"),
        Figure("peak RSS per server process after run 4 (master, workers)", rss_last, "MB"),
    ]
    return figures
