"""What the CalDAV client takes from a server an app names: a hostile one of our own
(tests/hostile.py) sends endless, compressed or trickled answers. Each call reads at most
`MAX_ANSWER_BYTES` (decoded) and ends by `DEADLINE_SECONDS`. No database: the client alone."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import orjson
import pytest

from slotgraph import logs
from slotgraph.calendars import push, remote, threads
from tests.hostile import chunked, fixed, gzip_bomb, held, serving

MB = 1024 * 1024


def _pull(url: str) -> remote.RemoteError:
    with pytest.raises(remote.RemoteError) as failed:
        remote.pull(remote.Account(url, "u", "p"), None, allow_private=True)
    return failed.value


def test_a_huge_answer_is_read_up_to_the_bound() -> None:
    # Before: all 256 MB read into memory, then parsed.
    with serving(chunked(256 * MB)) as peer:
        error = _pull(peer.url)
        assert error.kind == "protocol"
        assert "more than 33,554,432 bytes" in str(error)
        assert peer.sent < 64 * MB, peer.sent


def test_a_gzip_bomb_is_read_up_to_the_bound() -> None:
    # 512 MB of zeros in 0.5 MB on the wire; before: decompressed whole into memory.
    with serving(gzip_bomb(512 * MB)) as peer:
        error = _pull(peer.url)
        assert (error.kind, "more than 33,554,432 bytes" in str(error)) == ("protocol", True)


def test_a_trickled_answer_ends_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # A byte each 50 ms, under any read timeout, for 20 s; before: read to its end.
    monkeypatch.setattr(remote, "DEADLINE_SECONDS", 2.0, raising=False)
    with serving(chunked(400, chunk=1, every=0.05)) as peer:
        started = time.monotonic()
        error = _pull(peer.url)
        assert time.monotonic() - started < 10
        assert (error.kind, "took longer than 2 s" in str(error)) == ("protocol", True)


async def test_a_slow_call_with_no_slow_thread_left_keeps_its_slot_for_a_short_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every slow thread is taken (none here): a call that turns slow keeps its slot, for
    # SLOW_DEADLINE_SECONDS more (1 s here, 30 s by default). Before: the 300 s of any call.
    monkeypatch.setattr(threads, "SLOW_ROOM", 0, raising=False)
    monkeypatch.setattr(threads, "SLOW_SECONDS", 0.5, raising=False)
    monkeypatch.setattr(threads, "SLOW_DEADLINE_SECONDS", 1.0, raising=False)
    with serving(chunked(400, chunk=1, every=0.05)) as peer:
        started = time.monotonic()
        account = remote.Account(peer.url, "u", "p")
        with pytest.raises(remote.RemoteError) as failed:
            await remote.call(uuid.uuid4(), remote.pull, account, None, allow_private=True)
        assert time.monotonic() - started < 10
        assert failed.value.kind == "protocol"
        assert "every CalDAV thread was taken" in str(failed.value)


def test_an_answer_that_is_not_xml_is_a_protocol_error() -> None:
    # Before: lxml's XMLSyntaxError left the client as it came, neither DAVError nor OSError:
    # a 500 on PUT /v1/resources/{id}/calendar, and the worker's calendar round failed.
    with serving(fixed(b"<<not xml")) as peer:
        error = _pull(peer.url)
        assert error.kind == "protocol"


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">
<!ENTITY x SYSTEM "file:///etc/passwd">]>
<multistatus xmlns="DAV:"><response><href>/cal/&h;&x;.ics</href>
<propstat><prop><getetag>"1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>
</response><sync-token>t</sync-token></multistatus>"""


def test_entities_are_neither_expanded_nor_read() -> None:
    # Held before too (then as lxml's XMLSyntaxError): caldav parses with resolve_entities=False
    # and no_network=True, and libxml2 refuses the amplification.
    with serving(fixed(LAUGHS)) as peer:
        started = time.process_time()
        error = _pull(peer.url)
        assert error.kind == "protocol"
        assert "amplification" in str(error)
        assert "root:" not in str(error)
        assert time.process_time() - started < 2


async def test_calendar_servers_that_hang_leave_the_threads_dns_lookups_use() -> None:
    # Pushes run in the worker's send slots (32 by default), each in a thread; they took the
    # default executor's (six threads on two cores), where every getaddrinfo waits too: the
    # webhook sender's resolver (every app's receivers), check_url at connect. Before: the
    # lookup below waited for the server's 8 s.
    booking = {
        "booking_id": str(uuid.uuid4()),
        "start_time": "2030-01-01T09:00:00+00:00",
        "end_time": "2030-01-01T10:00:00+00:00",
        "status": "confirmed",
        "version": 1,
        "holds": True,
        "created_at": "2029-12-01T09:00:00+00:00",
        "updated_at": "2029-12-01T09:00:00+00:00",
    }
    with serving(held(8.0, fixed(b"", status=b"201 Created"))) as peer:
        resource_id = uuid.uuid4()
        account = remote.Account(peer.url, "u", "p")
        # 12 apps' pushes: one app's calls take at most remote.PER_APP threads
        targets = [push.PushTarget(account, uuid.uuid4(), resource_id, False) for _ in range(12)]
        booking["resource_ids"] = [str(resource_id)]
        payload = orjson.dumps({"data": {"booking": booking}}).decode()
        loop, taken = asyncio.get_running_loop(), asyncio.Event()
        peer.on_request = lambda n: n >= 6 and loop.call_soon_threadsafe(taken.set)
        pushes = [
            asyncio.create_task(push.send(payload, target, allow_private=True))
            for target in targets
        ]
        await taken.wait()  # six held by the server: the default executor's threads, before
        started = time.monotonic()
        await loop.getaddrinfo("localhost", 80)
        assert time.monotonic() - started < 2.0
        await asyncio.gather(*pushes)


def test_an_answer_is_not_written_to_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    # Before: caldav logged the whole answer that was not XML at INFO through the root logger,
    # so the server's 1 MB of its choosing went into our log at every sync.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("info", "json")
    try:
        with serving(fixed(b"<html>" + b"x" * 1_000_000)) as peer:
            error = _pull(peer.url)
    finally:
        root.handlers[:], root.level = handlers, level
    assert error.kind == "protocol"
    written = capsys.readouterr().err
    assert "xxxxxxxxxx" not in written
    assert len(written) < 10_000
