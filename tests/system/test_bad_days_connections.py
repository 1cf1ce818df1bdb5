"""Bad days: PostgreSQL has no connection left for slotgraph (docs/operations.md, "Bad days").

PostgreSQL refuses every new connection of slotgraph's role with `too many connections` (SQLSTATE
53300), as when other clients hold them all: the role's `CONNECTION LIMIT` is 0 and its
connections are ended (a role of the test's own, since a superuser's connections ignore the
limit: max_connections exhausted, without taking the shared server's connections from anybody
else; the probe in docs/operations.md held the connections from a script). Requests answer
503 database_unavailable with Retry-After, and `/readyz` names the driver's error, so that an
operator can tell "no connections left" from "down" (before, it said only "The database cannot
be reached right now"); when the connections are let go, the same server serves again.

PostgreSQL only: a SQLite process has one connection to its file, and no server to run out.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import postgres_url
from tests.system.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.system


async def test_no_connection_left_is_503_and_readyz_says_so(tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:12]
    role, name = f"slotgraph_baddays_{suffix}", f"slotgraph_baddays_{suffix}"
    admin = await asyncpg.connect(postgres_url())
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    await admin.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
    url = make_url(postgres_url()).set(username=role, password=None, database=name)
    url_text = url.render_as_string(hide_password=False)
    server: Server | None = None
    try:
        # One server process (start_server's default): with two, /healthz answers once one of
        # them has started, and the other, still in its start-up, met the limit below and
        # logged a traceback (a CI flake).
        server = await start_server(url_text, "postgresql", tmp_path / "server.log")
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(f"{server.url}/readyz")).status_code in (200, 503)
            await admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT 0')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )

            during = await asyncio.gather(
                *(
                    http.get(f"{server.url}/v1/resources", headers=server.headers())
                    for _ in range(10)
                )
            )
            for r in during:
                assert r.status_code == 503, r.text
                assert r.json()["code"] == "database_unavailable"
                assert int(r.headers["retry-after"]) > 0
            ready = await http.get(f"{server.url}/readyz")
            assert ready.status_code == 503
            database = ready.json()["checks"]["database"]
            assert database["ok"] is False
            assert "TooManyConnectionsError" in database["error"], database

            await admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT -1')
            for _ in range(100):
                r = await http.get(f"{server.url}/v1/resources", headers=server.headers())
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text
        log = server.log.read_text()
        assert "too many connections" in log, log
        assert "Traceback" not in log, log
    finally:
        if server is not None:
            stop_server(server)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()
