"""`slotgraph serve` with its worker in the process (the embedded setup) pulls a calendar an app
connected, written by whoever runs that server: a recurrence every second without end. The
server keeps answering every app while it syncs. Real processes, real Radicale, both backends."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.radicale import PASSWORD, USER, running_radicale
from tests.system.conftest import resource_with_calendar, start_server, stop_server
from tests.system.test_concurrency import database_says

pytestmark = pytest.mark.system

ENV = {
    "SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "SLOTGRAPH_WORKER_TIMER_SECONDS": "0.2",
    "SLOTGRAPH_ENCRYPTION_KEY": Fernet.generate_key().decode(),
}
SOON = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)


def calendar_text() -> str:
    def event(uid: str, *lines: str) -> list[str]:
        return ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20320101T000000Z", *lines, "END:VEVENT"]

    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//tests//EN",
            *event(
                "every-second",
                f"DTSTART:{SOON:%Y%m%dT%H%M%SZ}",
                "DURATION:PT1S",
                "RRULE:FREQ=SECONDLY",
            ),
            *event(
                "meeting",
                f"DTSTART:{SOON:%Y%m%dT%H%M%SZ}",
                f"DTEND:{SOON + timedelta(hours=1):%Y%m%dT%H%M%SZ}",
            ),
            "END:VCALENDAR",
            "",
        ]
    )


async def test_serve_answers_while_it_pulls_a_hostile_calendar(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    # Before: the expansion of FREQ=SECONDLY never ended, on serve's event loop: /healthz
    # stopped answering, for good.
    backend, url = fresh_database
    (tmp_path / "dav").mkdir()
    with running_radicale(tmp_path / "dav") as dav:
        async with httpx.AsyncClient(timeout=10) as http:
            calendar_url = await dav.put_calendar(http, "hostile", calendar_text())
            server = await start_server(url, backend, tmp_path / "serve.log", env=ENV)
            try:
                resource = await resource_with_calendar(http, server, calendar_url, USER, PASSWORD)
                slowest, deadline = 0.0, time.monotonic() + 90
                synced = "SELECT last_success_at FROM calendar_connections"
                while not (await database_says(server, synced))[0][0]:
                    assert time.monotonic() < deadline, "the sync did not end"
                    started = time.monotonic()
                    assert (await http.get(f"{server.url}/healthz")).status_code == 200
                    slowest = max(slowest, time.monotonic() - started)
                    await asyncio.sleep(0.05)
                assert slowest < 2.0, slowest
                state = (
                    await http.get(
                        f"{server.url}/v1/resources/{resource}/calendar",
                        headers=server.headers(),
                    )
                ).json()
                assert "repeat too often" in state["last_error"], state
                assert state["counts"]["pulled_blocks"] == 1
            finally:
                stop_server(server)
