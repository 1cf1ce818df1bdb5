"""The whole journey in chromium: open the page, choose a time, fill in, book, read the
confirmation, open the manage link, reschedule, cancel. On a desktop and a phone, without
JavaScript, and by keyboard only; axe on every page on the way.

`SLOTGRAPH_UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/browser/test_journey.py -k sqlite`
rewrites the booking-*.png pictures in docs/screenshots/ (docs/booking-pages.md shows them).
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site, Visitors
from tests.browser.journey import DASH, Visitor, instant, long_day, next_weekday, text
from tests.chromium import keep

pytestmark = [pytest.mark.browser, pytest.mark.system]


# A dentist's week in Oslo: weekdays with a lunch break, every half hour.
DENTIST = {d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


async def journey(
    site: Site,
    visitors: Visitors,
    *,
    device: str = "desktop",
    javascript: bool = True,
    keyboard: bool = False,
    shots: bool = False,
) -> None:
    rid = await site.resource("Dr. Berg", hours=DENTIST, slot_step="PT30M")
    made = await site.booking_page(
        [rid], title="Dental check-up", description="Half an hour with Dr. Berg, Oslo."
    )
    page = await visitors.open(site.page_url(made), device=device, javascript=javascript)
    v = Visitor(page, keyboard=keyboard, javascript=javascript)
    await expect(v.hook("page-title")).to_have_text("Dental check-up")
    tuesday = next_weekday(1)
    await v.show_week_of(tuesday)
    await v.check("the booking page")
    if shots:
        await keep(page, f"booking-page-{device}.png", full_page=device == "desktop")

    # Tuesday 10:00 in Oslo; the visitor is in Oslo too, so that is what the page shows.
    start = instant(tuesday, "10:00")
    await expect(v.time_link(start)).to_have_text("10:00 AM")
    await v.choose(start)
    assert await v.reads("chosen-time") == (
        f"{long_day(tuesday)}, 10:00 AM {DASH} 10:30 AM (30 minutes)"
    )
    await v.check("the form")
    await v.fill_in("Ann Berg", "ann@example.com")
    await v.book()

    await expect(v.hook("confirmation")).to_be_visible()
    assert text(await page.locator("main h1").inner_text()) == "You are booked"
    booked = f"{long_day(tuesday)}, 10:00 AM {DASH} 10:30 AM (30 minutes)"
    assert await v.reads("booking-when") == booked
    assert await v.reads("booking-status") == "Confirmed"
    await v.check("the confirmation")
    if shots:
        await keep(page, f"booking-confirmation-{device}.png", full_page=device == "desktop")

    # The manage link: the same booking, and what may be done with it.
    await v.activate(v.hook("manage-link"))
    await expect(v.hook("manage")).to_have_text("Your booking")
    assert await v.reads("booking-when") == booked
    await v.check("the manage page")
    if shots:
        await keep(page, f"booking-manage-{device}.png", full_page=device == "desktop")
    async with page.expect_download() as download:
        await v.activate(v.hook("ics-link"))
    ics = (await (await download.value).path()).read_text()
    assert f"DTSTART:{instant(tuesday, '10:00')[:19].replace('-', '').replace(':', '')}Z" in ics

    # Reschedule to Wednesday 11:00; the old time is kept until the new one is confirmed.
    await v.activate(v.hook("reschedule-link"))
    await expect(v.hook("reschedule")).to_be_visible()
    assert (await v.reads("current-time")).startswith(f"Now booked: {long_day(tuesday)}, 10:00")
    wednesday = next_weekday(2)
    await v.show_week_of(wednesday)
    await v.check("the reschedule page")
    await v.choose(instant(wednesday, "11:00"), form="reschedule-form")
    assert await v.reads("chosen-time") == (
        f"{long_day(wednesday)}, 11:00 AM {DASH} 11:30 AM (30 minutes)"
    )
    await v.check("the new time")
    await v.activate(v.hook("reschedule-submit"))
    await expect(v.hook("done")).to_have_text("Your booking has been moved to the new time.")
    assert await v.reads("booking-when") == (
        f"{long_day(wednesday)}, 11:00 AM {DASH} 11:30 AM (30 minutes)"
    )
    await v.check("the manage page after the move")

    # Cancel: said plainly, nothing more to change.
    await v.activate(v.hook("cancel-submit"))
    await expect(v.hook("done")).to_have_text("Your booking is cancelled.")
    assert await v.reads("booking-status") == "Cancelled by you"
    await expect(v.hook("cancel-form")).to_have_count(0)
    await expect(v.hook("reschedule-link")).to_have_count(0)
    await v.check("the manage page after cancelling")

    # What the server holds: one booking, moved, cancelled by the customer.
    found = (await site.call("GET", f"/v1/bookings?resource_id={rid}"))["data"]
    assert [(b["status"], b["start_time"]) for b in found] == [
        ("cancelled_by_customer", instant(wednesday, "11:00").replace("+00:00", "Z"))
    ]


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_the_whole_journey(site: Site, visitors: Visitors, device: str) -> None:
    await journey(site, visitors, device=device, shots=site.server.backend == "sqlite")


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
async def test_the_whole_journey_without_javascript(site: Site, visitors: Visitors) -> None:
    await journey(site, visitors, javascript=False)


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
async def test_the_whole_journey_by_keyboard_only(site: Site, visitors: Visitors) -> None:
    await journey(site, visitors, keyboard=True)
