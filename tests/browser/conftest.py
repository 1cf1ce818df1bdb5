"""The customer's side in a real browser: Debian's chromium, driven by Playwright, against a
real `slotgraph serve` process per backend (one per backend for the whole folder; each test
makes its own resources and page).

Every browser context here: loopback only (anything else is aborted and fails the test: the
pages use no CDN and work offline), the pages' CSP on, and a test fails on an uncaught script
error or a CSP violation in any of its pages.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Route

from tests.chromium import chromium
from tests.conftest import BACKENDS
from tests.system.conftest import Server, _database, start_server, stop_server

# Viewports: a laptop and a phone (CSS pixels; scale 1 keeps the screenshots small).
DEVICES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 1,
    },
}
# Every day open 08:00-18:00 in the resource's zone: any week the tests look at has free times.
ALL_WEEK = {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@dataclass
class Site:
    """The running server, and the API calls a test makes to set a page up."""

    server: Server
    http: httpx.AsyncClient
    mail: Path  # the server writes each email here as an .eml file (no SMTP configured)

    @property
    def url(self) -> str:
        return self.server.url

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        r = await self.http.request(
            method, self.url + path, json=body, headers=self.server.headers()
        )
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    async def resource(
        self,
        name: str,
        timezone: str = "Europe/Oslo",
        hours: dict[str, Any] | None = None,
        email: str | None = None,
        **rules: Any,
    ) -> str:
        """A resource open `hours` (every day 08:00-18:00 local time by default), with other
        availability `rules` (`slot_step`, buffers...)."""
        made = await self.call(
            "POST",
            "/v1/resources",
            {"name": name, "timezone": timezone, "email": email},
            expect=201,
        )
        rid = str(made["resource_id"])
        await self.call(
            "PUT",
            f"/v1/resources/{rid}/availability",
            {"weekly_hours": hours or ALL_WEEK, **rules},
        )
        return rid

    async def booking_page(self, resource_ids: list[str], **fields: Any) -> dict[str, Any]:
        """A booking page (POST /v1/pages) with a fresh slug; `fields` override the defaults."""
        body = {
            "slug": f"t-{uuid.uuid4().hex[:10]}",
            "title": "Consultation",
            "resource_ids": resource_ids,
            "durations": ["PT30M"],
            "graph": "instant",
            **fields,
        }
        return dict(await self.call("POST", "/v1/pages", body, expect=201))

    def page_url(self, page: dict[str, Any], query: str = "") -> str:
        return f"{self.url}/book/{page['slug']}{query}"


@pytest.fixture(scope="package", params=BACKENDS)
async def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Site]:
    backend: str = request.param
    tmp = tmp_path_factory.mktemp(f"browser-{backend}")
    async with _database(backend, tmp) as url:
        log = tmp / "server.log"
        # The emails go to .eml files in a temporary folder, not to ./data/mail of the checkout.
        mail = tmp / "mail"
        env = {"SLOTGRAPH_MAIL_DIR": str(mail)}
        try:
            server = await start_server(url, backend, log, env=env)
        except RuntimeError:  # not ready in time on a loaded machine: once more
            server = await start_server(url, backend, log, env=env)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                yield Site(server, http, mail)
        finally:
            stop_server(server)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@dataclass
class Visitors:
    """The browser contexts of one test, and what went wrong in their pages."""

    browser: Browser
    site: Site
    contexts: list[BrowserContext] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    async def open(
        self,
        url: str,
        *,
        device: str = "desktop",
        timezone_id: str = "Europe/Oslo",
        javascript: bool = True,
        locale: str = "en-US",
    ) -> Page:
        """A new visitor (a fresh context: own cookies) on `url`."""
        context = await self.browser.new_context(
            **DEVICES[device],
            timezone_id=timezone_id,
            locale=locale,
            java_script_enabled=javascript,
        )
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        await context.route(lambda u: not u.startswith(self.site.url + "/"), self._outside)
        page = await context.new_page()
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        page.on("console", self._console)
        await page.goto(url)
        return page

    async def _outside(self, route: Route) -> None:
        self.problems.append(f"request outside the server: {route.request.url}")
        await route.abort()

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.problems.append(f"CSP: {message.text}")

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def visitors(browser: Browser, site: Site) -> AsyncIterator[Visitors]:
    v = Visitors(browser, site)
    try:
        yield v
    finally:
        await v.close()
    assert not v.problems, "\n".join(v.problems)
