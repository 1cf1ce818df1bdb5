"""System tests: real `slotgraph serve` processes on a fresh database per test."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, create_postgres_database, drop_postgres_database

SECRET = "sk_system_test_secret"


@dataclass
class Server:
    url: str
    database_url: str
    backend: str
    process: subprocess.Popen[bytes]
    log: Path

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {SECRET}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_on_postgresql(backend: str) -> int:
    """The server processes of a test that relies on two (`serve --workers 2`): two on
    PostgreSQL, as production scales out; SQLite's `serve` runs one."""
    return 2 if backend == "postgresql" else 1


async def start_server(
    database_url: str,
    backend: str,
    log: Path,
    *args: str,
    env: dict[str, str] | None = None,
    workers: int = 1,
) -> Server:
    """A `slotgraph serve` on a free port, once /healthz answers. One process unless the test
    relies on two (`workers=two_on_postgresql(backend)`, or the `two_processes` marker for the
    fixtures below): a second uvicorn child imports the whole app again, 2.5-3 s of CPU a start
    that a test of one process's behaviour does not use (docs/testing.md)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "slotgraph.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        *args,
    ]
    process_env = {
        **os.environ,
        "SLOTGRAPH_DATABASE_URL": database_url,
        "SLOTGRAPH_BOOTSTRAP_SECRET_KEY": SECRET,
        "SLOTGRAPH_LOG_LEVEL": "warning",
        **(env or {}),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, env=process_env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", database_url, backend, process, log)
    async with httpx.AsyncClient() as http:
        for _ in range(900):  # readiness: up to 90 s (workers start slowly on a busy machine)
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log.read_text()}")
            try:
                r = await http.get(f"{server.url}/healthz")
                if r.status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"server did not become ready:\n{log.read_text()}")


def start_worker(database_url: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A `slotgraph worker` process on `database_url`, with `env` over this process's variables."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "slotgraph.cli", "worker"],
            env={**os.environ, **env, "SLOTGRAPH_DATABASE_URL": database_url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


# A worker's log as the bad-days tests read it: its info lines, as text (worker_said).
WORKER_SAYS = {"SLOTGRAPH_LOG_LEVEL": "info", "SLOTGRAPH_LOG_FORMAT": "text"}


async def migrated_postgres_database(tmp_path: Path) -> str:
    """A new PostgreSQL database, migrated by a `serve --no-worker` that then stops: for a test
    that watches a `slotgraph worker` alone."""
    url = await create_postgres_database("slotgraph_baddays")
    try:
        stop_server(await start_server(url, "postgresql", tmp_path / "server.log", "--no-worker"))
    except BaseException:
        await drop_postgres_database(url)
        raise
    return url


async def start_worker_said_started(
    database_url: str, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """`start_worker`, once its log says it started (up to 90 s: a hang guard, not a speed)."""
    worker = start_worker(database_url, log, env)
    deadline = time.monotonic() + 90
    while "started" not in log.read_text():
        assert worker.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.1)
    return worker


def worker_said(log: Path, line: str) -> int:
    """How many of a worker's own log lines (logger `slotgraph.worker`) in `log` say `line`."""
    return sum(
        line in entry for entry in log.read_text().splitlines() if "slotgraph.worker" in entry
    )


async def subscribe(http: httpx.AsyncClient, server: Server, url: str) -> None:
    """Register `url` as a webhook endpoint for confirmed bookings."""
    r = await http.post(
        f"{server.url}/v1/webhooks",
        headers=server.headers(),
        json={"url": url, "events": ["booking.confirmed"]},
    )
    assert r.status_code == 201, r.text


async def resource_with_calendar(
    http: httpx.AsyncClient, server: Server, calendar_url: str, username: str, password: str
) -> str:
    """A resource whose calendar is `calendar_url`, pulled only (no push); its id."""
    r = await http.post(
        f"{server.url}/v1/resources",
        headers=server.headers(),
        json={"name": "Dr", "timezone": "UTC"},
    )
    resource: str = r.json()["resource_id"]
    r = await http.put(
        f"{server.url}/v1/resources/{resource}/calendar",
        headers=server.headers(),
        json={"url": calendar_url, "username": username, "password": password, "push": False},
    )
    assert r.status_code == 201, r.text
    return resource


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@asynccontextmanager
async def _database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'slotgraph.db'}"
        return
    url = await create_postgres_database("slotgraph_system")
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture(params=BACKENDS)
async def fresh_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, str]]:
    backend: str = request.param
    async with _database(backend, tmp_path) as url:
        yield backend, url


def _workers(request: pytest.FixtureRequest, backend: str) -> int:
    """Two server processes on PostgreSQL for a test (or module) marked `two_processes`, else
    one."""
    two = request.node.get_closest_marker("two_processes") is not None
    return two_on_postgresql(backend) if two else 1


@asynccontextmanager
async def serving(
    fresh_database: tuple[str, str],
    tmp_path: Path,
    *args: str,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Server]:
    """`slotgraph serve` on the test's database (its log `tmp_path`/server.log), stopped on the
    way out: the server fixtures' one body."""
    backend, url = fresh_database
    srv = await start_server(url, backend, tmp_path / "server.log", *args, env=env, workers=workers)
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
async def server(
    request: pytest.FixtureRequest, fresh_database: tuple[str, str], tmp_path: Path
) -> AsyncIterator[Server]:
    workers = _workers(request, fresh_database[0])
    async with serving(fresh_database, tmp_path, workers=workers) as srv:
        yield srv


# Each backend with one server process, and two server processes sharing one SQLite file (each
# serialises its own transactions; between them SQLite's write lock decides: db/engine.py).
TOPOLOGIES = [("sqlite", 1), ("postgresql", 1), ("sqlite", 2)]


@pytest.fixture(
    scope="module", params=TOPOLOGIES, ids=["sqlite", "postgresql", "sqlite-two-processes"]
)
async def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[Server]]:
    """Server processes on one fresh database, shared by a module's tests (starting them is most
    of a test's time): each test makes its own resource and counts only what it made. Requests
    are spread over all of them."""
    backend, count = request.param
    workers = _workers(request, backend)
    tmp_path = tmp_path_factory.mktemp(f"servers-{backend}-{count}")
    async with _database(backend, tmp_path) as url:
        started: list[Server] = []
        try:
            for i in range(count):  # one after the other: the first migrates and bootstraps
                log = tmp_path / f"server{i}.log"
                started.append(await start_server(url, backend, log, workers=workers))
            yield started
        finally:
            for srv in started:
                stop_server(srv)


@pytest.fixture(scope="module", params=BACKENDS)
async def two_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[Server]]:
    """Two server processes on one fresh database (each backend), shared by a module's tests:
    what one process changes, the other must see."""
    backend: str = request.param
    workers = _workers(request, backend)
    tmp_path = tmp_path_factory.mktemp(f"two-servers-{backend}")
    async with _database(backend, tmp_path) as url:
        started: list[Server] = []
        try:
            for i in range(2):  # one after the other: the first migrates and bootstraps
                log = tmp_path / f"server{i}.log"
                started.append(await start_server(url, backend, log, workers=workers))
            yield started
        finally:
            for srv in started:
                stop_server(srv)
