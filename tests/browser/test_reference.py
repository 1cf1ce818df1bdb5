"""The API reference (/docs: Swagger UI, /redoc) under the pages' security headers
(api/reference.py): both still work, in a real browser, offline, with no CSP violation and no
script error (the `visitors` fixture fails the test on either). Before, they had no CSP and no
frame protection, on the pages' origin."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site, Visitors

pytestmark = [pytest.mark.browser, pytest.mark.system]


async def test_swagger_ui_and_redoc_work_under_the_pages_csp(
    site: Site, visitors: Visitors
) -> None:
    docs = await visitors.open(site.url + "/docs")
    await expect(docs.get_by_role("heading", level=1)).to_contain_text("slotgraph", timeout=15_000)
    operation = docs.locator(".opblock-summary-path", has_text="/v1/resources").first
    await expect(operation).to_be_visible(timeout=15_000)
    await operation.click()  # the operation opens: Swagger UI's own scripts run
    await expect(docs.locator(".opblock-body").first).to_be_visible()
    redoc = await visitors.open(site.url + "/redoc")
    await expect(redoc.locator("h1").first).to_contain_text("slotgraph", timeout=15_000)
    await expect(redoc.get_by_text("/v1/resources").first).to_be_attached()
    # ReDoc shows a "by Redocly" logo from its CDN, and hides it if it fails to load: the CSP
    # blocks it (before: fetched from cdn.redoc.ly on every visit), and that is all it blocks.
    await expect(redoc.locator("img[alt='redocly logo']")).to_have_count(0)
    await redoc.close()  # its console messages all delivered
    cdn = [p for p in visitors.problems if "'https://cdn.redoc.ly/redoc/logo-mini.svg'" in p]
    assert cdn, visitors.problems
    visitors.problems[:] = [p for p in visitors.problems if p not in cdn]
    for path in ("/docs", "/docs/oauth2-redirect", "/redoc"):
        r = await site.http.get(site.url + path)
        assert "frame-ancestors 'self'" in r.headers["content-security-policy"], path
