"""Slow clients against a real `slotgraph serve` (docs/security.md, ADR 0012).

uvicorn bounds neither a request's head nor its body in time, nor the connections one address
keeps open: half a head, a body that trickles a byte at a time, or a connection that sends
nothing held its socket for as long as the client liked (tried on 2026-11-30: 40 s, still
open), and enough of them used up the server's files. Each test waits on the socket with a
timeout that only bounds the test; the client's pauses pace it, they never decide it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import SECRET, two_on_postgresql
from tests.system.slow_clients import (
    BODY,
    HEAD,
    address,
    parse_answer,
    serving,
    trickle,
    until_closed,
)

pytestmark = pytest.mark.system


async def test_half_a_head_is_answered_408_and_closed_within_the_limit(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    async with serving(fresh_database, tmp_path) as server:
        reader, writer = await asyncio.open_connection(*address(server))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        # A header a byte every 0.2 s: uvicorn's keep-alive timeout never fires while bytes come.
        sending = asyncio.create_task(trickle(writer, b"X-Slow: " + b"a" * 200, 0.2))
        answer, took = await until_closed(reader, 30)
        sending.cancel()
        writer.close()
    status, headers, body = parse_answer(answer)
    assert status == "HTTP/1.1 408 Request Timeout", answer
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "request_timeout"
    assert HEAD - 0.5 < took < HEAD + 5, took


async def test_a_connection_that_sends_nothing_is_closed_within_the_limit(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    async with serving(fresh_database, tmp_path) as server:
        reader, writer = await asyncio.open_connection(*address(server))
        answer, took = await until_closed(reader, 30)
        writer.close()
    assert answer == b""  # nothing was asked: closed without an answer
    assert took < HEAD + 5, took


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (
            f"POST /v1/resources HTTP/1.1\r\nAuthorization: Bearer {SECRET}\r\n"
            "Content-Type: application/json\r\n",
            "application/problem+json",
        ),
        (  # a booking page's form (no key): the error page
            "POST /book/dr-berg HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n",
            "text/html; charset=utf-8",
        ),
    ],
    ids=["api", "page"],
)
async def test_a_body_that_trickles_is_answered_408(
    fresh_database: tuple[str, str], tmp_path: Path, head: str, media_type: str
) -> None:
    async with serving(fresh_database, tmp_path) as server:
        reader, writer = await asyncio.open_connection(*address(server))
        writer.write(f"{head}Host: x\r\nContent-Length: 1000\r\n\r\n".encode())
        sending = asyncio.create_task(trickle(writer, b'{"name": "' + b"a" * 990, 0.2))
        answer, took = await until_closed(reader, 30)
        sending.cancel()
        writer.close()
    status, headers, body = parse_answer(answer)
    assert status == "HTTP/1.1 408 Request Timeout", answer
    assert headers["content-type"] == media_type
    assert headers["connection"] == "close"  # the rest of the body is not waited for
    if media_type == "application/problem+json":
        assert json.loads(body)["code"] == "request_timeout"
    assert took < BODY + 5, took  # the head took no time; then the body's limit


async def test_a_slow_client_that_finishes_in_time_is_served(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    """Head and body each come in pieces over about a second (of the 4 s each may take), and a
    second request follows on the same connection: both are answered."""
    limits = {"SLOTGRAPH_HEADER_TIMEOUT_SECONDS": "4", "SLOTGRAPH_BODY_TIMEOUT_SECONDS": "4"}
    async with serving(fresh_database, tmp_path, **limits) as server:
        reader, writer = await asyncio.open_connection(*address(server))
        body = json.dumps({"name": "Slow but sure", "timezone": "Europe/Oslo"}).encode()
        head = (
            b"POST /v1/resources HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {SECRET}\r\n".encode()
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        for data in (head, body):
            for part in (data[: len(data) // 3], data[len(data) // 3 : -5], data[-5:]):
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.3)
        created = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert created.startswith(b"HTTP/1.1 201 "), created
        length = next(
            int(line.split(b":")[1])
            for line in created.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await asyncio.wait_for(reader.readexactly(length), 30)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        again = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert again.startswith(b"HTTP/1.1 200 "), again
        writer.close()


def _outside_address() -> str | None:
    """This host's own address on a network (not loopback), or None."""
    for probe in ("192.0.2.1", "198.51.100.1", "10.255.255.255"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((probe, 9))  # UDP: nothing is sent, the route picks the address
            except OSError:
                continue
            address = str(s.getsockname()[0])
            if not address.startswith("127."):
                return address
    return None


@pytest.mark.parametrize("per_address", ["64", "0"], ids=["bounded", "unbounded"])
async def test_many_slow_clients_do_not_keep_others_out(
    fresh_database: tuple[str, str], tmp_path: Path, per_address: str
) -> None:
    """600 connections from one address that never send a head, against server processes that
    may each open 256 files: past 64 per process they are answered 503 at once, and a visitor
    from another address is served while the rest are held. Without the bound (`0`, as uvicorn
    alone) the server runs out of files and accepts no visitor until the head's limit frees
    them."""
    outside = _outside_address()
    if outside is None:
        pytest.skip("this host has no address but loopback")
    # With the bound, two server processes on PostgreSQL: the bound is per process. Without it,
    # one: with two sharing the listening socket, how many files each had left differed from run
    # to run, and the visitor was served in about 1 run of 3 (on this morning's code as on
    # today's), so the control proved nothing. With one process its files are all held
    # (SQLite's case, which runs one, never failed).
    workers = two_on_postgresql(fresh_database[0]) if per_address != "0" else 1
    # The head's limit: without the bound, long enough that no held connection is let go (and
    # its file freed) before the visitor has been turned away. At 10 s, on a loaded CI machine
    # opening the 600 took longer than that, the first ones were closed, and the visitor was
    # served (CI of 2026-12-01 08:15, both backends): the control then proved nothing.
    head = SLOW_HEAD if per_address != "0" else 6 * SLOW_HEAD
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # the server inherits it
    try:
        cm = serving(
            fresh_database,
            tmp_path,
            "--host",
            "0.0.0.0",
            workers=workers,
            SLOTGRAPH_HEADER_TIMEOUT_SECONDS=str(head),
            SLOTGRAPH_MAX_CONNECTIONS_PER_ADDRESS=per_address,
        )
        server = await cm.__aenter__()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    _, port = address(server)
    held = [await asyncio.open_connection(outside, port) for _ in range(600)]
    try:
        if per_address != "0":
            refused = await _refused(held, 600 - 64 * workers)
            assert refused >= 600 - 64 * workers, refused
        # A visitor from loopback (another address), given half the head's limit.
        async with httpx.AsyncClient(timeout=SLOW_HEAD / 2) as http:
            if per_address == "0":  # out of files: not even accepted while they are held
                with pytest.raises(httpx.TransportError):
                    await http.get(f"{server.url}/healthz")
            else:
                assert (await http.get(f"{server.url}/healthz")).status_code == 200
    finally:
        for _reader, writer in held:
            writer.close()
        await cm.__aexit__(None, None, None)


SLOW_HEAD = 10.0


async def _refused(
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], enough: int
) -> int:
    """How many connections were answered 503 and closed; stops counting at `enough`, or when
    none more comes within the head's limit (the rest are held)."""
    reads = [asyncio.ensure_future(until_closed(reader, SLOW_HEAD * 3)) for reader, _ in held]
    refused = 0
    try:
        for read in asyncio.as_completed(reads, timeout=SLOW_HEAD):
            answer, _ = await read
            refused += answer.startswith(b"HTTP/1.1 503 ")
            if refused >= enough:
                break
    except TimeoutError:
        pass
    finally:
        for read in reads:
            read.cancel()
    return refused
