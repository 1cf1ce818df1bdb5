"""An email address is one mailbox: never a list the mail system splits into several.

`postmaster,me@evil.example` passed the old check (one `@`, no space), and the worker wrote it
into `To:`, which the SMTP client splits at the comma: the booking's email (with the visitor's
name and notes in it) went to the attacker and to a mailbox of the operator's own mail domain
(`postmaster`), chosen by anyone with the public key or the booking page.
"""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.worker import Worker
from tests.api.conftest import Api, store_as_before
from tests.api.test_emails import (
    END,
    START,
    ann_booking,
    drain,
    mail_api,
    mailbox,
    resource,
    worker,
)
from tests.mailbox import Mailbox
from tests.web.pages import Doc, make_page

__all__ = ["mail_api", "mailbox", "worker"]  # test_emails.py's fixtures, used here

SPLIT = [
    "postmaster,me@evil.example",
    "postmaster;me@evil.example",
    "<postmaster>me@evil.example",
    "me@evil.example>",
    "me@evil.example(postmaster)",
    'post"master@evil.example',
]


@pytest.mark.parametrize("address", SPLIT)
async def test_an_address_of_several_mailboxes_is_refused(api: Api, address: str) -> None:
    customer = {"name": "Ann", "email": address}
    booking = ann_booking(await api.resource(), customer=customer)
    r = await api.as_key(api.public_key).post("/v1/bookings", booking)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["customer.email"]
    r = await api.post("/v1/clients", {"name": "Ann", "email": address})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["email"]


async def test_the_booking_page_refuses_it_too(api: Api) -> None:
    await make_page(api)
    page = Doc((await api.http.get("/book/dr-berg")).text)
    form = Doc((await api.http.get(page.all("time")[0]["href"])).text).form("booking-form")
    data = {**form["fields"], "name": "Ann", "email": SPLIT[0]}
    r = await api.http.post("/book/dr-berg", data=data)
    assert r.status_code == 422
    assert Doc(r.text).one("error-email")
    assert (await api.get("/v1/bookings")).json()["data"] == []


async def test_such_an_address_stored_before_gets_no_email(
    mail_api: Api, worker: Worker, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    res = await resource(mail_api)
    client = await mail_api.client(email="ann@example.com")
    await store_as_before(engine, mail_api, "clients", client["client_id"], email=SPLIT[0])
    assert (await mail_api.get(f"/v1/clients/{client['client_id']}")).json()["email"] == SPLIT[0]
    await mail_api.book(
        resource_id=res["resource_id"],
        start_time=START,
        end_time=END,
        client_id=client["client_id"],
    )
    await drain(worker)
    recipients = sorted(r for m in mailbox.received for r in m.rcpt_tos)
    assert recipients == ["berg@clinic.example"]  # the owner's; none for the customer
