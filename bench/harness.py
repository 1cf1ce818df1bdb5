"""Shared pieces: a fresh database, real server/worker processes, statistics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

SECRET = "sk_bench_secret"
ADMIN_URL = os.environ.get(
    "SLOTGRAPH_BENCH_POSTGRES_URL",
    os.environ.get("SLOTGRAPH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)


@dataclass
class Figure:
    name: str
    values: list[float]
    unit: str

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def row(self) -> str:
        f = "{:,.2f}" if self.unit == "x" else "{:,.1f}"  # ratios need the second digit
        return (
            f"| {self.name} | {f.format(self.median)} | {f.format(min(self.values))} | "
            f"{f.format(max(self.values))} | {self.unit} |"
        )


def col(rows: list[dict[str, float]], key: str) -> list[float]:
    """One figure's values across the runs."""
    return [r[key] for r in rows]


def table(figures: list[Figure]) -> str:
    head = "| figure | median | min | max | unit |\n| --- | --- | --- | --- | --- |"
    return "\n".join([head, *(f.row() for f in figures)])


@asynccontextmanager
async def database(sqlite: bool) -> AsyncIterator[str]:
    if sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    name = f"slotgraph_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(ADMIN_URL)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(ADMIN_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def descendants(pid: int) -> list[int]:
    """`pid` and the processes under it (Linux /proc; none elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found if Path(f"/proc/{pid}").exists() else []


def cpu_ms(pids: Iterable[int]) -> float:
    """CPU time so far of the processes' threads in ms, to the nanosecond (schedstat, Linux):
    fine enough for one request's CPU, which the machine's load stretches less than its wall
    time (`/proc/<pid>/stat` counts in ticks of 10 ms)."""
    ns = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                ns += int(task.read_text().split()[0])
            except (OSError, ValueError):
                continue
    return ns / 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(database_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "SLOTGRAPH_DATABASE_URL": database_url,
        "SLOTGRAPH_BOOTSTRAP_SECRET_KEY": SECRET,
        "SLOTGRAPH_LOG_LEVEL": "warning",
        "SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "SLOTGRAPH_MAX_APP_RATE_LIMIT": "1000000",  # the limits are lifted below (`most`)
        **extra,
    }


def start(
    args: list[str], database_url: str, extra: dict[str, str] | None = None, cpu: int | None = None
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "slotgraph.cli", *args]
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    return subprocess.Popen(
        cmd, env=_env(database_url, extra or {}), stdout=subprocess.DEVNULL, stderr=sys.stderr
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Ready, and the bench app's rate limits at their maximum: a benchmark measures the server,
    not the limiter's refusals (6,000 a minute by default; a create load sends that in seconds).

    Readiness is polled on /healthz, which reads no key: the one PUT below is then the first
    request with the key, so no server process holds the old limits in its 30-second key cache.
    """
    async with httpx.AsyncClient() as http:
        for _ in range(3000):  # up to 5 minutes: a loaded machine starts two workers slowly
            if process.poll() is not None:
                raise RuntimeError("server exited")
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("server not ready")
        most = {"public_per_minute": 1_000_000, "secret_per_minute": 1_000_000}
        r = await http.put(f"{url}/v1/app", headers=auth(), json={"rate_limits": most})
        r.raise_for_status()


@asynccontextmanager
async def one_server(sqlite: bool) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """A fresh database and one server process on it (`--no-worker --workers 1`, pinned to core
    0), ready: its base URL and its process. For latency, one request at a time."""
    async with database(sqlite) as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = start(["serve", "--no-worker", "--port", str(port), "--workers", "1"], url, cpu=0)
        try:
            await wait_ready(base, api)
            yield base, api
        finally:
            stop(api)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRET}"}


def now() -> float:
    return time.perf_counter()
