"""One request at a time, in process: the availability bench's data, the app called as uvicorn
calls it (a plain HTTP scope, no client, no network), for CPU and instruction counts.

    .venv/bin/python -m bench.inprocess load              # keeps slotgraph_inprocess (PostgreSQL;
                                                          # SLOTGRAPH_INPROCESS_DB names another)
    .venv/bin/python -m bench.inprocess run one 500       # CPU per request after 10 warm-ups
    .venv/bin/python -m bench.inprocess run ping 0        # warm-ups only (callgrind's baseline)

SCENARIO is one, many, first (bench/availability.py), ping (`GET /v1/ping`), graphs
(`GET /v1/graphs/instant`, no database), create (`POST /v1/bookings` as bench/create.lua sends
it, each a new slot on a resource and client the run makes first, through the app) or
create-sqlite (the same on a SQLite file of the run's own, made and migrated as `serve` makes
it, removed at the end; needs no `load`). The app is the server's own (`serve_app`: its
logging, its settled heap). Instructions per request, independent of the machine's load: run
under `valgrind --tool=callgrind` with N requests and with 0, and divide the difference of the
two "Collected" totals by N (PYTHONHASHSEED=0 for both; docs/benchmarks.md, sixth pass).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.harness import SECRET, cpu_ms

# One database per engineer on a shared machine: SLOTGRAPH_INPROCESS_DB=slotgraph_<you>_inprocess
NAME = os.environ.get("SLOTGRAPH_INPROCESS_DB", "slotgraph_inprocess")
KEPT = Path(tempfile.gettempdir()) / f"{NAME}.json"  # the URL and the scenarios
WARM_UPS = 10
SQLITE_CREATE = "create-sqlite"
HEADERS = [  # as httpx sends them in `bench availability`
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"python-httpx/0.28.1"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"authorization", b"Bearer sk_bench_secret"),
]


async def load() -> None:
    import asyncpg
    import httpx
    from sqlalchemy.engine import make_url

    from bench.availability import load as load_scenarios
    from bench.harness import ADMIN_URL, free_port, start, stop, wait_ready

    conn = await asyncpg.connect(ADMIN_URL)
    await conn.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{NAME}"')
    await conn.close()
    url = make_url(ADMIN_URL).set(database=NAME).render_as_string(hide_password=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = start(["serve", "--no-worker", "--port", str(port)], url)
    try:
        await wait_ready(base, api)  # migrated, the bench's key, its rate limits at the maximum
        conn = await asyncpg.connect(url)
        async with httpx.AsyncClient(timeout=120) as http:
            loaded = await load_scenarios(conn, http, base)
        await conn.close()
    finally:
        stop(api)
    KEPT.write_text(json.dumps({"url": url, "scenarios": loaded.scenarios}))
    print(f"loaded {NAME}; kept in {KEPT}")


def _request(kept: dict[str, Any], scenario: str) -> tuple[str, bytes]:
    if scenario == "ping":
        return "/v1/ping", b""
    if scenario == "create":
        return "/v1/bookings", b""
    if scenario == "graphs":
        return "/v1/graphs/instant", b""
    return "/v1/availability", urlencode(kept["scenarios"][scenario], doseq=True).encode()


async def run(scenario: str, count: int) -> None:
    """`_run`, with the folders it needs made for it and removed afterwards, even when it fails:
    the SQLite file's (create-sqlite) and the metrics' (unless PROMETHEUS_MULTIPROC_DIR names
    one already). Before, each run left a metrics folder in the temporary directory."""
    made: list[str] = []
    try:
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            made.append(tempfile.mkdtemp(prefix="sg-inprocess-metrics-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = made[-1]
        own = None
        if scenario == SQLITE_CREATE:  # a file of this run's own
            own = tempfile.mkdtemp(prefix="sg-inprocess-")
            made.append(own)
        await _run(scenario, count, own)
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)


async def _run(scenario: str, count: int, own: str | None) -> None:
    sqlite = own is not None
    if own is not None:
        kept = {"url": f"sqlite:///{own}/bench.db"}
        scenario = "create"
    else:
        kept = json.loads(KEPT.read_text())
    os.environ.update(
        SLOTGRAPH_DATABASE_URL=kept["url"],
        SLOTGRAPH_RUN_WORKER="false",
        SLOTGRAPH_LOG_LEVEL="warning",
    )
    from slotgraph.api import deps
    from slotgraph.api.app import serve_app

    if sqlite:  # migrated, and the bench's key, as `serve` does before it starts the app
        from slotgraph.cli_commands import bootstrap
        from slotgraph.settings import Settings

        os.environ.update(
            SLOTGRAPH_BOOTSTRAP_SECRET_KEY=SECRET, SLOTGRAPH_MAX_APP_RATE_LIMIT="1000000"
        )
        await bootstrap(Settings())

    # Under valgrind a request takes 50-100 times as long: the 30-second key cache would expire
    # among the measured requests and add a key lookup to them (docs/benchmarks.md, sixth pass).
    deps._CACHE_SECONDS = 1e9
    app = serve_app()
    state: dict[str, Any] = {}
    path, query = _request(kept, scenario)

    async def once(method: str = "GET", at: str = path, body: bytes = b"") -> bytes:
        headers = list(HEADERS)
        if body:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": method,
            "root_path": "",
            "path": at,
            "raw_path": at.encode(),
            "query_string": query,
            "headers": headers,
            "state": dict(state),
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == (201 if method == "POST" else 200), sent
        return b"".join(m.get("body", b"") for m in sent[1:])

    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    receive: Callable[[], Awaitable[dict[str, Any]]] = inbox.get
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}, receive, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    if sqlite:  # the limits at their maximum, as bench.harness.wait_ready sets them for `load`
        most = {"rate_limits": {"public_per_minute": 1_000_000, "secret_per_minute": 1_000_000}}
        await once("PUT", "/v1/app", json.dumps(most).encode())
    if scenario == "create":  # a resource and a client of this run's own: no slot is taken
        made = [
            json.loads(await once("POST", f"/v1/{kind}", json.dumps(body).encode()))
            for kind, body in (
                ("resources", {"name": "create", "timezone": "UTC"}),
                ("clients", {"name": "Bench"}),
            )
        ]
        creates = _creates(made[0]["resource_id"], made[1]["client_id"])

        async def request() -> bytes:
            return await once("POST", path, next(creates))
    else:

        async def request() -> bytes:
            return await once()

    for _ in range(WARM_UPS):
        body = await request()
    backends = {} if sqlite else await _backends(kept["url"])
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        await request()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    digest = hashlib.sha256(body).hexdigest()[:16]
    after = {} if sqlite else await _backends(kept["url"])  # with 0 too: callgrind's baseline
    if count:
        database = sum(after[pid] - backends.get(pid, 0.0) for pid in after)
        print(
            f"{SQLITE_CREATE if sqlite else scenario}: CPU {cpu / count * 1000:.3f} ms a request,"
            f" wall {wall / count * 1000:.3f} ms ({count} requests; answer {len(body):,} bytes,"
            f" sha256 {digest}...)"
            + (
                ""
                if sqlite
                else f"; PostgreSQL backends' CPU {database * 1000 / count:.3f} ms a request"
            )
        )
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await lifespan


async def _backends(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend on this database but the asking one's (the
    app's pool), from /proc: PostgreSQL is on this machine."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return {pid: cpu_ms([pid]) / 1000 for (pid,) in pids}


def _creates(resource: str, client: str) -> Iterator[bytes]:
    """Bodies as bench/create.lua sends them: 15-minute slots one after another from 2040."""
    at = datetime(2040, 1, 1, tzinfo=UTC)
    while True:
        end = at + timedelta(minutes=15)
        yield (
            f'{{"resource_id":"{resource}","client_id":"{client}",'
            f'"start_time":"{at:%Y-%m-%dT%H:%M:%SZ}","end_time":"{end:%Y-%m-%dT%H:%M:%SZ}"}}'
        ).encode()
        at = end


def main() -> None:
    if sys.argv[1:2] == ["load"]:
        asyncio.run(load())
    elif sys.argv[1:2] == ["run"] and len(sys.argv) == 4:
        import uvloop  # as the server runs

        uvloop.run(run(sys.argv[2], int(sys.argv[3])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
