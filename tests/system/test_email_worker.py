"""Emails from a real worker process to a real SMTP server: a worker killed with kill -9 in the
middle of sending loses nothing; the next worker sends what it held once its lease runs out."""

from __future__ import annotations

import email
import email.policy
import re
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.mailbox import Mailbox, smtp_server
from tests.system.conftest import Server, start_server, start_worker, stop_server
from tests.system.test_concurrency import database_says
from tests.system.test_workers import until_all_succeeded, wait_for

pytestmark = pytest.mark.system

COUNT = 60
START = datetime(2032, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


def env_for(mailbox: Mailbox) -> dict[str, str]:
    return {
        "SLOTGRAPH_SMTP_URL": mailbox.url,
        "SLOTGRAPH_PUBLIC_URL": "https://book.example",
        "SLOTGRAPH_WORKER_LEASE_SECONDS": "10",
        "SLOTGRAPH_WORKER_BATCH": "8",
    }


async def book(http: httpx.AsyncClient, server: Server) -> list[str]:
    r = await http.post(
        f"{server.url}/v1/resources",
        headers=server.headers(),
        json={"name": "Dr. Berg", "timezone": "Europe/Oslo"},
    )
    resource = r.json()["resource_id"]
    ids = []
    for i in range(COUNT):
        start = START + timedelta(hours=i)
        r = await http.post(
            f"{server.url}/v1/bookings",
            headers=server.headers(),
            json={
                "resource_id": resource,
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(minutes=30)).isoformat(),
                "customer": {"name": f"C{i}", "email": f"c{i}@example.com"},
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["booking_id"])
    return ids


async def test_a_worker_killed_mid_send_loses_no_email(
    fresh_database: tuple[str, str], tmp_path: Path, mailbox: Mailbox
) -> None:
    backend, url = fresh_database
    env = env_for(mailbox)
    server = await start_server(url, backend, tmp_path / "api.log", "--no-worker", env=env)
    mailbox.delay = 0.2  # a send takes a while: the kill finds some in flight
    first = start_worker(url, tmp_path / "worker0.log", env)
    second = None
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            ids = await book(http, server)

        def recipients() -> Counter[str]:
            return Counter(r for m in list(mailbox.received) for r in m.rcpt_tos)

        await wait_for(lambda: len(recipients()) >= 10, 120, "the first emails")
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = start_worker(url, tmp_path / "worker1.log", env)
        expected = {f"c{i}@example.com" for i in range(COUNT)}
        await wait_for(lambda: set(recipients()) >= expected, 180, "every customer's email")
        await until_all_succeeded(server, 30)
    finally:
        for w in (first, second):
            if w is not None and w.poll() is None:
                w.send_signal(signal.SIGTERM)
                w.wait(timeout=30)
        stop_server(server)

    statuses = await database_says(
        server, "SELECT status, COUNT(*) FROM deliveries GROUP BY status"
    )
    assert dict((s, n) for s, n in statuses) == {"succeeded": COUNT}
    # Only a send the killed worker had not recorded is repeated: at most the batch on the wire
    # and up to two batches answered but not yet recorded (worker.py `_fill`).
    repeated = {r: n for r, n in recipients().items() if n > 1}
    assert len(repeated) <= 8 + 2 * 8, repeated
    subjects = {m.subject.split(":")[0] for m in mailbox.received}
    assert subjects == {"Booked"}
    uids = {
        str(event["UID"])
        for m in mailbox.received
        if (cal := m.calendar()) is not None
        for event in cal.walk("VEVENT")
    }
    assert uids == set(ids)
    assert second is not None
    assert second.returncode == 0, (tmp_path / "worker1.log").read_text()


async def test_serve_on_another_port_mails_links_to_that_port(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    """`slotgraph serve --port N` without SLOTGRAPH_PUBLIC_URL: the manage link in the customer's
    email is on port N (it was on 8000, SLOTGRAPH_PORT's default, whatever --port said)."""
    backend, url = fresh_database
    mail_dir = tmp_path / "mail"
    env = {"SLOTGRAPH_MAIL_DIR": str(mail_dir), "SLOTGRAPH_PUBLIC_URL": ""}
    server = await start_server(url, backend, tmp_path / "server.log", env=env)
    try:
        assert not server.url.endswith(":8000")
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{server.url}/v1/resources",
                headers=server.headers(),
                json={"name": "Dr. Berg", "timezone": "Europe/Oslo"},
            )
            assert r.status_code == 201, r.text
            r = await http.post(
                f"{server.url}/v1/bookings",
                headers=server.headers(),
                json={
                    "resource_id": r.json()["resource_id"],
                    "start_time": START.isoformat(),
                    "end_time": (START + timedelta(minutes=30)).isoformat(),
                    "customer": {"name": "Ann", "email": "ann@example.com"},
                },
            )
            assert r.status_code == 201, r.text
            await wait_for(lambda: any(mail_dir.glob("*.eml")), 60, "the email")
            (sent,) = mail_dir.glob("*.eml")
            text = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
            body = text.get_body(preferencelist=("plain",))
            assert body is not None
            links = re.findall(r"https?://\S+/manage/\S+", body.get_content())
            assert links, body.get_content()
            assert all(link.startswith(f"{server.url}/manage/ct_") for link in links), links
            page = await http.get(links[0])
            assert page.status_code == 200, page.text
    finally:
        stop_server(server)
