"""GET /v1/emails: the owner reads what became of the app's emails (sent, pending, failed,
suppressed by the inbox's hourly limit), to whom, which, and the last answer; the secret key
only, its own app's only, paged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from slotgraph.worker import Worker
from tests.api.conftest import Api, Clock, make_api
from tests.api.test_emails import book_ann, drain, mail_settings, resource, worker_for
from tests.api.test_safety_bad_keys import statements
from tests.conftest import clean
from tests.mailbox import Mailbox, smtp_server

ANN = "ann@example.com"
OWNER = "berg@clinic.example"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
async def mail_api(engine: AsyncEngine, mailbox: Mailbox) -> AsyncIterator[Api]:
    """An app whose customers get at most 2 emails an hour (ADR 0020)."""
    await clean(engine)
    clock = Clock()
    http, created = await make_api(
        engine, clock, mail_settings(mailbox, customer_emails_per_hour=2)
    )
    http.base_url = httpx.URL("https://test")
    async with http:
        yield Api(http, created.secret_key, created.public_key, clock, engine.dialect.name)


@pytest.fixture
def worker(engine: AsyncEngine, mail_api: Api, mailbox: Mailbox) -> Worker:
    return worker_for(engine, mail_api, mail_settings(mailbox, customer_emails_per_hour=2))


async def emails(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = await api.get("/v1/emails", **params)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return list(r.json()["data"])


def seen(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["audience"], e["kind"], e["recipients"], e["status"], e["attempts"]) for e in rows]


async def test_the_owner_sees_each_email_and_what_became_of_it(
    mail_api: Api, worker: Worker, mailbox: Mailbox
) -> None:
    res = await resource(mail_api)
    first = await book_ann(mail_api, res)
    await drain(worker)
    listed = await emails(mail_api)
    assert seen(listed) == [
        ("customer", "booked", [ANN], "sent", 1),
        ("owner", "new_booking", [OWNER], "sent", 1),
    ]
    assert {e["booking_id"] for e in listed} == {first["booking_id"]}
    assert listed[0]["last_status_code"] == 250
    assert listed[0]["last_error"] is None

    # Ann's second and third emails of the hour: the limit (2) holds the third back
    r = await mail_api.put(f"/v1/bookings/{first['booking_id']}/cancel")
    assert r.status_code == 200, r.text
    await drain(worker)  # (the worker keeps the order of one booking's emails, not an inbox's)
    second = await book_ann(mail_api, res)
    await drain(worker)
    assert len(mailbox.to(ANN)) == 2
    listed = await emails(mail_api)
    assert seen(listed) == [
        ("customer", "booked", [ANN], "suppressed", 1),
        ("owner", "new_booking", [OWNER], "sent", 1),
        ("customer", "cancelled", [ANN], "sent", 1),
        ("customer", "booked", [ANN], "sent", 1),
        ("owner", "new_booking", [OWNER], "sent", 1),
    ]
    assert listed[0]["booking_id"] == second["booking_id"]
    assert listed[0]["last_error"].startswith("suppressed: the inbox had 2 customer emails")
    # one booking's emails
    of_first = await emails(mail_api, booking_id=first["booking_id"])
    assert seen(of_first) == seen(listed[2:])

    # a refused send: pending, its answer and its next try; then sent
    mailbox.refuse = True
    third = await mail_api.book(
        resource_id=res["resource_id"],
        start_time="2024-05-19T10:00:00Z",
        end_time="2024-05-19T11:00:00Z",
        customer={"name": "Bo", "email": "bo@example.com"},
    )
    await drain(worker)
    (bo, owner) = await emails(mail_api, booking_id=third["booking_id"])
    assert (bo["recipients"], bo["status"], bo["attempts"]) == (["bo@example.com"], "pending", 1)
    assert bo["last_status_code"] == 451
    assert "try again" in bo["last_error"]
    assert bo["next_attempt_at"] is not None
    assert owner["status"] == "pending"
    mailbox.refuse = False
    mail_api.clock.advance(timedelta(seconds=6))
    await drain(worker)
    (bo, owner) = await emails(mail_api, booking_id=third["booking_id"])
    assert (bo["status"], bo["attempts"], bo["last_error"]) == ("sent", 2, None)


async def test_pages_follow_one_another_and_a_bad_cursor_is_a_400(
    mail_api: Api, worker: Worker, engine: AsyncEngine
) -> None:
    res = await resource(mail_api)
    for day in (18, 19, 20):
        await mail_api.book(
            resource_id=res["resource_id"],
            start_time=f"2024-05-{day}T10:00:00Z",
            end_time=f"2024-05-{day}T11:00:00Z",
            customer={"name": "Cy", "email": f"cy{day}@example.com"},
        )
    await drain(worker)
    whole = await emails(mail_api)
    assert len(whole) == 6
    walked, cursor = [], None
    for _ in range(10):
        r = await mail_api.get("/v1/emails", limit=4, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        walked += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert [e["email_id"] for e in walked] == [e["email_id"] for e in whole]
    assert [e["recipients"] for e in whole[::2]] == [
        ["cy20@example.com"],
        ["cy19@example.com"],
        ["cy18@example.com"],
    ]
    # no statement per email: a page of 6 costs what a page of 1 does
    counts = []
    for limit in (1, 6, 1):
        with statements(engine) as sent:
            assert (await mail_api.get("/v1/emails", limit=limit)).status_code == 200
        counts.append(len(sent))
    assert counts[1] == counts[2], counts
    r = await mail_api.get("/v1/emails", cursor="bm90IG91cnM")
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_only_the_apps_secret_key_reads_them(
    mail_api: Api, worker: Worker, engine: AsyncEngine
) -> None:
    res = await resource(mail_api)
    booked = await book_ann(mail_api, res)
    await drain(worker)
    assert len(await emails(mail_api)) == 2
    for key in (mail_api.public_key, booked["customer_token"]):
        r = await mail_api.as_key(key).get("/v1/emails", booking_id=booked["booking_id"])
        assert r.status_code == 403, r.text
    # another app on the same database sees none of them, even by the booking's id
    http, created = await make_api(engine, mail_api.clock)
    async with http:
        other = Api(http, created.secret_key, created.public_key, mail_api.clock, "")
        assert await emails(other) == []
        assert await emails(other, booking_id=booked["booking_id"]) == []
