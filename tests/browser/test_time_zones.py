"""A resource in Oslo, a visitor in New York, across the weeks when the clocks change.

The resource is open 09:00-10:00 Oslo time every day (one hour-long time a day). The United
States move their clocks on Sunday 14 March 2027, Norway on Sunday 28 March 2027: for the two
weeks between, Oslo is 5 hours ahead of New York instead of 6. The table below is written out by
hand (not computed): what a visitor in New York must read on the page, and the instant behind it.
"""

from __future__ import annotations

from datetime import date

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site, Visitors
from tests.browser.journey import DASH, Visitor, text

pytestmark = [pytest.mark.browser, pytest.mark.system]

NEW_YORK = "America/New_York"
# New York date: (time shown, the instant in UTC). 09:00 in Oslo every day.
SEEN_FROM_NEW_YORK = {
    "2027-03-08": ("3:00 AM", "2027-03-08T08:00:00+00:00"),  # Oslo UTC+1, New York UTC-5
    "2027-03-09": ("3:00 AM", "2027-03-09T08:00:00+00:00"),
    "2027-03-10": ("3:00 AM", "2027-03-10T08:00:00+00:00"),
    "2027-03-11": ("3:00 AM", "2027-03-11T08:00:00+00:00"),
    "2027-03-12": ("3:00 AM", "2027-03-12T08:00:00+00:00"),
    "2027-03-13": ("3:00 AM", "2027-03-13T08:00:00+00:00"),
    "2027-03-14": ("4:00 AM", "2027-03-14T08:00:00+00:00"),  # New York now UTC-4
    "2027-03-15": ("4:00 AM", "2027-03-15T08:00:00+00:00"),
    "2027-03-16": ("4:00 AM", "2027-03-16T08:00:00+00:00"),
    "2027-03-17": ("4:00 AM", "2027-03-17T08:00:00+00:00"),
    "2027-03-18": ("4:00 AM", "2027-03-18T08:00:00+00:00"),
    "2027-03-19": ("4:00 AM", "2027-03-19T08:00:00+00:00"),
    "2027-03-20": ("4:00 AM", "2027-03-20T08:00:00+00:00"),
    "2027-03-21": ("4:00 AM", "2027-03-21T08:00:00+00:00"),
    "2027-03-22": ("4:00 AM", "2027-03-22T08:00:00+00:00"),
    "2027-03-23": ("4:00 AM", "2027-03-23T08:00:00+00:00"),
    "2027-03-24": ("4:00 AM", "2027-03-24T08:00:00+00:00"),
    "2027-03-25": ("4:00 AM", "2027-03-25T08:00:00+00:00"),
    "2027-03-26": ("4:00 AM", "2027-03-26T08:00:00+00:00"),
    "2027-03-27": ("4:00 AM", "2027-03-27T08:00:00+00:00"),
    "2027-03-28": ("3:00 AM", "2027-03-28T07:00:00+00:00"),  # Oslo now UTC+2
}
EVERY_DAY_AT_NINE = {
    d: [["09:00", "10:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


async def read_week(v: Visitor) -> dict[str, tuple[str, str]]:
    """The week on screen: New York date -> (time shown, data-start), one time a day."""
    seen = {}
    for day in await v.hook("day").all():
        times = day.get_by_test_id("time")
        assert await times.count() == 1, await day.inner_text()
        on = str(await day.get_attribute("data-date"))
        seen[on] = (text(await times.inner_text()), str(await times.get_attribute("data-start")))
    return seen


async def read_three_weeks(v: Visitor) -> dict[str, tuple[str, str]]:
    seen = await read_week(v)
    for _ in range(2):
        await v.turn_week("week-next")
        seen |= await read_week(v)
    return seen


async def oslo_page(site: Site) -> tuple[str, dict[str, object]]:
    rid = await site.resource("Dr. Berg", "Europe/Oslo", EVERY_DAY_AT_NINE)
    return rid, await site.booking_page([rid], title="Video consultation", durations=["PT60M"])


async def test_a_new_york_visitor_reads_oslo_times_in_new_york_time_across_dst(
    site: Site, visitors: Visitors
) -> None:
    rid, made = await oslo_page(site)
    # The browser says New York; the page's script notices and shows the week in that zone.
    page = await visitors.open(site.page_url(made, "?week=2027-03-08"), timezone_id=NEW_YORK)
    v = Visitor(page)
    await expect(v.hook("slots")).to_have_attribute("data-tz", NEW_YORK)
    assert NEW_YORK in await v.reads("tz-note")
    assert "Europe/Oslo" in await v.reads("resource-zone")  # the resource's zone is named
    assert await read_three_weeks(v) == SEEN_FROM_NEW_YORK
    await v.check("the booking page in New York time")

    # Booking the Sunday the US clocks change: 4:00 AM in New York, 08:00 UTC.
    await v.turn_week("week-prev")
    await v.turn_week("week-prev")
    await v.choose("2027-03-14T08:00:00+00:00")
    await v.fill_in("Ann", "ann@example.com")
    await v.book()
    await expect(v.hook("confirmation")).to_be_visible()
    assert await v.reads("booking-when") == (
        f"Sunday, March 14, 2027, 4:00 AM {DASH} 5:00 AM (60 minutes)"
    )
    found = (await site.call("GET", f"/v1/bookings?resource_id={rid}"))["data"]
    assert [b["start_time"] for b in found] in (
        ["2027-03-14T08:00:00Z"],
        ["2027-03-14T08:00:00+00:00"],
    )


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
async def test_without_javascript_the_visitor_switches_the_zone_by_hand(
    site: Site, visitors: Visitors
) -> None:
    _, made = await oslo_page(site)
    page = await visitors.open(
        site.page_url(made, "?week=2027-03-08"), timezone_id=NEW_YORK, javascript=False
    )
    v = Visitor(page, javascript=False)
    # No script: the page's own zone (Oslo) until the visitor picks another.
    await expect(v.hook("slots")).to_have_attribute("data-tz", "Europe/Oslo")
    assert (await read_week(v))[date(2027, 3, 14).isoformat()][0] == "9:00 AM"
    await v.hook("tz-select").select_option(NEW_YORK)
    await v.activate(v.hook("week-form-submit"))
    await expect(v.hook("slots")).to_have_attribute("data-tz", NEW_YORK)
    assert await read_three_weeks(v) == SEEN_FROM_NEW_YORK
