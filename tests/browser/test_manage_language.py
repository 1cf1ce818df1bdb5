"""The manage page's language form in chromium: a customer who booked on an English page picks
Deutsch, by mouse and by keyboard only, and reads the manage page in German afterwards (and the
booking's `locale` is `de`, so the emails follow); axe on the page before and after."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site, Visitors
from tests.browser.journey import Visitor, instant, next_weekday

pytestmark = [pytest.mark.browser, pytest.mark.system]


@pytest.mark.parametrize("keyboard", [False, True], ids=["mouse", "keyboard"])
async def test_the_customer_switches_the_manage_page_to_german(
    site: Site, visitors: Visitors, keyboard: bool
) -> None:
    rid = await site.resource("Dr. Berg")
    made = await site.booking_page([rid], title="Check-up")
    page = await visitors.open(site.page_url(made))
    v = Visitor(page, keyboard=keyboard)
    wednesday = next_weekday(2)
    await v.show_week_of(wednesday)
    await v.choose(instant(wednesday, "11:00"))
    await v.fill_in("Ann Berg", "ann@example.com")
    await v.book()
    await v.activate(v.hook("manage-link"))
    await expect(v.hook("manage")).to_have_text("Your booking")
    await v.check("the manage page in English")
    choice = page.locator("#locale")
    await expect(page.get_by_label("The language of this page and of your emails")).to_be_visible()
    await expect(choice).to_have_value("en")
    if keyboard:
        await v.focus(choice)
        await page.keyboard.press("ArrowUp")  # Deutsch is above English
    else:
        await choice.select_option("de")
    await expect(choice).to_have_value("de")
    await v.activate(v.hook("language-submit"))
    await expect(v.hook("manage")).to_have_text("Ihre Buchung")
    await expect(page.locator("html")).to_have_attribute("lang", "de")
    await expect(v.hook("done")).to_have_text(
        "Diese Seite und Ihre E-Mails sind jetzt in der gewählten Sprache."
    )
    await expect(v.hook("booking-status")).to_have_text("Bestätigt")
    await expect(choice).to_have_value("de")
    await v.check("the manage page in German")
    bookings = await site.call("GET", "/v1/bookings")
    (mine,) = [b for b in bookings["data"] if b["resource_id"] == rid]
    assert mine["locale"] == "de"
