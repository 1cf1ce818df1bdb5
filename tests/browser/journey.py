"""What a visitor does on a booking page, by mouse or by keyboard only, and what they read.

The pages' hooks (`data-testid`, listed at the top of each template in src/slotgraph/web/
templates/) find things; assertions read the text a person reads.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.async_api import Locator, Page, expect

from tests.browser.axe import assert_accessible

OSLO = ZoneInfo("Europe/Oslo")
DASH = "\u2013"  # the en dash between two times, as Babel writes a range
TABS = 150  # more Tab presses than any page of the journey has stops before its target


def text(value: str) -> str:
    """Babel's times use narrow no-break spaces ("10:00\u202fAM"): compare as plain spaces."""
    return " ".join(value.replace("\u202f", " ").replace("\xa0", " ").split())


def next_weekday(weekday: int, weeks: int = 1) -> date:
    """A weekday (0 = Monday) of a coming week in Oslo: far enough ahead to be free."""
    today = datetime.now(OSLO).date()
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=weeks)
    return monday + timedelta(days=weekday)


def long_day(day: date) -> str:
    """ "Tuesday, December 8, 2026": how the English pages write a day."""
    return f"{day:%A}, {day:%B} {day.day}, {day.year}"


def instant(day: date, hhmm: str, zone: ZoneInfo = OSLO) -> str:
    """The UTC instant of a wall-clock time, as the pages write it in `data-start`."""
    h, m = map(int, hhmm.split(":"))
    at = datetime(day.year, day.month, day.day, h, m, tzinfo=zone)
    return at.astimezone(ZoneInfo("UTC")).isoformat()


# The innermost elements that reach past the right edge of the screen, for a failure message.
_OVERFLOWING = """w => [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > w && ![...e.children].some(
        c => c.getBoundingClientRect().right > w))
    .map(e => e.tagName + " " + e.getBoundingClientRect().right + " " + e.textContent.slice(0, 80))
"""


class Visitor:
    """One person on one page: `keyboard` means no mouse at all (Tab, Shift+Tab, Enter, typing)."""

    def __init__(self, page: Page, *, keyboard: bool = False, javascript: bool = True) -> None:
        self.page = page
        self.keyboard = keyboard
        self.javascript = javascript

    def hook(self, name: str) -> Locator:
        return self.page.get_by_test_id(name)

    async def focus(self, target: Locator) -> None:
        """Tab until `target` has the focus, and check that the focus can be seen."""
        await expect(target).to_be_visible()
        for _ in range(TABS):
            await self.page.keyboard.press("Tab")
            if await target.evaluate("el => el === document.activeElement"):
                shown = await target.evaluate(
                    "el => { const s = getComputedStyle(el);"
                    " return s.outlineStyle !== 'none' && s.outlineWidth !== '0px'"
                    " || s.boxShadow !== 'none'; }"
                )
                assert shown, f"no visible focus on {target}"
                return
        raise AssertionError(f"{TABS} Tab presses did not reach {target}")

    async def activate(self, target: Locator) -> None:
        """Follow a link or press a button."""
        if self.keyboard:
            await self.focus(target)
            await self.page.keyboard.press("Enter")
        else:
            await target.click()

    async def type_into(self, target: Locator, value: str) -> None:
        if self.keyboard:
            await self.focus(target)
            await self.page.keyboard.type(value)
        else:
            await target.fill(value)

    async def check(self, where: str) -> None:
        """What every page of the journey must be: loaded, as wide as the screen at most, and
        accessible. axe needs scripts
        (its timers do not run in a page without JavaScript); the server sends the same HTML
        either way, and the journeys with JavaScript check every page."""
        await expect(self.page.locator("main h1")).to_be_visible()
        await self.page.wait_for_load_state("load")  # its stylesheet applied, not only its HTML
        screen = self.page.viewport_size
        assert screen is not None
        wide = await self.page.evaluate("document.documentElement.scrollWidth")
        assert wide <= screen["width"], f"{where} is {wide} px wide on a {screen} screen: " + str(
            await self.page.evaluate(_OVERFLOWING, screen["width"])
        )
        if self.javascript:
            await assert_accessible(self.page, where)

    # -- the steps of the journey ----------------------------------------------------------------

    def time_link(self, start: str) -> Locator:
        return self.page.locator(f'[data-testid=time][data-start="{start}"]')

    async def show_week_of(self, day: date) -> None:
        """Go forward week by week (the page's own links) until `day` is on screen."""
        target = self.page.locator(f'[data-testid=day][data-date="{day.isoformat()}"]')
        for _ in range(8):
            if await target.count():
                return
            await self.turn_week("week-next")
        raise AssertionError(f"{day} is not within 8 weeks of the page")

    async def turn_week(self, link: str) -> None:
        """Follow `week-next` or `week-prev`, and wait until the other week is shown (with
        JavaScript it comes in place, without a new page)."""
        title = await self.hook("week-title").inner_text()
        await self.activate(self.hook(link))
        await expect(self.hook("week-title")).not_to_have_text(title)

    async def choose(self, start: str, form: str = "booking-form") -> None:
        """Pick the free time that starts at `start` (UTC, ISO 8601) on the week shown."""
        await self.activate(self.time_link(start))
        await expect(self.hook(form)).to_be_visible()

    async def fill_in(self, name: str, email: str) -> None:
        await self.type_into(self.page.locator("#name"), name)
        await self.type_into(self.page.locator("#email"), email)

    async def book(self) -> None:
        await self.activate(self.hook("book-submit"))

    async def reads(self, hook: str) -> str:
        return text(await self.hook(hook).inner_text())
