"""The real `timekit-booking` 3.3.1 widget in Debian's chromium, against a live slotgraph.

Playwright for Python drives /usr/bin/chromium (no browser download). The test page and the
widget's own build are served from tests/compat (node_modules), on the server's origin through
Playwright's router; every /v2 call goes to the real server. Nothing leaves loopback.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from playwright.async_api import Browser, Page, Route

from tests.chromium import chromium, keep
from tests.compat.conftest import HERE, MODULES, Live, id_list, need, rows

pytestmark = [pytest.mark.browser, pytest.mark.system]

PAGE = "/__compat__/widget.html"


@pytest.fixture(scope="module")
async def module_chromium() -> AsyncIterator[Browser]:
    """One chromium for the module's tests (a launch and close cost about 0.9 s of CPU)."""
    need("tests/compat/node_modules", (MODULES / "timekit-booking").is_dir())
    async with chromium() as b:
        yield b


@pytest.fixture
async def browser(module_chromium: Browser) -> AsyncIterator[Browser]:
    """The module's chromium; the contexts (and pages) a test opened are closed after it, so
    nothing of one test's widget runs on into the next."""
    yield module_chromium
    for context in module_chromium.contexts:
        await context.close()


async def open_widget(browser: Browser, live: Live, config: dict[str, Any]) -> Page:
    context = await browser.new_context(
        timezone_id="Europe/Oslo", locale="en-US", viewport={"width": 900, "height": 1000}
    )
    page = await context.new_page()
    origin = urlparse(live.server.url)
    build = MODULES / "timekit-booking" / "public" / "build"
    html = (HERE / "widget.html").read_text().replace("__CONFIG__", json.dumps(config))

    async def route(r: Route) -> None:
        url = urlparse(r.request.url)
        if url.hostname != origin.hostname or url.port != origin.port:
            await r.abort()  # loopback only: no CDN, no font service, nothing else
        elif url.path == PAGE:
            await r.fulfill(body=html, content_type="text/html")
        elif url.path.startswith("/__compat__/build/"):
            await r.fulfill(path=build / Path(url.path).name)
        else:
            await r.continue_()  # the API: the real server answers

    await page.route("**/*", route)
    await page.goto(live.server.url + PAGE)
    return page


def next_monday(weeks: int = 1) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7, weeks=weeks - 1)


async def post(live: Live, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            live.server.url + path,
            json=body,
            headers={"Authorization": f"Bearer {live.secret_key}"},
        )
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


async def book(page: Page, name: str, email: str) -> None:
    await page.locator(".fc-event").first.click()
    await page.fill("#input-name", name)
    await page.fill("#input-email", email)
    await page.click(".bookingjs-form-button")
    await page.wait_for_selector(".bookingjs-form.success", timeout=15_000)


async def test_a_visitor_books_a_slot_from_an_embedded_project(
    live: Live, browser: Browser
) -> None:
    day = next_monday()
    resource = await post(live, "/v2/resources", {"name": "Dr. Emmett Brown", "timezone": "UTC"})
    project = await post(
        live,
        "/v2/projects",
        {
            "name": "Consultations",
            "slug": "consultations",
            "resources": [resource["id"]],
            "booking": {"graph": "instant", "what": "Consultation", "where": "Hill Valley"},
            "availability": {
                "mode": "roundrobin_random",
                "length": "1 hour",
                "timeslot_increments": "1 hour",
                "from": day.isoformat(),
                "to": (day + timedelta(days=1)).isoformat(),
            },
            "availability_constraints": [{"allow_hours": {"start": 9, "end": 12}}],
            "customer_fields": {
                "name": {"title": "Name", "required": True},
                "email": {"title": "E-mail", "format": "email", "required": True},
            },
            "ui": {
                "display_name": "Dr. Emmett Brown",
                "availability_view": "agendaWeek",
                "time_date_format": "24h-dmy-mon",
                "show_credits": False,
                "localization": {
                    "submit_button": "Book it",
                    "success_message": "Booked! A confirmation goes to %s",
                    "allocated_resource_prefix": "with",
                },
            },
        },
    )
    page = await open_widget(
        browser,
        live,
        {
            "app_key": live.public_key,
            "api_base_url": live.server.url + "/",
            "project_id": project["id"],
        },
    )
    await page.wait_for_selector(".fc-event", timeout=20_000)
    assert await page.locator(".fc-event").count() == 3  # 09:00, 10:00, 11:00 UTC
    await page.locator(".fc-event").first.scroll_into_view_if_needed()
    await keep(page, "timekit-widget-slots.png")
    await book(page, "Marty McFly", "marty@example.com")
    await keep(page, "timekit-widget-booking.png")
    assert await page.evaluate("window.widgetErrors") == []
    found = await rows(
        live,
        "SELECT b.graph, b.status, c.email, b.start_time FROM bookings b "
        "JOIN clients c ON c.id = b.client_id WHERE c.email = 'marty@example.com'",
    )
    assert len(found) == 1
    graph, status, email, start = found[0]
    assert (graph, status, email) == ("instant", "confirmed", "marty@example.com")
    start = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
    assert start.replace(tzinfo=UTC) == day.replace(hour=9)
    created = await page.evaluate("window.createdBooking")
    assert created["project"]["id"] == project["id"]
    assert created["attributes"]["event_info"]["what"] == "Consultation"


async def test_a_group_class_shows_its_seats_and_a_visitor_takes_one(
    live: Live, browser: Browser
) -> None:
    day = next_monday()
    resource = await post(live, "/v2/resources", {"name": "Studio", "timezone": "UTC"})
    klass = await post(
        live,
        "/v2/bookings",
        {
            "resource_id": resource["id"],
            "graph": "group_owner",
            "action": "create",
            "start": day.replace(hour=8).isoformat(),
            "end": day.replace(hour=9).isoformat(),
            "what": "Yoga",
            "settings": {"max_seats": 3},
            "customer": {"name": "Teacher", "email": "teacher@example.com"},
        },
    )
    await post(
        live,
        "/v2/bookings",
        {
            "graph": "group_customer",
            "related": {"owner_booking_id": klass["id"]},
            "customer": {"name": "Early bird", "email": "early@example.com"},
        },
    )
    page = await open_widget(
        browser,
        live,
        {
            "app_key": live.public_key,
            "api_base_url": live.server.url + "/",
            "booking": {"graph": "group_customer"},
            "ui": {"availability_view": "agendaWeek", "show_credits": False},
            "show_seats": True,
        },
    )
    seats = page.locator(".fc-event .seats")
    await seats.first.wait_for(timeout=20_000)
    await seats.first.scroll_into_view_if_needed()
    assert await seats.first.inner_text() == "2 of 3 seats left"
    await keep(page, "timekit-widget-group-seats.png")
    await book(page, "Lorraine Baines", "lorraine@example.com")
    await keep(page, "timekit-widget-group-booked.png")
    assert await page.evaluate("window.widgetErrors") == []
    found = await rows(
        live,
        "SELECT b.graph, b.status, c.email FROM bookings b JOIN clients c ON c.id = b.client_id "
        f"WHERE b.owner_booking_id IN ({id_list(live, [klass['id']])}) ORDER BY c.email",
    )
    assert found == [
        ("group_customer", "confirmed", "early@example.com"),
        ("group_customer", "confirmed", "lorraine@example.com"),
    ]
    taken = await rows(
        live, f"SELECT seats_taken FROM bookings WHERE id IN ({id_list(live, [klass['id']])})"
    )
    assert taken == [(2,)]
