"""Emails through a real SMTP server (aiosmtpd on loopback), sent by the worker from the outbox:
recipients, subjects, both parts, and the .ics parsed back with icalendar."""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.settings import Settings
from slotgraph.worker import Worker
from tests.api.conftest import Api, Clock, make_api
from tests.api.test_timekit import basic
from tests.conftest import clean
from tests.mailbox import Mailbox, Received, smtp_server

BASE = "https://book.example"
START = "2024-05-18T10:00:00Z"
END = "2024-05-18T11:00:00Z"
MANAGE = re.compile(re.escape(BASE) + r"/manage/(ct_[A-Za-z0-9_-]+)")


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


def mail_settings(mailbox: Mailbox, **extra: Any) -> Settings:
    return Settings(
        run_worker=False,
        smtp_url=mailbox.url,
        public_url=BASE,
        mail_from="Bookings <bookings@book.example>",
        **extra,
    )


@pytest.fixture
async def mail_api(engine: AsyncEngine, mailbox: Mailbox) -> AsyncIterator[Api]:
    await clean(engine)
    clock = Clock()
    http, created = await make_api(engine, clock, mail_settings(mailbox))
    # The emails' links are https:// (BASE): a visitor who follows one comes over HTTPS, and the
    # pages' CSRF cookie is then the Secure `__Host-` one, which a client keeps for HTTPS only.
    http.base_url = httpx.URL("https://test")
    async with http:
        yield Api(http, created.secret_key, created.public_key, clock, engine.dialect.name)


def worker_for(engine: AsyncEngine, api: Api, settings: Settings) -> Worker:
    return Worker(engine, settings, clock=api.clock, jitter=lambda: 0.0, worker_id="mail")


@pytest.fixture
def worker(engine: AsyncEngine, mail_api: Api, mailbox: Mailbox) -> Worker:
    return worker_for(engine, mail_api, mail_settings(mailbox))


async def drain(worker: Worker) -> None:
    for _ in range(20):
        if not await worker.run_once(calendars=False):
            return
    raise AssertionError("the worker did not settle")


async def resource(api: Api, **fields: Any) -> dict[str, Any]:
    return await api.resource(**{"email": "berg@clinic.example", "location": "Oslo", **fields})


def ann_booking(res: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The body of Ann's booking of the resource on 2024-05-18, 10:00-11:00 UTC (`fields` added
    or replaced)."""
    customer = {"name": "Ann", "email": "ann@example.com"}
    body = {"resource_id": res["resource_id"], "start_time": START, "end_time": END}
    return {**body, "customer": customer, **fields}


async def book_ann(api: Api, res: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Ann books the resource on 2024-05-18, 10:00-11:00 UTC."""
    return await api.book(**ann_booking(res, **fields))


def ics_event(received: Any) -> Any:
    cal = received.calendar()
    assert cal is not None
    (event,) = cal.walk("VEVENT")
    return cal, event


async def test_booked_rescheduled_cancelled_one_uid_rising_sequence(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    res = await resource(mail_api)
    b = await book_ann(mail_api, res)
    await drain(worker)
    (booked,) = mailbox.to("ann@example.com")
    (owner,) = mailbox.to("berg@clinic.example")
    assert booked.subject.startswith("Booked: Dr. Berg, Saturday 18 May 2024, 12:00")
    assert "Europe/Oslo" in booked.subject
    assert booked.mail_from == "bookings@book.example"
    assert "Your booking is confirmed." in booked.text()
    assert "Your booking is confirmed." in booked.html()
    assert owner.subject.startswith("New booking: Ann, Saturday 18 May 2024")
    assert owner.calendar() is None  # the .ics is the customer's
    assert MANAGE.search(owner.text()) is None
    cal, event = ics_event(booked)
    assert str(cal["METHOD"]) == "REQUEST"
    assert str(cal["X-WR-TIMEZONE"]) == "Europe/Oslo"
    assert str(event["UID"]) == b["booking_id"]
    assert int(event["SEQUENCE"]) == 0
    assert event.decoded("DTSTART").isoformat() == "2024-05-18T10:00:00+00:00"
    assert str(event["ATTENDEE"]) == "mailto:ann@example.com"
    assert str(event["DESCRIPTION"]) == "Times are shown in Europe/Oslo."

    # The manage link works on the API, and is not the create answer's token.
    match = MANAGE.search(booked.text())
    assert match is not None
    assert match.group(1) != b["customer_token"]
    assert f'href="{match.group(0)}"' in booked.html()
    r = await mail_api.as_key(match.group(1)).get(f"/v1/bookings/{b['booking_id']}")
    assert r.status_code == 200

    r = await mail_api.put(
        f"/v1/bookings/{b['booking_id']}",
        {"start_time": "2024-05-18T12:00:00Z", "end_time": "2024-05-18T13:00:00Z"},
    )
    assert r.status_code == 200, r.text
    await mail_api.put(f"/v1/bookings/{b['booking_id']}", {"details": "no email for this"})
    await mail_api.delete(f"/v1/bookings/{b['booking_id']}")
    await drain(worker)
    mails = mailbox.to("ann@example.com")
    assert [m.subject.split(":")[0] for m in mails] == ["Booked", "New time", "Cancelled"]
    events = [ics_event(m) for m in mails]
    assert {str(e["UID"]) for _, e in events} == {b["booking_id"]}
    sequences = [int(e["SEQUENCE"]) for _, e in events]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == 3
    assert [str(c["METHOD"]) for c, _ in events] == ["REQUEST", "REQUEST", "CANCEL"]
    assert events[1][1].decoded("DTSTART").isoformat() == "2024-05-18T12:00:00+00:00"
    assert "(was Saturday 18 May 2024, 12:00 to 13:00 (Europe/Oslo))" in mails[1].text()
    assert "14:00 to 15:00" in mails[1].subject
    assert str(events[2][1]["STATUS"]) == "CANCELLED"
    assert len(mailbox.to("berg@clinic.example")) == 1  # the owner hears of new bookings only


async def test_no_emails_with_notify_false_and_per_audience_app_settings(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    res = await resource(mail_api)
    await book_ann(mail_api, res, notify=False)
    await drain(worker)
    assert mailbox.received == []
    r = await mail_api.put("/v1/app", {"notifications": {"customer": False}})
    assert r.status_code == 200, r.text
    assert r.json()["notifications"]["owner"] is True
    await mail_api.book(
        resource_id=res["resource_id"],
        start_time="2024-05-19T10:00:00Z",
        end_time="2024-05-19T11:00:00Z",
        customer={"name": "Bo", "email": "bo@example.com"},
    )
    await drain(worker)
    assert [m.rcpt_tos for m in mailbox.received] == [["berg@clinic.example"]]


async def test_the_reminder_comes_once_before_the_start(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    res = await resource(mail_api)
    b = await book_ann(mail_api, res, reminder="PT24H")
    assert b["reminder"] == "P1D"
    await drain(worker)
    assert len(mailbox.to("ann@example.com")) == 1
    mail_api.clock.now = datetime.fromisoformat(START) - timedelta(hours=24, minutes=1)
    await drain(worker)
    assert len(mailbox.to("ann@example.com")) == 1  # not yet
    mail_api.clock.advance(timedelta(minutes=2))
    await drain(worker)
    await drain(worker)
    reminders = [m for m in mailbox.to("ann@example.com") if m.subject.startswith("Reminder")]
    assert len(reminders) == 1
    _, event = ics_event(reminders[0])
    assert str(event["UID"]) == b["booking_id"]
    assert MANAGE.search(reminders[0].text())


async def test_a_refused_email_is_retried_with_backoff_and_logged(
    mail_api: Api, worker: Worker, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    res = await resource(mail_api, email=None)
    mailbox.refuse = True
    await book_ann(mail_api, res)
    await drain(worker)
    assert mailbox.received == []
    async with engine.connect() as conn:
        attempts = (
            await conn.execute(text("SELECT attempt, status_code, error FROM delivery_attempts"))
        ).all()
        pending = (await conn.execute(text("SELECT status, attempts FROM deliveries"))).all()
    assert [(a[0], a[1]) for a in attempts] == [(1, 451)]
    assert "try again" in attempts[0][2]
    assert [tuple(p) for p in pending] == [("pending", 1)]
    mailbox.refuse = False
    mail_api.clock.advance(timedelta(seconds=4))
    await drain(worker)
    assert mailbox.received == []  # the first retry is 5 s after
    mail_api.clock.advance(timedelta(seconds=2))
    await drain(worker)
    assert len(mailbox.to("ann@example.com")) == 1


async def test_without_smtp_each_email_is_an_eml_file(
    engine: AsyncEngine, tmp_path: Path, api: Api
) -> None:
    settings = Settings(run_worker=False, mail_dir=str(tmp_path / "mail"), public_url=BASE)
    res = await resource(api)
    await book_ann(api, res)
    await drain(worker_for(engine, api, settings))
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    mails = [
        Received("", [], email.message_from_bytes(f.read_bytes(), policy=email.policy.default))
        for f in files
    ]
    by_to = {str(m.message["To"]): m for m in mails}
    assert set(by_to) == {"ann@example.com", "berg@clinic.example"}
    assert by_to["ann@example.com"].calendar() is not None
    assert MANAGE.search(by_to["ann@example.com"].text())


async def test_an_app_overrides_a_template_in_a_sandbox(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    templates = {
        "customer.booked.subject": "Welcome, {{ customer.name }}!",
        "customer.txt": "Dear {{ customer.name }}: {{ manage_url }}",
    }
    r = await mail_api.put("/v1/app", {"notifications": {"templates": templates}})
    assert r.status_code == 200, r.text
    res = await resource(mail_api, email=None)
    await book_ann(mail_api, res)
    await drain(worker)
    (mail,) = mailbox.to("ann@example.com")
    assert mail.subject == "Welcome, Ann!"
    assert mail.text().startswith("Dear Ann: https://book.example/manage/ct_")
    assert "Your booking is confirmed." in mail.html()  # the built-in HTML part


async def test_the_owner_confirms_from_the_email_and_a_get_alone_changes_nothing(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    res = await resource(mail_api)
    b = await book_ann(mail_api, res, graph="confirm_decline")
    await drain(worker)
    (requested,) = mailbox.to("ann@example.com")
    (owner,) = mailbox.to("berg@clinic.example")
    assert requested.subject.startswith("Requested: Dr. Berg")
    assert owner.subject.startswith("Please confirm: Ann")
    link = re.search(re.escape(BASE) + r"/owner/(ot_[A-Za-z0-9_-]+)", owner.text())
    assert link is not None
    assert f'href="{link.group(0)}"' in owner.html()
    path = f"/owner/{link.group(1)}"
    # A mail scanner follows every link it sees, with GET (and HEAD): nothing changes.
    for _ in range(2):
        page = await mail_api.http.get(path)
        assert page.status_code == 200
        assert 'data-testid="confirm-form"' in page.text
    assert (await mail_api.http.get(f"{path}/confirm")).status_code == 405
    assert (await mail_api.get(f"/v1/bookings/{b['booking_id']}")).json()["status"] == "tentative"
    # The owner token is not a customer token, and a POST without the form's CSRF token fails.
    assert (
        await mail_api.as_key(link.group(1)).get(f"/v1/bookings/{b['booking_id']}")
    ).status_code == 401
    assert (await mail_api.http.post(f"{path}/confirm", data={"x": "1"})).status_code == 403
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    r = await mail_api.http.post(f"{path}/confirm", data={"csrf_token": csrf.group(1)})
    assert r.status_code == 303, r.text
    assert (await mail_api.get(f"/v1/bookings/{b['booking_id']}")).json()["status"] == "confirmed"
    done = await mail_api.http.get(r.headers["location"])
    assert 'data-testid="decided"' in done.text
    r = await mail_api.http.post(f"{path}/decline", data={"csrf_token": csrf.group(1)})
    assert r.status_code == 409  # answered already
    await drain(worker)
    mails = mailbox.to("ann@example.com")
    assert [m.subject.split(":")[0] for m in mails] == ["Requested", "Confirmed"]
    assert {str(ics_event(m)[1]["UID"]) for m in mails} == {b["booking_id"]}
    assert len(mailbox.to("berg@clinic.example")) == 1
    assert (await mail_api.http.get("/owner/ot_not-a-token")).status_code == 404


async def test_the_owner_is_not_offered_to_decide_a_request_that_has_expired(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    # A request nobody answered before it started expires (its graph's timer). The owner's
    # page changes nothing when read, so it still shows the request; before, with Confirm and
    # Decline, each of which was refused (the timer applied first).
    res = await resource(mail_api)
    await book_ann(mail_api, res, graph="confirm_decline")
    await drain(worker)
    (owner,) = mailbox.to("berg@clinic.example")
    link = re.search(re.escape(BASE) + r"/owner/(ot_[A-Za-z0-9_-]+)", owner.text())
    assert link is not None
    path = f"/owner/{link.group(1)}"
    page = await mail_api.http.get(path)
    assert 'data-testid="confirm-form"' in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    mail_api.clock.now = datetime.fromisoformat(START) + timedelta(minutes=1)
    page = await mail_api.http.get(path)
    assert page.status_code == 200
    assert 'data-testid="confirm-form"' not in page.text
    assert 'data-testid="decline-form"' not in page.text
    r = await mail_api.http.post(f"{path}/confirm", data={"csrf_token": csrf.group(1)})
    assert r.status_code == 409, r.text


async def test_the_email_targets_are_not_webhooks(mail_api: Api, engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        targets = (
            await conn.execute(text("SELECT id, format FROM webhook_endpoints ORDER BY format"))
        ).all()
    assert [t[1] for t in targets] == ["email:customer", "email:owner"]  # made with the app
    assert (await mail_api.get("/v1/webhooks")).json()["data"] == []
    for target_id, _ in targets:
        webhook_id = str(target_id) if len(str(target_id)) == 36 else str(uuid.UUID(target_id))
        assert (await mail_api.get(f"/v1/webhooks/{webhook_id}")).status_code == 404


async def test_the_public_key_cannot_silence_a_bookings_emails(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    # A customer booking through the widget (public key) may not send `notify: false`: it would
    # silence the owner's "New booking" email too. 403 with the secret key named, nothing booked.
    res = await resource(mail_api)
    public = mail_api.as_key(mail_api.public_key)
    r = await public.post("/v1/bookings", ann_booking(res, notify=False))
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "forbidden"
    assert "notify" in r.json()["detail"]
    assert "secret key" in r.json()["detail"]
    assert (await mail_api.get("/v1/bookings")).json()["data"] == []
    # /v2 (the Timekit adapter) has no such field: the same request there is refused too.
    tk = {
        "resource_id": res["resource_id"],
        "start": START,
        "end": END,
        "customer": {"name": "Ann", "email": "ann@example.com"},
        "notify": False,
    }
    r = await mail_api.http.post("/v2/bookings", json=tk, headers=basic(mail_api.public_key))
    assert r.status_code == 422, r.text
    assert list(r.json()["errors"]) == ["notify"]
    assert (await mail_api.get("/v1/bookings")).json()["data"] == []
    # `notify: true` is the default and allowed; both the customer and the owner hear of it.
    r = await public.post("/v1/bookings", ann_booking(res, notify=True))
    assert r.status_code == 201, r.text
    await drain(worker)
    assert len(mailbox.to("ann@example.com")) == 1
    assert len(mailbox.to("berg@clinic.example")) == 1
