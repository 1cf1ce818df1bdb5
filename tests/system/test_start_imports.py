"""A server process imports what it uses at start, not what it may use later: a process start is
mostly its imports (docs/testing.md, "Process starts"), and the suite starts a few hundred. Each
library named here was imported by every server process whether or not it was used, and is now
imported where it is used: alembic by the migrations and the first /readyz, aiohttp (with attrs)
by the worker's first webhook send, redis-py by a limiter that counts in Redis, Jinja2 by the first
page or email (or a change of the email templates), icalendar by the first feed, push, pull or
.ics, aiosmtplib by the first email over SMTP.

The child does what a `serve --workers N` child does (uvicorn imports `serve_app` and runs the
app's start, whose worker loops), on a migrated database of each backend, answers /healthz, and
says which of the libraries it holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from slotgraph.db.engine import create_engine
from slotgraph.db.migrate import migrate
from tests.api.conftest import Clock, make_api
from tests.conftest import BACKENDS
from tests.system.conftest import _database

pytestmark = pytest.mark.system

NOT_AT_START = (
    *("alembic", "mako", "pygments", "aiohttp", "attr", "redis"),
    *("jinja2", "markupsafe", "icalendar", "dateutil", "aiosmtplib"),
)

CHILD = """
import asyncio, json, sys

from sqlalchemy import func, select

from slotgraph.api.app import serve_app
from slotgraph.db.models import WorkerHeartbeat


async def healthz(app) -> int:
    # one request through the app's ASGI interface (httpx would bring pygments and click)
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/healthz", "raw_path": b"/healthz", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"test")], "client": ("127.0.0.1", 4000),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    return sent[0]["status"]


async def main() -> None:
    app = serve_app()
    async with app.router.lifespan_context(app):
        for _ in range(600):  # until the worker has looped once (its heartbeat), at most 60 s
            async with app.state.sessions() as session:
                if await session.scalar(select(func.count()).select_from(WorkerHeartbeat)):
                    break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the worker never looped")
        assert await healthz(app) == 200
        warmed = await app.state.warming  # the warm-up's thread (warm.py), None: nothing to warm
        if warmed is not None:
            warmed.join(60)
        print(json.dumps({"warmed": warmed is not None}))
    print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))


asyncio.run(main())
"""


@pytest.fixture(params=BACKENDS)
async def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with _database(request.param, tmp_path) as url:
        engine = create_engine(url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()
        yield url


def server_child(database_url: str) -> tuple[bool, set[str]]:
    """Whether the child warmed anything up, and the libraries it holds in the end."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={
            **os.environ,
            "SLOTGRAPH_DATABASE_URL": database_url,
            "SLOTGRAPH_LOG_LEVEL": "warning",
            "SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    return json.loads(lines[-2])["warmed"], set(json.loads(lines[-1]))


def test_a_server_process_imports_no_library_it_has_not_used(migrated: str) -> None:
    # Nothing in its database asks for them: not even warmed up after its start.
    warmed, loaded = server_child(migrated)
    assert {"slotgraph", "fastapi", "sqlalchemy"} <= loaded
    assert sorted(loaded & set(NOT_AT_START)) == []
    assert not warmed


async def test_a_server_process_warms_up_what_its_database_will_have_it_use(
    migrated: str,
) -> None:
    # A webhook endpoint, a booking page and a booking: the worker's first send (aiohttp) and
    # email (Jinja2, icalendar), and the first page, would each have imported their libraries
    # on the event loop, every request waiting (aiohttp 117 ms). They are imported in a thread
    # after the start instead (slotgraph/warm.py); still none of them at the start itself (the
    # test above).
    engine = create_engine(migrated)
    try:
        http, created = await make_api(engine, Clock())
        async with http:
            auth = {"Authorization": f"Bearer {created.secret_key}"}
            r = await http.post(
                "/v1/webhooks", headers=auth, json={"url": "http://127.0.0.1:9/hook"}
            )
            assert r.status_code == 201, r.text
            r = await http.post(
                "/v1/resources", headers=auth, json={"name": "Room", "timezone": "UTC"}
            )
            room = r.json()["resource_id"]
            r = await http.post(
                "/v1/pages",
                headers=auth,
                json={
                    "slug": "room",
                    "title": "Book the room",
                    "resource_ids": [room],
                    "durations": ["PT30M"],
                },
            )
            assert r.status_code == 201, r.text
            r = await http.post(
                "/v1/bookings",
                headers=auth,
                json={
                    "resource_id": room,
                    "start_time": "2031-01-02T10:00:00Z",
                    "end_time": "2031-01-02T11:00:00Z",
                    "customer": {"name": "Ann", "email": "ann@example.com"},
                },
            )
            assert r.status_code == 201, r.text
    finally:
        await engine.dispose()
    warmed, loaded = server_child(migrated)
    assert warmed
    assert {"aiohttp", "jinja2", "icalendar"} <= loaded, sorted(loaded & set(NOT_AT_START))


HELP = """
import json, runpy, sys

sys.argv = ["slotgraph", "--help"]
try:
    runpy.run_module("slotgraph.cli", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_command_lines_help_imports_no_database_and_no_web_framework() -> None:
    """`slotgraph --help` (and a mistyped command) parse arguments only: no SQLAlchemy (which
    slotgraph/logs.py imported for an isinstance check), no FastAPI."""
    done = subprocess.run(
        [sys.executable, "-c", HELP], capture_output=True, text=True, timeout=60, check=True
    )
    assert "usage: slotgraph" in done.stdout
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "slotgraph" in loaded
    assert sorted(loaded & {"sqlalchemy", "fastapi", "starlette", "alembic"}) == []
