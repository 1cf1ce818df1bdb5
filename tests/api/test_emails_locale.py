"""The customer's emails speak the locale the booking was made in: a booking made on a German
page, or on the API with `"locale": "de"`, gets German emails (subject, text and HTML parts,
dates by Babel in the resource's zone), through a real SMTP server; English stays the default;
an unknown locale is 422; the owner's stay English; an app's own templates keep working (and
may translate with `_()`).

The German expectations are written out here (docs/emails.md), not read from the catalogue.
"""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.settings import Settings
from slotgraph.worker import Worker
from tests.api.conftest import Api
from tests.api.test_emails import (
    BASE,
    MANAGE,
    book_ann,
    drain,
    mail_api,
    mailbox,
    resource,
    worker,
    worker_for,
)
from tests.mailbox import Mailbox, Received
from tests.web.pages import Doc, make_page

__all__ = ["mail_api", "mailbox", "worker"]  # test_emails.py's fixtures, used here

# The page's fifth free time: Wednesday 1 May 2024, 10:00 UTC, 12:00 to 12:30 in Oslo.
START = "2024-05-01T10:00:00Z"


async def book_on_page(http: httpx.AsyncClient, slug: str = "dr-berg") -> Doc:
    page = Doc((await http.get(f"/book/{slug}")).text)
    form = Doc((await http.get(page.all("time")[4]["href"])).text).form("booking-form")
    data = {**form["fields"], "name": "Anna", "email": "anna@example.com"}
    r = await http.post(f"/book/{slug}", data=data)
    assert r.status_code == 201, r.text
    return Doc(r.text)


async def german_page(api: Api, **fields: Any) -> None:
    await make_page(api, locale="de", **fields)
    room = (await api.get("/v1/resources")).json()["data"][0]
    r = await api.put(
        f"/v1/resources/{room['resource_id']}", {"email": "berg@clinic.example", "location": "Oslo"}
    )
    assert r.status_code == 200, r.text


def german_confirmation(mail: Received, *, subject: str, name: str) -> str:
    """A booking's confirmation in German (subject, language, greeting, first sentence, the HTML
    part's language, the .ics description); its text part, for more."""
    assert mail.subject == subject
    assert mail.message["Content-Language"] == "de"
    text = mail.text().replace("\r\n", "\n")
    assert text.startswith(f"Hallo {name},\n")
    assert "Ihre Buchung ist bestätigt." in text
    assert '<html lang="de">' in mail.html()
    calendar = mail.calendar()
    assert calendar is not None
    (event,) = calendar.walk("VEVENT")
    assert str(event["DESCRIPTION"]) == "Die Zeiten sind in Europe/Oslo angegeben."
    return text


async def cancelled_in_german(api: Api, worker: Worker, mailbox: Mailbox, booking_id: str) -> None:
    """Cancel Ann's booking of Dr. Berg (12:00 in Oslo): her cancellation email is German."""
    r = await api.delete(f"/v1/bookings/{booking_id}")
    assert r.status_code == 200, r.text
    await drain(worker)
    cancelled = mailbox.to("ann@example.com")[-1]
    assert cancelled.subject.startswith("Abgesagt: Dr. Berg, Samstag, 18. Mai 2024, 12:00")


async def test_a_booking_from_the_german_page_gets_german_emails(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    await german_page(mail_api)
    confirmation = await book_on_page(mail_api.http)
    await drain(worker)
    (booked,) = mailbox.to("anna@example.com")
    text = german_confirmation(
        booked,
        subject="Gebucht: Room 1, Mittwoch, 1. Mai 2024, 12:00 bis 12:30 (Europe/Oslo)",
        name="Anna",
    )
    assert "Wann:  Mittwoch, 1. Mai 2024, 12:00 bis 12:30 (Europe/Oslo)" in text
    assert "Wo: Oslo" in text
    assert "Buchung ansehen, verschieben oder absagen:" in text
    html = booked.html()
    assert "<p>Hallo Anna,</p>" in html
    assert ">Wann</th>" in html
    assert "Buchung ansehen, verschieben oder absagen</a>" in html
    assert "Hello" not in text + html
    # The calendar file speaks German too, from the manage page's download as in the email.
    download = await mail_api.http.get(f"{confirmation.one('manage-link')['href']}/booking.ics")
    assert download.status_code == 200, download.text
    assert "Die Zeiten sind in Europe/Oslo angegeben." in download.text.replace("\r\n ", "")
    # The owner's email stays in English.
    (owner,) = mailbox.to("berg@clinic.example")
    assert owner.subject.startswith("New booking: Anna, Wednesday 1 May 2024, 12:00")

    # A new time from the manage link, then a cancellation: German too, the old time named.
    manage_url = confirmation.one("manage-link")["href"]
    week = Doc((await mail_api.http.get(f"{manage_url}/reschedule?week=2024-05-02")).text)
    later = next(t for t in week.all("time") if t["data-start"] == "2024-05-02T12:00:00+00:00")
    choice = Doc((await mail_api.http.get(later["href"])).text).form("reschedule-form")
    r = await mail_api.http.post(choice["attrs"]["action"], data=choice["fields"])
    assert r.status_code == 303, r.text
    await drain(worker)
    moved = mailbox.to("anna@example.com")[-1]
    assert moved.subject == (
        "Neuer Termin: Room 1, Donnerstag, 2. Mai 2024, 14:00 bis 14:30 (Europe/Oslo)"
    )
    assert "Ihre Buchung hat einen neuen Termin." in moved.text().replace("\r\n", "\n")
    assert "(bisher Mittwoch, 1. Mai 2024, 12:00 bis 12:30 (Europe/Oslo))" in moved.text().replace(
        "\r\n", "\n"
    )
    assert ">Bisher</th>" in moved.html()
    manage = Doc((await mail_api.http.get(manage_url)).text).form("cancel-form")
    r = await mail_api.http.post(manage["attrs"]["action"], data=manage["fields"])
    assert r.status_code == 303, r.text
    await drain(worker)
    cancelled = mailbox.to("anna@example.com")[-1]
    assert cancelled.subject.startswith("Abgesagt: Room 1, Donnerstag, 2. Mai 2024, 14:00")
    assert "Ihre Buchung ist abgesagt." in cancelled.html()


async def test_the_reminder_speaks_german_too(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    await german_page(mail_api, reminder="PT30M")
    await book_on_page(mail_api.http)
    mail_api.clock.now = datetime.fromisoformat(START) - timedelta(minutes=29)
    await drain(worker)
    await drain(worker)
    reminders = [m for m in mailbox.to("anna@example.com") if m.subject.startswith("Erinnerung")]
    assert len(reminders) == 1, [m.subject for m in mailbox.to("anna@example.com")]
    assert reminders[0].subject == (
        "Erinnerung: Room 1, Mittwoch, 1. Mai 2024, 12:00 bis 12:30 (Europe/Oslo)"
    )
    assert "Eine Erinnerung an Ihre Buchung." in reminders[0].text().replace("\r\n", "\n")


async def test_english_pages_and_the_api_stay_english(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    await make_page(mail_api)  # locale "en", the default
    await book_on_page(mail_api.http)
    room = (await mail_api.get("/v1/resources")).json()["data"][0]["resource_id"]
    made = await mail_api.book(
        resource_id=room,
        start_time="2024-05-03T10:00:00Z",
        end_time="2024-05-03T11:00:00Z",
        customer={"name": "Cy", "email": "cy@example.com"},
    )
    assert made["locale"] is None  # none given: English
    await drain(worker)
    (page_mail,) = mailbox.to("anna@example.com")
    assert page_mail.subject == (
        "Booked: Room 1, Wednesday 1 May 2024, 12:00 to 12:30 (Europe/Oslo)"
    )
    assert page_mail.text().replace("\r\n", "\n").startswith("Hello Anna,\n")
    assert '<html lang="en">' in page_mail.html()
    (api_mail,) = mailbox.to("cy@example.com")
    assert api_mail.subject == "Booked: Room 1, Friday 3 May 2024, 12:00 to 13:00 (Europe/Oslo)"
    assert api_mail.message["Content-Language"] == "en"


async def test_an_api_booking_given_a_german_locale_gets_german_emails(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    res = await resource(mail_api)
    made = await book_ann(mail_api, res, locale="de")
    assert made["locale"] == "de"
    shown = (await mail_api.get(f"/v1/bookings/{made['booking_id']}")).json()
    assert shown["locale"] == "de"
    await drain(worker)
    (booked,) = mailbox.to("ann@example.com")
    german_confirmation(
        booked,
        subject="Gebucht: Dr. Berg, Samstag, 18. Mai 2024, 12:00 bis 13:00 (Europe/Oslo)",
        name="Ann",
    )
    # The manage link's page and its calendar download speak it too.
    link = MANAGE.search(booked.text())
    assert link is not None
    page = await mail_api.http.get(f"/manage/{link.group(1)}")
    assert page.status_code == 200, page.text
    assert '<html lang="de"' in page.text
    download = await mail_api.http.get(f"/manage/{link.group(1)}/booking.ics")
    assert download.status_code == 200, download.text
    assert "Die Zeiten sind in Europe/Oslo angegeben." in download.text.replace("\r\n ", "")
    # The owner's email stays in English.
    (owner,) = mailbox.to("berg@clinic.example")
    assert owner.subject.startswith("New booking: Ann, Saturday 18 May 2024, 12:00")
    # Its cancellation is German too.
    await cancelled_in_german(mail_api, worker, mailbox, made["booking_id"])


def assert_locale_refused(r: httpx.Response, bad: object) -> None:
    """A 422 problem that names the body's `locale`, and nothing else."""
    assert r.status_code == 422, (bad, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "validation_error"
    assert [e["field"] for e in problem["errors"]] == ["locale"], problem
    assert problem["errors"][0]["loc"] == ["body", "locale"]


async def test_an_unknown_locale_is_422_and_books_nothing(api: Api) -> None:
    res = await api.resource()
    for bad in ("xx_YY", "klingon", "de_", "", 7):
        r = await api.post(
            "/v1/bookings",
            {
                "resource_id": res["resource_id"],
                "start_time": "2024-05-18T10:00:00Z",
                "end_time": "2024-05-18T11:00:00Z",
                "locale": bad,
            },
        )
        assert_locale_refused(r, bad)
    assert (await api.get("/v1/bookings")).json()["data"] == []


async def test_an_app_template_keeps_working_in_german(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    templates = {
        "customer.booked.subject": "Willkommen, {{ customer.name }}! {{ when }}",
        "customer.txt": '{{ _("Hello %(name)s,", name=customer.name) }} {{ manage_url }}',
    }
    r = await mail_api.put("/v1/app", {"notifications": {"templates": templates}})
    assert r.status_code == 200, r.text
    await german_page(mail_api)
    await book_on_page(mail_api.http)
    await drain(worker)
    (mail,) = mailbox.to("anna@example.com")
    assert mail.subject == (
        "Willkommen, Anna! Mittwoch, 1. Mai 2024, 12:00 bis 12:30 (Europe/Oslo)"
    )
    assert (
        mail.text().replace("\r\n", "\n").startswith("Hallo Anna, https://book.example/manage/ct_")
    )
    assert "Ihre Buchung ist bestätigt." in mail.html()  # the built-in HTML part, in German


async def test_without_smtp_the_eml_file_is_german(
    engine: AsyncEngine, tmp_path: Path, api: Api
) -> None:
    settings = Settings(run_worker=False, mail_dir=str(tmp_path / "mail"), public_url=BASE)
    await make_page(api, locale="de_AT")  # Austrian German: the German catalogue, Babel's de_AT
    await book_on_page(api.http)
    await drain(worker_for(engine, api, settings))
    (file,) = sorted((tmp_path / "mail").glob("*.eml"))
    mail = Received(
        "", [], email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
    )
    assert mail.subject == "Gebucht: Room 1, Mittwoch, 1. Mai 2024, 12:00 bis 12:30 (Europe/Oslo)"
    assert mail.message["Content-Language"] == "de-AT"
    assert mail.text().replace("\r\n", "\n").startswith("Hallo Anna,\n")


async def test_put_changes_the_locale_and_the_emails_after_it_speak_it(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    res = await resource(mail_api)
    made = await book_ann(mail_api, res)
    assert made["locale"] is None
    await drain(worker)
    (booked,) = mailbox.to("ann@example.com")
    assert booked.subject.startswith("Booked: Dr. Berg, Saturday 18 May 2024, 12:00")
    path = f"/v1/bookings/{made['booking_id']}"
    r = await mail_api.put(path, {"locale": "de"})
    assert r.status_code == 200, r.text
    assert r.json()["locale"] == "de"
    assert r.json()["version"] == made["version"] + 1
    assert (await mail_api.get(path)).json()["locale"] == "de"
    (change,) = [t for t in (await mail_api.get(f"{path}/history")).json()["data"][1:]]
    assert (change["action"], change["meta"]["changed"]) == ("update", ["locale"])
    # Left out or null: kept.
    r = await mail_api.put(path, {"details": "Bring the X-rays", "locale": None})
    assert r.status_code == 200, r.text
    assert r.json()["locale"] == "de"
    await cancelled_in_german(mail_api, worker, mailbox, made["booking_id"])


async def test_the_customer_token_switches_its_emails_to_german(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    """Ann booked in English; with her booking's customer token (the manage link's) she asks
    for German, and the emails after it speak German."""
    made = await book_ann(mail_api, await resource(mail_api))
    await drain(worker)
    (booked,) = mailbox.to("ann@example.com")
    assert booked.subject.startswith("Booked: Dr. Berg, Saturday 18 May 2024, 12:00")
    path = f"/v1/bookings/{made['booking_id']}"
    ann = mail_api.as_key(made["customer_token"])
    # The secret key's rule, for her too; and the language opens no other field.
    for bad in ("xx_YY", "de_", ""):
        assert_locale_refused(await ann.put(path, {"locale": bad}), bad)
    r = await ann.put(path, {"locale": "de", "details": "changed"})
    assert r.status_code == 403, r.text
    assert (await ann.get(path)).json()["locale"] is None
    r = await ann.put(path, {"locale": "de"})
    assert r.status_code == 200, r.text
    assert (r.json()["locale"], r.json()["start_time"]) == ("de", "2024-05-18T10:00:00Z")
    assert (await mail_api.get(path)).json()["locale"] == "de"
    await drain(worker)
    assert len(mailbox.to("ann@example.com")) == 1  # a new language is no new time: no email
    await cancelled_in_german(mail_api, worker, mailbox, made["booking_id"])


async def test_put_refuses_an_unknown_locale_as_create_does_and_changes_nothing(api: Api) -> None:
    res = await api.resource()
    customer = {"name": "Ann", "email": "ann@example.com"}
    booking = {
        "resource_id": res["resource_id"],
        "start_time": "2024-05-18T10:00:00Z",
        "end_time": "2024-05-18T11:00:00Z",
        "customer": customer,
    }
    made = await api.book(**booking, locale="en_GB")
    path = f"/v1/bookings/{made['booking_id']}"
    for bad in ("xx_YY", "klingon", "de_", "", 7):
        r = await api.put(path, {"locale": bad, "details": "changed"})
        assert_locale_refused(r, bad)
        # The create's rule, word for word.
        created = await api.post("/v1/bookings", {**booking, "locale": bad})
        assert created.status_code == 422, created.text
        assert r.json()["errors"] == created.json()["errors"]
    shown = (await api.get(path)).json()
    assert (shown["locale"], shown["details"], shown["version"]) == (
        "en_GB",
        None,
        made["version"],
    )


async def test_long_german_subjects_are_read_back_as_they_were_written(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    # Over 78 characters, so folded; the mailbox (a real aiosmtpd) parses with Python's reader
    # (email.policy.default): each subject must come back exactly, with no space added or lost.
    # Python 3.11's folder folded the first right after "Subject:" (read back with a leading
    # space) and joined "Müller-Lüdenscheidt" and "für" in the second.
    berg = await resource(mail_api, name="Dr. Berg")
    await book_ann(mail_api, berg, locale="de")
    await drain(worker)  # (an email is rendered when it is sent)
    template = "Ihre Buchung bei {{ resource.name }} für {{ when }} ist bestätigt"
    r = await mail_api.put(
        "/v1/app", {"notifications": {"templates": {"customer.booked.subject": template}}}
    )
    assert r.status_code == 200, r.text
    praxis = await resource(mail_api, name="Praxis Dr. Müller-Lüdenscheidt")
    await book_ann(mail_api, praxis, locale="de")
    await drain(worker)
    subjects = sorted(str(m.message["Subject"]) for m in mailbox.to("ann@example.com"))
    assert subjects == [
        "Gebucht: Dr. Berg, Samstag, 18. Mai 2024, 12:00 bis 13:00 (Europe/Oslo)",
        "Ihre Buchung bei Praxis Dr. Müller-Lüdenscheidt für Samstag, 18. Mai 2024, 12:00 bis "
        "13:00 (Europe/Oslo) ist bestätigt",
    ]
