"""Debian's chromium under Playwright for Python, shared by the browser tests (tests/compat,
tests/browser). Never a browser download: `executable_path` is the apt package's binary
(`.ci/run` installs it). Without it a laptop run skips with a message; CI fails instead."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parents[1] / "docs" / "screenshots"
# Set to regenerate the PNGs in docs/screenshots/ from a test run (docs/booking-pages.md).
UPDATE_SCREENSHOTS = "SLOTGRAPH_UPDATE_SCREENSHOTS"


def need(what: str, ok: bool, hint: str) -> None:
    """Skip a laptop run that lacks a tool the test needs; in CI the lack is a failure."""
    if ok:
        return
    message = f"{what} is missing ({hint})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless chromium (one per module or test: contexts keep tests apart)."""
    need("Debian chromium", Path(CHROMIUM).exists(), "apt-get install chromium, or run .ci/run")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def keep(page: Page, name: str, *, full_page: bool = True) -> None:
    """Take a screenshot; with SLOTGRAPH_UPDATE_SCREENSHOTS set, write it to docs/screenshots/."""
    shot = await page.screenshot(full_page=full_page)
    if os.environ.get(UPDATE_SCREENSHOTS):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(shot)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
