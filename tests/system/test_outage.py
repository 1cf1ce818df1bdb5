"""The database goes away under real server processes, then comes back (PostgreSQL).

Every connection of the database is terminated and new ones are refused for a while
(`ALLOW_CONNECTIONS false`), as in a failover or restart. Meanwhile requests answer 503
database_unavailable with Retry-After, never 500, and /healthz stays up; afterwards the servers
answer normally again without a restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import create_postgres_database, drop_postgres_database, postgres_url
from tests.system.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.system


async def set_reachable(database_url: str, reachable: bool) -> None:
    name = make_url(database_url).database
    admin = await asyncpg.connect(postgres_url())
    try:
        await admin.execute(
            f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {"true" if reachable else "false"}'
        )
        if not reachable:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
    finally:
        await admin.close()


async def test_database_outage_is_503_then_recovers(tmp_path: Path) -> None:
    url = await create_postgres_database("slotgraph_outage")
    server: Server | None = None
    try:
        server = await start_server(url, "postgresql", tmp_path / "server.log")
        async with httpx.AsyncClient(timeout=30) as http:
            headers = server.headers()
            r = await http.post(
                f"{server.url}/v1/resources",
                headers=headers,
                json={"name": "Room", "timezone": "UTC"},
            )
            assert r.status_code == 201, r.text
            # An availability search reads on a pooled connection's driver (db/engine.py)
            search = {
                "resource_id": r.json()["resource_id"],
                "start": "2031-03-03T00:00:00Z",
                "end": "2031-03-04T00:00:00Z",
                "duration": "PT1H",
            }
            # Warm every pooled connection of both processes, so that all of them die below.
            warm = await asyncio.gather(
                *(http.get(f"{server.url}/v1/resources", headers=headers) for _ in range(40)),
                *(
                    http.get(f"{server.url}/v1/availability", headers=headers, params=search)
                    for _ in range(10)
                ),
            )
            assert {w.status_code for w in warm} == {200}

            await set_reachable(url, False)
            during = await asyncio.gather(
                *(http.get(f"{server.url}/v1/resources", headers=headers) for _ in range(30)),
                *(
                    http.post(
                        f"{server.url}/v1/resources",
                        headers=headers,
                        json={"name": "During", "timezone": "UTC"},
                    )
                    for _ in range(10)
                ),
                *(
                    http.get(f"{server.url}/v1/availability", headers=headers, params=search)
                    for _ in range(10)
                ),
            )
            assert {d.status_code for d in during} == {503}, [d.text for d in during]
            for d in during:
                assert d.json()["code"] == "database_unavailable"
                assert int(d.headers["retry-after"]) > 0
            assert (await http.get(f"{server.url}/healthz")).status_code == 200
            ready = await http.get(f"{server.url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"]["ok"] is False

            await set_reachable(url, True)
            # Recovery without a restart: poll until a request succeeds (bounded), then all do.
            for _ in range(100):
                r = await http.get(f"{server.url}/v1/resources", headers=headers)
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                await asyncio.sleep(0.1)
            after = await asyncio.gather(
                *(http.get(f"{server.url}/v1/resources", headers=headers) for _ in range(40)),
                *(
                    http.get(f"{server.url}/v1/availability", headers=headers, params=search)
                    for _ in range(10)
                ),
            )
            assert {a.status_code for a in after} == {200}
            assert [x["name"] for x in after[0].json()["data"]] == ["Room"]
            assert len(after[-1].json()["data"]) == 24 * 4 - 3  # the whole day, every 15 minutes
        log = server.log.read_text()
        assert "Traceback" not in log, log
    finally:
        if server is not None:
            stop_server(server)
        await set_reachable(url, True)
        await drop_postgres_database(url)
