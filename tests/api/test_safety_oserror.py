"""An OSError of a request's own (a file, a calendar server's or SMTP's socket) is a fault, 500
internal_error logged with its traceback; only the database's own unreachability is 503.

Before, the error handler took every OSError for a lost database: 503 `database_unavailable`
with `Retry-After`, logged as an outage without a traceback (docs/security.md). The database's
own socket errors stay 503: a connection reset under a request, and the reconnect refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.api.app import create_app
from slotgraph.db.engine import create_engine
from tests.api.conftest import TEST_SETTINGS, Api

FAULTS: list[OSError] = [
    ConnectionRefusedError(111, "Connection refused"),  # a CalDAV server, SMTP
    ConnectionResetError(104, "Connection reset by peer"),
    FileNotFoundError(2, "No such file or directory"),
    TimeoutError("timed out"),  # asyncio.wait_for around a call of the request's own
    OSError(36, "File name too long"),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: type(f).__name__)
async def test_an_oserror_of_the_requests_own_is_a_500_not_an_outage(
    engine: AsyncEngine, api: Api, caplog: pytest.LogCaptureFixture, fault: OSError
) -> None:
    app = create_app(TEST_SETTINGS, engine=engine, clock=api.clock)

    async def fails() -> None:
        raise fault

    app.add_api_route("/v1/fails", fails)
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        r = await http.get("/v1/fails")
        # the database is there all along: the next request is served
        ok = await http.get("/v1/resources", headers={"Authorization": f"Bearer {api.key}"})
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "internal_error"
    assert "retry-after" not in r.headers
    assert ok.status_code == 200, ok.text
    assert [rec.exc_info[1] for rec in caplog.records if rec.exc_info] == [fault]
    assert not [rec for rec in caplog.records if "database unavailable" in rec.getMessage()]


def why_not_tcp(url: URL) -> str | None:
    """Why the reset test cannot run on this PostgreSQL URL, or None when it can: it relays TCP
    to the database's host and port, so a URL that names a Unix socket (no host, a path as its
    host, or `?host=/path`) has nothing to relay."""
    host = unquote(url.host or "")
    if not host or host.startswith("/") or "host" in url.query:
        return (
            f"SLOTGRAPH_TEST_POSTGRES_URL names a Unix socket ({url.render_as_string()}): this "
            "test resets the database's TCP connections through a relay, so it needs a host and "
            "port, e.g. postgresql://postgres@127.0.0.1:5432/test (docs/testing.md)"
        )
    return None


def test_a_socket_url_is_said_to_be_why_the_reset_test_skips() -> None:
    for socket_url in (
        "postgresql://postgres@/test",
        "postgresql://postgres@/test?host=/var/run/postgresql",
        "postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/test",
    ):
        reason = why_not_tcp(make_url(socket_url))
        assert "needs a host and port" in (reason or ""), socket_url
    assert why_not_tcp(make_url("postgresql://postgres@127.0.0.1:5432/test")) is None
    assert why_not_tcp(make_url("postgresql://postgres@db.internal/test")) is None


class Relay:
    """A TCP relay to PostgreSQL that can reset every connection through it (RST, as a failover
    or a dropped NAT entry does) and then refuse new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.client_sides: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.client_sides.append(writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def reset_all(self) -> None:
        assert self.server is not None
        self.server.close()  # new connections: refused
        self.reset_open()

    def reset_open(self) -> None:
        """Reset every connection relayed so far; new ones still go through."""
        for writer in self.client_sides:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self.client_sides.clear()


async def test_a_reset_or_refused_database_connection_is_still_503(
    engine: AsyncEngine, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    if api.backend != "postgresql":
        pytest.skip("a TCP reset needs a database behind a socket")
    if (reason := why_not_tcp(engine.url)) is not None:
        pytest.skip(reason)
    resource = await api.resource()
    client = await api.client()
    assert engine.url.host is not None
    proxy = Relay(engine.url.host, engine.url.port or 5432)
    port = await proxy.start()
    url = engine.url.set(drivername="postgresql", port=port).render_as_string(hide_password=False)
    proxied = create_engine(url)
    app = create_app(TEST_SETTINGS, engine=proxied, clock=api.clock)
    headers = {"Authorization": f"Bearer {api.key}"}
    search = {
        "resource_id": resource["resource_id"],
        "start": "2024-05-20T00:00:00Z",
        "end": "2024-05-21T00:00:00Z",
        "duration": "PT30M",
    }
    # A plain create: its two statements go straight to asyncpg on a pooled connection
    # (db/driver_sql.py autocommit), outside SQLAlchemy's error hook.
    create = {
        "resource_id": resource["resource_id"],
        "client_id": client["client_id"],
        "start_time": "2024-05-20T10:00:00Z",
        "end_time": "2024-05-20T11:00:00Z",
    }
    caplog.set_level(logging.INFO)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            before = await http.get("/v1/availability", params=search, headers=headers)
            made = await http.post("/v1/bookings", json=create, headers=headers)
            proxy.reset_all()
            during = [
                await http.post("/v1/bookings", json=create, headers=headers),
                await http.get("/v1/availability", params=search, headers=headers),
                await http.get("/v1/resources", headers=headers),
            ]
    finally:
        await proxied.dispose()
    assert before.status_code == 200, before.text
    assert made.status_code == 201, made.text
    for r in during:
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "database_unavailable"
        assert r.headers["retry-after"] == "5"
    assert not [rec for rec in caplog.records if rec.exc_info]  # an outage, not a fault
