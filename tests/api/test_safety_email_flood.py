"""The public key is no email cannon: an app sends one inbox at most
SLOTGRAPH_CUSTOMER_EMAILS_PER_HOUR customer emails in a sliding hour (ADR 0020).

Before, booking and cancelling one slot in a loop with the public key had the server email any
inbox about 1,200 times a minute, greeting it with a name the visitor chose (docs/security.md).
The booking itself is unaffected; the surplus email is recorded as suppressed, not sent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.worker import Worker
from tests.api.conftest import Api, make_api
from tests.api.test_emails import (
    ann_booking,
    drain,
    mail_api,
    mail_settings,
    mailbox,
    resource,
    worker_for,
)
from tests.mailbox import Mailbox

__all__ = ["mail_api", "mailbox"]  # test_emails.py's fixtures, used here

LIMIT = 3
VICTIM = "victim@example.com"
# One inbox spelt as a visitor may spell it; each spelling is a client of its own.
SPELLINGS = [VICTIM, "Victim@Example.COM", "victim+1@example.com", "VICTIM+x@example.com"]
SPAM = "Win a prize at https://evil.example/ " * 5


async def book_and_cancel(api: Api, res: dict[str, object], address: str) -> None:
    """With the public key: book the slot as `address`, then cancel with the customer token."""
    public = api.as_key(api.public_key)
    r = await public.post(
        "/v1/bookings", ann_booking(res, customer={"name": SPAM[:200], "email": address})
    )
    assert r.status_code == 201, r.text
    b = r.json()
    token = api.as_key(b["customer_token"])
    r = await token.put(f"/v1/bookings/{b['booking_id']}/cancel_by_customer")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled_by_customer"


async def suppressed(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM delivery_attempts WHERE response_body LIKE 'suppressed:%'")
        )
    return int(found or 0)


async def test_one_inbox_gets_the_limit_and_others_still_get_theirs(
    mail_api: Api,
    mailbox: Mailbox,
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = worker_for(engine, mail_api, mail_settings(mailbox, customer_emails_per_hour=LIMIT))
    res = await resource(mail_api)
    for i in range(8):  # 16 customer emails asked for: 8 "Booked", 8 "Cancelled"
        await book_and_cancel(mail_api, res, SPELLINGS[i % len(SPELLINGS)])
    bo = {"name": "Bo", "email": "bo@example.com"}
    later = {"start_time": "2024-05-18T12:00:00Z", "end_time": "2024-05-18T13:00:00Z"}
    r = await mail_api.as_key(mail_api.public_key).post(
        "/v1/bookings", ann_booking(res, customer=bo, **later)
    )
    assert r.status_code == 201, r.text
    with caplog.at_level(logging.WARNING, logger="slotgraph.mail"):
        await drain(worker)

    victim = [r for r in mailbox.received if r.rcpt_tos[0].lower().startswith("victim")]
    assert len(victim) == LIMIT
    assert {r.subject.split(":")[0] for r in victim} <= {"Booked", "Cancelled"}
    (bos,) = mailbox.to("bo@example.com")
    assert bos.subject.startswith("Booked:")
    # The owner hears of every booking: the owner's inbox is the app's own (ADR 0020).
    assert len(mailbox.to("berg@clinic.example")) == 9
    # Every booking was made; the surplus is on record, and said once in the log.
    bookings = (await mail_api.get("/v1/bookings", limit=50)).json()["data"]
    assert sorted(b["status"] for b in bookings) == ["cancelled_by_customer"] * 8 + ["confirmed"]
    assert await suppressed(engine) == 16 - LIMIT
    said = [r for r in caplog.records if "customer emails in the last hour" in r.getMessage()]
    assert len(said) == 1
    assert VICTIM not in said[0].getMessage()

    # An hour after the first, the inbox's next email goes again: the window slides.
    mail_api.clock.advance(timedelta(minutes=61))
    await book_and_cancel(mail_api, res, VICTIM)
    with caplog.at_level(logging.WARNING, logger="slotgraph.mail"):
        await drain(worker)
    victim = [r for r in mailbox.received if r.rcpt_tos[0].lower().startswith("victim")]
    assert len(victim) == LIMIT + 2
    assert await suppressed(engine) == 16 - LIMIT


async def test_two_workers_at_once_send_no_more_than_the_limit(
    mail_api: Api, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    """Two workers (two processes' worth: each its own connections) sending to one inbox at once
    take turns on its row: the limit holds."""
    settings = mail_settings(mailbox, customer_emails_per_hour=LIMIT)
    res = await resource(mail_api, email=None)
    for _ in range(6):
        await book_and_cancel(mail_api, res, VICTIM)
    workers = [
        Worker(engine, settings, clock=mail_api.clock, jitter=lambda: 0.0, worker_id=f"mail-{i}")
        for i in range(2)
    ]
    mailbox.delay = 0.05  # sends overlap
    await asyncio.gather(*(drain(w) for w in workers))
    assert len(mailbox.to(VICTIM)) == LIMIT
    assert await suppressed(engine) == 12 - LIMIT


async def inboxes_counted(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM email_quotas")) or 0)


async def test_an_inbox_left_alone_for_an_hour_is_forgotten(
    mail_api: Api, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    """Bounded state: the worker's chores drop the count of an inbox no email went to for an
    hour; a busy inbox's count stays."""
    worker = worker_for(engine, mail_api, mail_settings(mailbox, customer_emails_per_hour=LIMIT))
    res = await resource(mail_api, email=None)
    await book_and_cancel(mail_api, res, VICTIM)
    await drain(worker)
    assert len(mailbox.to(VICTIM)) == 2
    assert await inboxes_counted(engine) == 1
    mail_api.clock.advance(timedelta(minutes=59))
    await worker.run_once(calendars=False)
    assert await inboxes_counted(engine) == 1
    mail_api.clock.advance(timedelta(minutes=2))
    await worker.run_once(calendars=False)
    assert await inboxes_counted(engine) == 0


async def test_one_apps_flood_holds_back_no_other_apps_emails(
    mail_api: Api, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    """The count is per app (ADR 0020, "Per app, not per server"): a public key that uses up its
    app's hour of an inbox leaves another app's email to that customer untouched; each owner
    sees its own emails' fate in GET /v1/emails."""
    worker = worker_for(engine, mail_api, mail_settings(mailbox, customer_emails_per_hour=LIMIT))
    res = await resource(mail_api, email=None)
    for _ in range(3):
        await book_and_cancel(mail_api, res, VICTIM)
    http, created = await make_api(engine, mail_api.clock)
    async with http:
        other = Api(http, created.secret_key, created.public_key, mail_api.clock, "")
        theirs = await resource(other, email=None)
        await drain(worker)
        assert len(mailbox.to(VICTIM)) == LIMIT
        r = await other.as_key(other.public_key).post(
            "/v1/bookings", ann_booking(theirs, customer={"name": "V", "email": VICTIM})
        )
        assert r.status_code == 201, r.text
        await drain(worker)
        assert len(mailbox.to(VICTIM)) == LIMIT + 1
        (seen,) = (await other.get("/v1/emails")).json()["data"]
        assert (seen["kind"], seen["status"]) == ("booked", "sent")
    flooded = (await mail_api.get("/v1/emails")).json()["data"]
    assert sorted(e["status"] for e in flooded) == ["sent"] * LIMIT + ["suppressed"] * 3
