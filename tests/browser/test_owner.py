"""A request (`confirm_decline`): the visitor asks, the owner answers from the link in their
email. Opening the link changes nothing; only the owner's button does."""

from __future__ import annotations

import asyncio
import email
import re
from email.message import EmailMessage
from email.policy import default

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site, Visitors
from tests.browser.journey import Visitor, instant, next_weekday

pytestmark = [pytest.mark.browser, pytest.mark.system]


async def email_to(site: Site, address: str) -> EmailMessage:
    """The first email the server wrote to `address` (its worker sends them; up to 60 s)."""
    for _ in range(600):
        for path in sorted(site.mail.glob("*.eml")) if site.mail.is_dir() else []:
            message = email.message_from_bytes(path.read_bytes(), policy=default)
            assert isinstance(message, EmailMessage)
            if address in str(message["To"]):
                return message
        await asyncio.sleep(0.1)
    raise AssertionError(f"no email to {address} in {site.mail}")


async def test_the_owner_confirms_a_request_from_the_email(site: Site, visitors: Visitors) -> None:
    rid = await site.resource("Dr. Berg", email="berg@example.com")
    made = await site.booking_page([rid], title="First visit", graph="confirm_decline")
    thursday = next_weekday(3)
    visitor = Visitor(await visitors.open(site.page_url(made)))
    await visitor.show_week_of(thursday)
    await visitor.choose(instant(thursday, "09:00"))
    await visitor.fill_in("Ann", "ann@example.com")
    await visitor.book()
    await expect(visitor.page.locator("main h1")).to_have_text("Your request has been sent")
    assert await visitor.reads("booking-status") == "Waiting"
    await visitor.activate(visitor.hook("manage-link"))
    manage = visitor.page.url

    body = (await email_to(site, "berg@example.com")).get_body(("plain",))
    assert body is not None
    link = re.search(r"/owner/\S+", body.get_content())
    assert link, body.get_content()
    owner = Visitor(await visitors.open(site.url + link.group(0)))
    await expect(owner.hook("owner")).to_have_text("A booking request")
    await owner.check("the owner's page")
    await visitor.page.goto(manage)
    assert await visitor.reads("booking-status") == "Waiting"  # opening the link did nothing

    await owner.activate(owner.hook("confirm-submit"))
    await expect(owner.hook("done")).to_have_text("The request is confirmed.")
    await expect(owner.hook("decided")).to_be_visible()
    await owner.check("the owner's page after confirming")
    await visitor.page.goto(manage)
    assert await visitor.reads("booking-status") == "Confirmed"
