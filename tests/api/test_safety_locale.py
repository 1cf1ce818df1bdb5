"""A locale is a locale's name: `de`, `de_AT`, `zh_Hant_TW`; nothing after it.

Babel's parser reads `de@euro` and `de.UTF-8` as `de` and ignores what follows the `@` or `.`, so
`de@x\\r\\nBcc: a@b.c` was "a locale Babel knows": the public key stored it on a booking, it
came back in every answer and webhook, and the customer's emails, whose `Content-Language` it
fills, could not be composed (a header with a line break): none was ever sent.
"""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.worker import Worker
from tests.api.conftest import Api, store_as_before
from tests.api.test_emails import (
    ann_booking,
    book_ann,
    drain,
    mail_api,
    mailbox,
    resource,
    worker,
)
from tests.mailbox import Mailbox

__all__ = ["mail_api", "mailbox", "worker"]  # test_emails.py's fixtures, used here

NOT_LOCALES = [
    "de@x\r\nBcc: a@b.c",
    "de@<script>alert(1)</script>",
    'de@"onload="x',
    "de.<img src=x>",
    "de_DE@euro",
    "en_US.UTF-8",
]


@pytest.mark.parametrize("locale", NOT_LOCALES)
async def test_a_name_with_more_after_it_is_refused(api: Api, locale: str) -> None:
    res = await api.resource()
    r = await api.as_key(api.public_key).post("/v1/bookings", ann_booking(res, locale=locale))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["locale"]
    page = {"slug": "p", "title": "P", "resource_ids": [res["resource_id"]], "locale": locale}
    r = await api.post("/v1/pages", page)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("locale", ["de", "de_AT", "zh_Hant_TW", "en_001", "sr_Latn"])
async def test_locales_are_accepted(api: Api, locale: str) -> None:
    b = await book_ann(api.as_key(api.public_key), await api.resource(), locale=locale)
    assert b["locale"] == locale


async def test_one_stored_before_gets_its_email_in_english(
    mail_api: Api, worker: Worker, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    b = await book_ann(mail_api, await resource(mail_api, email=None), notify=False)
    await store_as_before(
        engine, mail_api, "bookings", b["booking_id"], locale=NOT_LOCALES[0], notify=True
    )
    r = await mail_api.put(
        f"/v1/bookings/{b['booking_id']}",
        {"start_time": "2024-05-18T12:00:00Z", "end_time": "2024-05-18T13:00:00Z"},
    )
    assert r.status_code == 200, r.text
    await drain(worker)
    (mail,) = mailbox.to("ann@example.com")
    assert mail.message["Content-Language"] == "en"
