"""A resource in Oslo, a visitor in New York, across the weeks when the clocks change.

The resource is open 09:00-10:00 Oslo time every day (one hour-long time a day). The United
States and Norway move their clocks on different Sundays, in March and in autumn: for the days
between, Oslo is 5 hours ahead of New York instead of 6. The table below is written out by hand
(not computed): what a visitor in New York must read on the page for three weeks around each
change, and the instant behind it. The test takes the first period that is still ahead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site, Visitors
from tests.browser.journey import DASH, Visitor, long_day, text

pytestmark = [pytest.mark.browser, pytest.mark.system]

NEW_YORK = "America/New_York"
# The Monday of three weeks; then, for Oslo's 09:00 on each of their 21 days, the hour (AM) a
# visitor in New York reads, and the hour in UTC.
PERIODS = [
    # US clocks move Sunday 14 March 2027, Norway's Sunday 28 March
    ("2027-03-08", "3333334 4444444 4444443", "8888888 8888888 8888887"),
    # Norway's clocks move back Sunday 31 October 2027, the US clocks Sunday 7 November
    ("2027-10-25", "3333334 4444443 3333333", "7777778 8888888 8888888"),
    ("2028-03-06", "3333334 4444444 4444443", "8888888 8888888 8888887"),  # 12 and 26 March
    ("2028-10-23", "3333334 4444443 3333333", "7777778 8888888 8888888"),  # 29 Oct, 5 Nov
    ("2029-03-05", "3333334 4444444 4444443", "8888888 8888888 8888887"),  # 11 and 25 March
    ("2029-10-22", "3333334 4444443 3333333", "7777778 8888888 8888888"),  # 28 Oct, 4 Nov
]


def period() -> tuple[date, dict[str, tuple[str, str]]]:
    """The first period at least a week ahead: its first Monday, and what New York reads."""
    soon = datetime.now(UTC).date() + timedelta(days=7)
    for monday, shown, utc in PERIODS:
        first = date.fromisoformat(monday)
        if first >= soon:
            days = [first + timedelta(days=i) for i in range(21)]
            hours = zip(shown.replace(" ", ""), utc.replace(" ", ""), strict=True)
            return first, {
                d.isoformat(): (f"{h}:00 AM", f"{d.isoformat()}T0{u}:00:00+00:00")
                for d, (h, u) in zip(days, hours, strict=True)
            }
    raise AssertionError("write out the next clock changes in PERIODS")


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
    first, expected = period()
    # The browser says New York; the page's script notices and shows the week in that zone.
    page = await visitors.open(site.page_url(made, f"?week={first}"), timezone_id=NEW_YORK)
    v = Visitor(page)
    await expect(v.hook("slots")).to_have_attribute("data-tz", NEW_YORK)
    assert NEW_YORK in await v.reads("tz-note")
    assert "Europe/Oslo" in await v.reads("resource-zone")  # the resource's zone is named
    assert await read_three_weeks(v) == expected
    await v.check("the booking page in New York time")

    # Booking the first Sunday, the day one of the two countries changes: 4:00 AM in New York.
    sunday = first + timedelta(days=6)
    shown, start = expected[sunday.isoformat()]
    assert shown == "4:00 AM"
    await v.turn_week("week-prev")
    await v.turn_week("week-prev")
    await v.choose(start)
    await v.fill_in("Ann", "ann@example.com")
    await v.book()
    await expect(v.hook("confirmation")).to_be_visible()
    assert await v.reads("booking-when") == (
        f"{long_day(sunday)}, 4:00 AM {DASH} 5:00 AM (60 minutes)"
    )
    found = (await site.call("GET", f"/v1/bookings?resource_id={rid}"))["data"]
    assert [b["start_time"] for b in found] == [start.replace("+00:00", "Z")]


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
async def test_without_javascript_the_visitor_switches_the_zone_by_hand(
    site: Site, visitors: Visitors
) -> None:
    _, made = await oslo_page(site)
    first, expected = period()
    page = await visitors.open(
        site.page_url(made, f"?week={first}"), timezone_id=NEW_YORK, javascript=False
    )
    v = Visitor(page, javascript=False)
    # No script: the page's own zone (Oslo) until the visitor picks another.
    await expect(v.hook("slots")).to_have_attribute("data-tz", "Europe/Oslo")
    assert (await read_week(v))[(first + timedelta(days=6)).isoformat()][0] == "9:00 AM"
    await v.hook("tz-select").select_option(NEW_YORK)
    await v.activate(v.hook("week-form-submit"))
    await expect(v.hook("slots")).to_have_attribute("data-tz", NEW_YORK)
    assert await read_three_weeks(v) == expected
