"""axe-core (the npm package pinned in tests/browser/package-lock.json) run inside a page.

The pages' CSP allows scripts only from our own /static files, so a `<script>` tag with axe's
source (`page.add_script_tag(content=...)`) is refused, as it should be. The test evaluates the
source through the DevTools protocol instead, which a page's CSP does not govern: the page
under test is unchanged and its CSP stays on for everything else.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from tests.chromium import need

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

_RUN = """async () => {
    const result = await axe.run(document, {resultTypes: ["violations"]});
    return result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary),
    }));
}"""


@cache
def _source() -> str:
    return AXE.read_text() + "\n;0"  # the value of the last statement, not a function


async def violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now, every impact."""
    need("axe-core", AXE.exists(), "run `make test`, or `npm ci` in tests/browser")
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(_source())
    return list(await page.evaluate(_RUN))


async def assert_accessible(page: Page, where: str) -> None:
    """No serious or critical axe violation on the page (minor and moderate are reported only
    in the failure message of a failing check)."""
    found = await violations(page)
    bad = [v for v in found if v["impact"] in BLOCKING]
    assert not bad, f"axe on {where} ({page.url}):\n" + "\n".join(
        f"- {v['impact']} {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"][:5])
        for v in found
    )
