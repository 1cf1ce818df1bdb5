"""A booking page's form keeps working across a restart of `slotgraph serve`, without
SLOTGRAPH_CSRF_SECRET: its token is signed with the installation's secret, which the database
keeps (migration 0014), not with one the process made up. (With `--workers 2` on PostgreSQL the
form may also be sent to the other process than the one that served it.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.system.conftest import start_server, stop_server, two_on_postgresql
from tests.web.pages import Doc

pytestmark = pytest.mark.system

EVERY_DAY = {d: [["00:00", "23:30"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


async def _time_link(http: httpx.AsyncClient, url: str) -> str:
    """A free time on the page, this week or the next."""
    page = Doc((await http.get(url)).text)
    times = page.all("time") or Doc((await http.get(page.all("week-next")[0]["href"])).text).all(
        "time"
    )
    return times[0]["href"]


async def test_a_form_sent_after_a_restart_is_taken(
    fresh_database: tuple[str, str], tmp_path: Path
) -> None:
    backend, url = fresh_database
    two = two_on_postgresql(backend)  # the form may go to the other process than the page's
    server = await start_server(url, backend, tmp_path / "first.log", workers=two)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as api:
            r = await api.post(
                "/v1/resources",
                headers=server.headers(),
                json={"name": "Dr. Berg", "timezone": "UTC", "weekly_hours": EVERY_DAY},
            )
            assert r.status_code == 201, r.text
            body = {
                "slug": "dr-berg",
                "title": "Book Dr. Berg",
                "resource_ids": [r.json()["resource_id"]],
                "durations": ["PT30M"],
            }
            assert (await api.post("/v1/pages", headers=server.headers(), json=body)).is_success
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as visitor:
            form_page = await visitor.get(await _time_link(visitor, "/book/dr-berg"))
            fields = Doc(form_page.text).form("booking-form")["fields"]
            cookie = visitor.cookies["sg_csrf"]
        assert "." in cookie  # signed: nonce.signature
    finally:
        stop_server(server)
    server = await start_server(url, backend, tmp_path / "second.log", workers=two)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as visitor:
            visitor.cookies.set("sg_csrf", cookie)
            sent = await visitor.post(
                "/book/dr-berg", data={**fields, "name": "Ann", "email": "ann@example.com"}
            )
            assert sent.status_code == 201, sent.text
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as attacker:
            attacker.cookies.set("sg_csrf", "planted")
            forged = await attacker.post(
                "/book/dr-berg",
                data={**fields, "csrf_token": "planted", "name": "Bo", "email": "bo@example.com"},
            )
            assert forged.status_code == 403
    finally:
        stop_server(server)
