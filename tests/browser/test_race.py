"""Two visitors, two browsers, one time: both press "Book" at once. One reads the confirmation,
the other the "just taken" page with the nearest free times, and nothing else is shown."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site, Visitors
from tests.browser.journey import Visitor, instant, next_weekday, text

pytestmark = [pytest.mark.browser, pytest.mark.system]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def outcome(v: Visitor) -> str:
    """Which page the visitor got after pressing Book: "confirmation" or "taken"."""
    either = v.hook("confirmation").or_(v.hook("taken"))
    await expect(either).to_be_visible()
    return str(await either.get_attribute("data-testid"))


async def test_two_visitors_book_the_same_time_at_once(site: Site, visitors: Visitors) -> None:
    rid = await site.resource("Dr. Berg")
    made = await site.booking_page([rid], title="Dental check-up")
    wednesday = next_weekday(2)
    start = instant(wednesday, "14:00")
    people = []
    for name in ("Ann", "Bo"):
        page = await visitors.open(site.page_url(made))
        v = Visitor(page)
        await v.show_week_of(wednesday)
        await v.choose(start)
        await v.fill_in(name, f"{name.lower()}@example.com")
        people.append(v)

    await asyncio.gather(*(v.book() for v in people))  # both forms sent together

    got = [await outcome(v) for v in people]
    assert sorted(got) == ["confirmation", "taken"], got
    winner, loser = people if got[0] == "confirmation" else people[::-1]
    assert await winner.reads("booking-status") == "Confirmed"

    # The other visitor: told plainly, offered the nearest free times, not the taken one.
    assert text(await loser.page.locator("main h1").inner_text()) == "This time was just taken"
    nearest = loser.hook("nearest").get_by_test_id("time")
    await expect(nearest.first).to_be_visible()
    offered = [await a.get_attribute("data-start") for a in await nearest.all()]
    assert start not in offered
    assert instant(wednesday, "13:30") in offered
    assert instant(wednesday, "14:30") in offered
    await loser.check("the 'just taken' page")

    # The taken time is gone from the page for everyone now.
    await loser.activate(loser.hook("back"))
    await loser.show_week_of(wednesday)
    await expect(loser.time_link(instant(wednesday, "14:30"))).to_be_visible()
    await expect(loser.time_link(start)).to_have_count(0)

    # And the server holds exactly one booking of the resource, at that time.
    found = (await site.call("GET", f"/v1/bookings?resource_id={rid}"))["data"]
    assert [(b["status"], at(b["start_time"])) for b in found] == [("confirmed", at(start))]
