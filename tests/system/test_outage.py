"""The database goes away under real server processes, then comes back (PostgreSQL).

Every connection of the database is terminated and new ones are refused for a while
(`ALLOW_CONNECTIONS false`), as in a failover or restart. Meanwhile requests answer 503
database_unavailable with Retry-After, never 500, and /healthz stays up; afterwards the servers
answer normally again without a restart, in every server process, whether or not it saw the
outage (a pool of connections the database has closed is replaced as it is used: db/engine.py).

SQLite has no server to lose: its one connection is a file in the process (test_bad_days_*
cover a file that cannot be written).
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
            await terminate_backends(admin, name)
    finally:
        await admin.close()


async def terminate_backends(admin: asyncpg.Connection, name: str | None) -> int:
    """End every session of database `name`, as a restart or a failover does (each is sent
    FATAL 57P01 and its socket closed), and wait until each has ended; how many there were."""
    pids = [
        r[0] for r in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)
    ]
    # waits up to 10 s for each; false for one that ended by itself meanwhile
    await admin.execute("SELECT pg_terminate_backend(pid, 10000) FROM unnest($1::int[]) pid", pids)
    left = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
    )
    assert left == 0, pids
    return len(pids)


def _children(server: Server) -> list[int]:
    root = server.process.pid
    return [
        int(pid)
        for task in Path(f"/proc/{root}/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]


def _sockets(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _server_sockets(server: Server) -> tuple[str, dict[str, int]]:
    """The server's listening socket, and each of its connections' client port (by the socket's
    inode), from /proc/net/tcp."""
    port = int(server.url.rsplit(":", 1)[1])
    listening = ""
    clients: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if int(local.split(":")[1], 16) != port or inode == "0":
            continue
        if state == "0A":  # LISTEN
            listening = inode
        else:
            clients[inode] = int(remote.split(":")[1], 16)
    return listening, clients


def server_processes(server: Server) -> dict[int, set[int]]:
    """The server's processes (uvicorn's children that share its listening socket), each with the
    client ports of the connections it holds, from /proc (Linux): the server's end of a
    connection is a socket, whose inode is in /proc/net/tcp and among the process's open files."""
    listening, clients = _server_sockets(server)
    found: dict[int, set[int]] = {}
    for pid in _children(server):
        inodes = _sockets(pid)
        if listening in inodes:
            found[pid] = {clients[i] for i in inodes if i in clients}
    return found


def served_by(server: Server, responses: list[httpx.Response]) -> list[int]:
    """The pid of the server process that answered each response (its connection still open:
    httpx keeps it, and the server keeps an idle one 5 s)."""
    owner = {port: pid for pid, ports in server_processes(server).items() for port in ports}
    return [
        owner[r.extensions["network_stream"].get_extra_info("client_addr")[1]] for r in responses
    ]


async def burst(
    server: Server, search: dict[str, str], lists: int = 40, searches: int = 10
) -> tuple[list[httpx.Response], list[int]]:
    """Concurrent reads on fresh connections (the kernel hands each to either process): the list
    goes through SQLAlchemy, the availability search straight to asyncpg (db/engine.py
    driver_fetch). The answers, and which process gave each."""
    headers = server.headers()
    # every connection kept open until the answers are mapped to processes (httpx's default
    # keeps 20)
    keep = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=30, limits=keep) as http:
        answers = await asyncio.gather(
            *(http.get(f"{server.url}/v1/resources", headers=headers) for _ in range(lists)),
            *(
                http.get(f"{server.url}/v1/availability", headers=headers, params=search)
                for _ in range(searches)
            ),
        )
        return list(answers), served_by(server, list(answers))


def failures(answers: list[httpx.Response]) -> list[tuple[str, int, str]]:
    return [(a.request.url.path, a.status_code, a.text) for a in answers if a.status_code != 200]


async def each_process_answers(server: Server, search: dict[str, str]) -> dict[int, int]:
    """Bursts until every server process has answered at least 10 reads (so each pool holds
    several connections); every read must succeed. The count each process answered."""
    processes = server_processes(server)
    assert len(processes) == 2, processes
    counts = dict.fromkeys(processes, 0)
    for _ in range(20):
        answers, pids = await burst(server, search)
        assert failures(answers) == []
        for pid in pids:
            counts[pid] += 1
        if min(counts.values()) >= 10:
            return counts
    raise AssertionError(f"the kernel gave one process nearly every connection: {counts}")


async def a_resource_and_search(server: Server) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(
            f"{server.url}/v1/resources",
            headers=server.headers(),
            json={"name": "Room", "timezone": "UTC"},
        )
    assert r.status_code == 201, r.text
    return {
        "resource_id": r.json()["resource_id"],
        "start": "2031-03-03T00:00:00Z",
        "end": "2031-03-04T00:00:00Z",
        "duration": "PT1H",
    }


async def test_database_outage_is_503_then_recovers(tmp_path: Path) -> None:
    url = await create_postgres_database("slotgraph_outage")
    server: Server | None = None
    try:
        server = await start_server(url, "postgresql", tmp_path / "server.log", workers=2)
        search = await a_resource_and_search(server)
        # Warm pooled connections of both processes, so that all of them die below.
        await each_process_answers(server, search)
        async with httpx.AsyncClient(timeout=30) as http:
            headers = server.headers()
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
            # Recovery without a restart: poll until a request succeeds (bounded; the database
            # takes connections again as soon as the ALTER commits) ...
            for _ in range(100):
                r = await http.get(f"{server.url}/v1/resources", headers=headers)
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                await asyncio.sleep(0.1)
        # ... then every request succeeds, in each process: the first 200 came from one of them.
        counts = await each_process_answers(server, search)
        answers, _ = await burst(server, search, lists=1, searches=1)
        assert [x["name"] for x in answers[0].json()["data"]] == ["Room"], counts
        assert len(answers[1].json()["data"]) == 24 * 4 - 3  # the whole day, every 15 minutes
        log = server.log.read_text()
        assert "Traceback" not in log, log
    finally:
        if server is not None:
            stop_server(server)
        await set_reachable(url, True)
        await drop_postgres_database(url)


async def test_a_restart_of_the_database_is_not_seen_by_requests(tmp_path: Path) -> None:
    """Every session of the database ends at once while the servers are idle (a restart or a
    failover: each gets FATAL 57P01 and its socket closed), and no request runs until it is back.
    Every pooled connection of both processes is dead, and no request saw the database go: the
    next requests must all succeed, in both processes (each used to answer 503 on each stale
    connection it took from its pool)."""
    url = await create_postgres_database("slotgraph_restart")
    server: Server | None = None
    try:
        # API processes only, as behind a load balancer (design.md): an in-process worker polls
        # the database, and would find the dead pool before the requests do.
        server = await start_server(
            url, "postgresql", tmp_path / "server.log", "--no-worker", workers=2
        )
        search = await a_resource_and_search(server)
        await each_process_answers(server, search)
        admin = await asyncpg.connect(postgres_url())
        try:
            # the pooled connections of both processes
            assert await terminate_backends(admin, make_url(url).database) >= 4
        finally:
            await admin.close()
        await each_process_answers(server, search)
        log = server.log.read_text()
        assert "Traceback" not in log, log
    finally:
        if server is not None:
            stop_server(server)
        await drop_postgres_database(url)
